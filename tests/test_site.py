"""The course site (``make site``, ``scripts/build_site.py``): built from the committed notebooks
and read in headless Chromium.

The build goes to ``build/site`` (as ``make site``; ``ROTATION_COURSE_SITE_DIR`` moves it), and
the browser test saves its screenshots to ``build/site/screenshots/`` (home.png, notebook.png).
The browser part has the ``browser`` marker and the same requirements as tests/test_browser.py:
it skips without Chromium or ``playwright`` unless ROTATION_COURSE_BROWSER_TESTS=required (CI).
"""
from __future__ import annotations

import functools
import html.parser
import http.server
import importlib.util
import json
import os
import re
import threading
from pathlib import Path

import pytest

from test_browser import chromium  # noqa: F401  (the fixture: Debian's Chromium through playwright)

ROOT = Path(__file__).resolve().parents[1]
SITE_VARIABLE = "ROTATION_COURSE_SITE_DIR"
PAGE_S = 30  # a page and its images have loaded within this


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_site = _load_builder()


class _Links(html.parser.HTMLParser):
    """The attributes of a page's tags: every (tag, attrs) pair, and the sidebar's links."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.sidebar_links: list[str] = []
        self._nav_depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "nav" and "bd-docs-nav" in (attrs.get("class") or ""):
            self._nav_depth = 1
        elif tag == "nav" and self._nav_depth:
            self._nav_depth += 1
        elif tag == "a" and self._nav_depth:
            self.sidebar_links.append(attrs.get("href", ""))

    def handle_endtag(self, tag):
        if tag == "nav" and self._nav_depth:
            self._nav_depth -= 1


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _stored_images(notebook: Path) -> int:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum(1 for cell in nb["cells"] if "colab" not in cell.get("metadata", {}).get("tags", [])
               for output in cell.get("outputs", [])
               if any(kind.startswith("image/") for kind in output.get("data", {})))


@pytest.fixture(scope="module")
def site() -> dict:
    if build_site.missing_packages():
        pytest.fail(f"the site's packages are missing: {build_site.missing_packages()} (`make setup` "
                    f"installs the 'site' extra)", pytrace=False)
    out = Path(os.environ.get(SITE_VARIABLE) or ROOT / "build" / "site")
    result = build_site.build(out)
    print(f"site built in {result['seconds']:.1f} s: {result['index']}")
    assert result["returncode"] == 0, "Sphinx failed or warned:\n" + "\n".join(result["warnings"])
    result["out"] = out
    return result


# --------------------------------------------------------------------------- the build

def test_the_build_has_a_home_page_and_one_page_per_notebook_in_course_order(site):
    assert not site["warnings"], site["warnings"]
    notebooks = build_site.course_notebooks()
    assert [p.stem for p in site["pages"]] == [nb.stem for nb in notebooks]
    assert all(page.is_file() for page in site["pages"]), "a notebook has no page"
    home = _parse(site["index"])
    # The sidebar's table of contents lists the notebooks in course order, each once.
    toc = [href for href in home.sidebar_links if href.startswith("notebooks/")]
    assert toc == [f"notebooks/{nb.stem}.html" for nb in notebooks]
    # The home page is the README: its title and its gallery of the notebooks' figures.
    text = site["index"].read_text(encoding="utf-8")
    title = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
    assert f"<h1>{title}" in text
    gallery = [a["src"] for tag, a in home.tags if tag == "img"]
    assert len(gallery) == len(notebooks) and all((site["index"].parent / src).is_file() for src in gallery)


def test_every_stored_figure_is_on_its_page_and_nothing_is_loaded_from_the_web(site):
    pages = [site["index"], *site["pages"]]
    for notebook, page in zip(build_site.course_notebooks(), site["pages"]):
        images = [a.get("src", "") for tag, a in _parse(page).tags if tag == "img"]
        figures = [src for src in images if src.startswith(("../_images/", "data:image/"))]
        assert len(figures) >= _stored_images(notebook), f"{page.name}: figures missing"
        text = page.read_text(encoding="utf-8")
        assert "Colab only: install the course" not in text, f"{page.name} shows the Colab cell"
        assert "colab-badge.svg" not in text, f"{page.name} loads the Colab badge from the web"
    for page in pages:
        for tag, attrs in _parse(page).tags:
            loads = attrs.get("src") if tag in ("img", "script", "iframe") else (
                attrs.get("href") if tag == "link" and attrs.get("rel") in ("stylesheet", "preload", "icon") else None)
            assert not (loads and re.match(r"^(https?:)?//", loads)), f"{page.name} loads {loads} from the web"


def test_links_to_repository_files_that_are_not_pages_go_to_github(tmp_path):
    root = tmp_path / "course"
    for folder in ("notebooks", "scripts", "rotation_utils"):
        (root / folder).mkdir(parents=True)
    (root / "scripts" / "run_course.py").write_text("", encoding="utf-8")
    (root / "rotation_utils" / "angles.py").write_text("", encoding="utf-8")
    (root / "README.md").write_text("# A course\n\n[notebook](notebooks/01_a.ipynb) and "
                                    "[the script](scripts/run_course.py#L3) and [web](https://example.org) and "
                                    "[gone](scripts/no_such_script.py)\n",
                                    encoding="utf-8")
    cells = [{"cell_type": "markdown", "id": "a", "metadata": {},
              "source": "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                        "(https://colab.research.google.com/github/o/n/blob/main/notebooks/01_a.ipynb)\n\n"
                        "# 1. A\n\nSee [the package](../rotation_utils/angles.py) and [next](02_b.ipynb)."},
             {"cell_type": "code", "id": "b", "metadata": {"tags": ["colab"]}, "execution_count": None,
              "outputs": [], "source": "print('colab')"}]
    for name in ("01_a.ipynb", "02_b.ipynb", "scratch.ipynb"):
        (root / "notebooks" / name).write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                                           "nbformat_minor": 5}), encoding="utf-8")
    source = tmp_path / "source"
    (source / "old.md").parent.mkdir(parents=True)
    (source / "old.md").write_text("left from an earlier build", encoding="utf-8")
    staged = build_site.stage(source, root)
    assert [p.name for p in staged] == ["01_a.ipynb", "02_b.ipynb"]  # not scratch.ipynb: not a course notebook
    assert not (source / "old.md").exists()
    home = (source / "index.md").read_text(encoding="utf-8")
    assert "[notebook](notebooks/01_a.ipynb)" in home and "(https://example.org)" in home
    assert re.search(r"\[the script\]\(https://github\.com/[^/]+/[^/]+/blob/\w+/scripts/run_course\.py#L3\)", home)
    assert "[gone](scripts/no_such_script.py)" in home  # a broken link is left for Sphinx to report
    assert home.index("notebooks/01_a") < home.index("notebooks/02_b", home.index("{toctree}"))
    first = json.loads((source / "notebooks" / "01_a.ipynb").read_text(encoding="utf-8"))["cells"]
    markdown = "".join(first[0]["source"])
    assert "colab-badge.svg" not in markdown and "[Open this notebook in Colab](https://colab" in markdown
    assert re.search(r"\(https://github\.com/\S+/blob/\w+/rotation_utils/angles\.py\)", markdown)
    assert "[next](02_b.ipynb)" in markdown
    assert "remove-cell" in first[1]["metadata"]["tags"]
    # The course's own files are only read.
    assert "remove-cell" not in (root / "notebooks" / "01_a.ipynb").read_text(encoding="utf-8")


def test_a_folder_without_notebooks_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        build_site.stage(tmp_path / "source", tmp_path)


def test_an_output_folder_of_the_users_is_never_written_to(tmp_path, capsys):
    theirs = tmp_path / "my-folder"
    (theirs / "source").mkdir(parents=True)
    (theirs / "source" / "thesis.md").write_text("mine", encoding="utf-8")
    assert build_site.main(["--out", str(theirs)]) == 2
    assert "not a build folder of the course site" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("mine", encoding="utf-8")
    assert build_site.main(["--out", str(tmp_path / "a-file")]) == 2
    assert sorted(p.name for p in theirs.rglob("*")) == ["source", "thesis.md"]
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "mine"


# --------------------------------------------------------------------------- in a browser

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The built site on a local static file server of the test's own (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(site["index"].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.browser
def test_home_and_a_notebook_page_render_in_chromium_with_their_figures(site, served, chromium):
    screenshots = site["out"] / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    problems, outside = [], []
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_default_timeout(PAGE_S * 1000)
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url}"))

        def stay_local(route):
            if route.request.url.startswith(served + "/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", stay_local)
        notebook = site["pages"][0]  # notebook 01: figures, sliders' static drawings, an equation
        for name, path in (("home", site["index"]), ("notebook", notebook)):
            relative = path.relative_to(site["index"].parent).as_posix()
            page.goto(f"{served}/{relative}", wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
            assert images and all(width > 0 for _src, width in images), f"{name}: broken images {images}"
            assert page.locator("nav.bd-docs-nav a[href$='.html']").count() >= len(site["pages"])
            if name == "notebook":
                equation = page.locator("mjx-container").first
                equation.wait_for()  # MathJax, served by the site itself, has typeset the equation
                assert page.locator("h1").first.inner_text().startswith("1.")
                assert len(images) >= _stored_images(build_site.course_notebooks()[0])
                # The screenshot: the notebook's first stored figure.
                page.locator(".cell_output img").first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.screenshot(path=str(screenshots / f"{name}.png"))
        # The table of contents leads from the home page to the notebook.
        page.goto(f"{served}/index.html", wait_until="load")
        page.locator("nav.bd-docs-nav a[href$='.html']").first.click()
        page.wait_for_url(re.compile(re.escape(notebook.name) + r"$"))
    finally:
        page.close()
    print(f"screenshots: {screenshots / 'home.png'}, {screenshots / 'notebook.png'}")
    assert not outside, f"the site asked the web for {outside}"
    assert not problems, problems
