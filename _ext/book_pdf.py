"""A "whole book (PDF)" entry in every page's download menu (the header's download icon).

``tools/pdf.py`` prints the built book to ``attention-hands-on.pdf`` at the root of the
site; the entry links to it with a path relative to each page (``pathto``), so it works
wherever the site is served from.
"""

PDF = "attention-hands-on.pdf"


def _add_book_pdf(app, pagename, templatename, context, doctree):
    pathto = context.get("pathto")
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons" and pathto:
            button["buttons"].append(
                {
                    "type": "link",
                    "url": pathto(PDF, 1),
                    "text": "book .pdf",
                    "tooltip": "Download the whole book (PDF)",
                    "icon": "fas fa-book",
                    "label": "download-book-pdf-button",
                }
            )


def setup(app):
    # after sphinx-book-theme's add_header_buttons (priority 501) made the menu
    app.connect("html-page-context", _add_book_pdf, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
