"""Sphinx configuration of the course's website (built by tools/build_site.py, which assembles the
source folder: these pages, the learner notebooks, the measured results, MathJax).

Everything the pages load is served from the site itself: MathJax from _static/mathjax/, the theme's
fonts and scripts from its own _static/, the search index from searchindex.js. The build fails on any
warning (tools/build_site.py passes -W): a broken internal link, a missing figure, a notebook that errors.
"""

import os
import sys
from pathlib import Path

REPO = Path(os.environ.get("LVMLIB_SITE_REPO", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(REPO))  # autodoc documents this checkout's lvmlib

project = "Deep latent variable models — a hands-on course"
author = "the course's authors"
copyright = "the course's authors"
language = "en"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

# --- notebooks: executed from the learner's copies, with a cache keyed on their code cells
nb_execution_mode = os.environ.get("LVMLIB_SITE_EXECUTE", "off")
nb_execution_cache_path = os.environ.get("LVMLIB_SITE_JUPYTER_CACHE", str(REPO / "build" / "site-cache" / "jupyter"))
nb_execution_timeout = int(os.environ.get("LVMLIB_SITE_CELL_TIMEOUT", "1800"))
nb_execution_raise_on_error = True     # a notebook that errors fails the build
nb_execution_show_tb = True
nb_execution_excludepatterns = []
nb_merge_streams = True
nb_output_stderr = "remove"            # progress bars and warnings go to stderr: not part of the page
# Widgets: the site has no kernel, and ipywidgets' page scripts would come from a CDN. The course's
# widgets draw a static fallback (the notebooks call them with static=True as well); a widget's own
# output is shown by its text (a progress bar's last state), an explorer's by a note (_widget_notes).
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- math: MathJax 3 from the site's own files (tools/install_site_assets.sh), never a CDN
mathjax_path = "mathjax/tex-chtml.js"
# textmacros: \_ and friends inside \text{} and \texttt{} (the notebooks write \texttt{log\_var})
mathjax3_config = {"loader": {"load": ["[tex]/textmacros"]}, "tex": {"packages": {"[+]": ["textmacros"]}}}

# --- the library reference
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# --- pages
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "conf.py"]
templates_path = []
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_title = "Deep latent variable models"
html_theme = "sphinx_book_theme"
html_theme_options = {
    "use_download_button": True,       # each notebook page links its .ipynb
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "launch_buttons": {},              # no Binder/Colab: the course runs offline
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "auto"}  # light or dark as the reader's system asks
html_last_updated_fmt = None
html_copy_source = True
html_show_sourcelink = False
suppress_warnings = []


# --- docstrings: lvmlib's are plain text (formulas such as |det J| or log p(x) - KL, indented
# examples). One that does not read as reStructuredText is shown as it is written, in a literal
# block, instead of being mangled (or failing the build).
_RST_TROUBLE = ("Unexpected indentation", "ends without a blank line", "start-string without end-string",
                "Undefined substitution", "Inconsistent literal block", "Unknown target name",
                "Duplicate explicit target", "Malformed table", "Title underline too short")


def _rst_problems(app, lines):
    import io

    from docutils.core import publish_doctree

    stream = io.StringIO()
    publish_doctree("\n".join(lines), settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": stream, "file_insertion_enabled": False,
        "env": app.env})
    return [m for m in stream.getvalue().splitlines() if any(t in m for t in _RST_TROUBLE)]


def _plain_docstring(app, what, name, obj, options, lines):
    import inspect

    if not lines or not _rst_problems(app, lines):
        return
    raw = inspect.getdoc(obj) or "\n".join(lines)
    lines[:] = ["::", ""] + ["    " + line for line in raw.splitlines()] + [""]


def _figure_alt_text(app, doctree, docname):
    """A notebook's output figures carry no alternative text of their own (the HTML writer would use
    the file's path): name each one by its place, the notebook and the code that drew it."""
    from docutils import nodes

    title = app.env.titles[docname].astext() if docname in app.env.titles else docname
    number = 0
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        number += 1
        cell = image.parent
        while cell is not None and "cell" not in cell.get("classes", []):
            cell = cell.parent
        code = ""
        if cell is not None:
            for block in cell.findall(nodes.literal_block):
                code = next((line.strip() for line in block.astext().splitlines()
                             if line.strip() and not line.strip().startswith("#")), "")
                break
        image["alt"] = (f"Figure {number} of {title}, drawn by the code cell above"
                        + (f" (starting: {code[:80]})" if code else ""))


_WIDGET_REPR = ("VBox(children=", "HBox(children=", "Tab(children=", "interactive(children=")


def _widget_notes(app, doctree, docname):
    """An interactive explorer's output (its repr, e.g. VBox(children=(FloatSlider(...)...))) becomes a
    note that says where to use it; the notebook draws a static figure of the same view in a cell of its own."""
    from docutils import nodes

    for block in list(doctree.findall(nodes.literal_block)):
        if block.astext().lstrip().startswith(_WIDGET_REPR):
            note = nodes.paragraph(text="An interactive explorer appears here when the notebook runs in "
                                        "JupyterLab (download the notebook to use it); on this site, the "
                                        "notebook's static figure of the same view stands in for it.")
            note["classes"].append("widget-note")
            block.replace_self(note)


def setup(app):
    app.set_html_assets_policy("always")  # MathJax on every page: the navigation shows a title with math
    app.connect("doctree-resolved", _widget_notes)
    app.connect("autodoc-process-docstring", _plain_docstring, priority=900)  # after napoleon
    app.connect("doctree-resolved", _figure_alt_text)
