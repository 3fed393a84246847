"""Make sure the browser test has a Chromium: ``make test`` runs this first.

    python -m tools.browser          # find Chromium, or install it; print its path

In order of preference:

1. a Chromium that is already there: ``$CHROMIUM``, ``chromium`` or ``chromium-browser``
   on the PATH, or Playwright's own browser if it was installed before;
2. Debian's ``chromium`` (with ``fonts-noto-cjk``, for the glossary's Chinese), through
   ``apt-get`` as root or with password-less ``sudo``;
3. Playwright's own Chromium (``python -m playwright install chromium``);
4. otherwise one sentence saying what to install, and exit status 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

HOW_TO = (
    "The browser test needs Chromium and could not install it: install Debian's "
    "chromium (sudo apt-get install chromium fonts-noto-cjk fonts-wqy-microhei), or run "
    "`python -m playwright install chromium`, or set CHROMIUM to a Chromium binary."
)


def playwright_chromium() -> str | None:
    """The path of Playwright's own Chromium, if it is installed."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Exception:  # Playwright missing or broken: there is no such browser
        return None
    return path if path and os.path.exists(path) else None


def find_chromium() -> str | None:
    """An existing Chromium: $CHROMIUM, the PATH, then Playwright's own."""
    return (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
        or playwright_chromium()
    )


CJK_FONTS = {  # Debian package -> the family fc-list shows
    "fonts-noto-cjk": "noto sans cjk",
    # TrueType outlines: Chromium embeds it in the Chinese PDF as a named font, where
    # Noto's CFF outlines become unnamed Type 3 glyphs
    "fonts-wqy-microhei": "wenquanyi micro hei",
}


def _fonts_missing() -> list[str]:
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True, check=False)
    listed = fonts.stdout.lower()
    return [package for package, family in CJK_FONTS.items() if family not in listed]


def apt_prefix() -> list[str] | None:
    """How to run apt-get as root here: [] as root, ["sudo", "-n"] with password-less
    sudo, or None."""
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return []
    if (
        shutil.which("sudo")
        and subprocess.run(
            ["sudo", "-n", "true"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return ["sudo", "-n"]
    return None


def ensure(
    run: Callable[[Sequence[str]], int] = lambda c: subprocess.call(list(c)),
) -> str | None:
    """A usable Chromium's path after installing one if needed, or None."""
    found = find_chromium()
    prefix = apt_prefix()
    wanted = [] if found else ["chromium"]
    if prefix is not None and shutil.which("fc-list"):
        wanted += _fonts_missing()
    if wanted and prefix is not None:
        print(f"installing {' '.join(wanted)} with apt-get", flush=True)
        if run([*prefix, "apt-get", "update", "-q"]) == 0:
            run(
                [
                    *prefix,
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    *wanted,
                ]
            )
        found = find_chromium()
    if not found:
        print("installing Playwright's Chromium", flush=True)
        run([sys.executable, "-m", "playwright", "install", "chromium"])
        found = find_chromium()
    return found


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv:
        print(
            f"unknown arguments {argv}; usage: python -m tools.browser", file=sys.stderr
        )
        return 2
    path = ensure()
    if not path:
        print(HOW_TO, file=sys.stderr)
        return 1
    print(f"Chromium for the browser test: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
