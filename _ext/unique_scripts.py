"""Drop duplicate <script> entries from every page.

sphinx-thebe 0.3.1 and sphinx-togglebutton register their inline scripts once per
reading of the sources (once with filename ``None``, once with ``""`` after a
re-read), so pages declared ``const THEBE_JS_URL`` twice and the browser reported
"Identifier 'THEBE_JS_URL' has already been declared". Identical scripts are
redundant: keep the first of each.
"""


def _key(script):
    return (
        getattr(script, "filename", script) or "",
        getattr(script, "priority", 0),
        tuple(sorted(getattr(script, "attributes", {}).items())),
    )


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts:
        seen, unique = set(), []
        for script in scripts:
            if _key(script) not in seen:
                seen.add(_key(script))
                unique.append(script)
        context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
