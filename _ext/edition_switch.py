"""A language switch in every page's header: the same page in the book's other edition.

The English book is served at the site's root and the Chinese one under ``zh/``; the two
share their page names (and, through ``tools/i18n.py``, their section anchors), so the
counterpart of ``book/04_transformer`` is ``zh/book/04_transformer.html`` from the
English book and ``../book/04_transformer.html`` from the Chinese one. ``edition_switch``
in ``_config.yml`` gives the prefix and the button's text; without it there is no button.
"""


def _add_switch(app, pagename, templatename, context, doctree):
    switch = app.config.edition_switch
    if not switch or "header_buttons" not in context:
        return
    up = "../" * pagename.count("/")  # from this page to the root of its book
    context["header_buttons"].append(
        {
            "type": "link",
            "url": f"{up}{switch['prefix']}{pagename}.html",
            "text": switch["text"],
            "tooltip": switch.get("tooltip", switch["text"]),
            "icon": "fas fa-language",
            "label": "edition-switch-button",
        }
    )


def setup(app):
    app.add_config_value("edition_switch", {}, "html")
    # after sphinx-book-theme's add_header_buttons (priority 501) made the buttons
    app.connect("html-page-context", _add_switch, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
