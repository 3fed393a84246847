"""Printed output that fits the book's output boxes (about 78 characters wide)."""

from __future__ import annotations

import textwrap

WIDTH = 78


def fill(text: str, indent: str = "", hang: str = "  ") -> str:
    """``text`` wrapped to :data:`WIDTH`; the first line starts with ``indent``, the
    following ones with ``indent + hang``."""
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + hang,
        break_on_hyphens=False,
    )


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in "…" if it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"
