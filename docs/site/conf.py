"""Sphinx configuration of the course site (``make site``; ``scripts/build_site.py``).

The site is built with Jupyter Book's engine, used directly: MyST-NB reads the committed
notebooks with their stored outputs (nothing is executed), Sphinx writes the HTML, and
``sphinx-book-theme`` (Jupyter Book's theme) lays it out. ``scripts/build_site.py`` first
stages the README (the home page, with the table of contents in course order) and the
notebooks in a source folder; this file only says how to render them. Everything the pages
load is in the build folder (MathJax from ``sphinx-mathjax-offline``), so the site works
offline and from any static file server.
"""
from rotation_utils.colab import COURSE_BRANCH, COURSE_REPOSITORY

project = "Estimating image rotation with CNNs"
author = "the course's authors"
copyright = "the course's authors, MIT licence"
root_doc = "index"

extensions = [
    "myst_nb",                  # notebooks and MyST markdown, stored outputs only
    "sphinx-mathjax-offline",   # MathJax 3 copied into _static (no CDN)
]

# The notebooks are shown as committed: never executed while building.
nb_execution_mode = "off"
# The stored ipywidgets state would need @jupyter-widgets/html-manager from a CDN; without a
# kernel a slider cannot move anyway, so the site shows the stored figures and not the sliders.
nb_ipywidgets_js = {}
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = []
html_last_updated_fmt = None
html_copy_source = False
html_show_sourcelink = False
# The figures are drawn on white: light pages, whatever the reader's browser prefers (without a
# default mode the theme also logs a console error on a first visit).
html_context = {"default_mode": "light"}
html_theme_options = {
    "repository_url": f"https://github.com/{COURSE_REPOSITORY}",
    "repository_branch": COURSE_BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
