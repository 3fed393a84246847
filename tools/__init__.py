"""The book's tools; run them as modules from the repository root, e.g.
``python -m tools.build_book``, ``python -m tools.smoke_run``, ``python -m tools.notebooks strip``."""
