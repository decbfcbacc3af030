"""Build the course site: static HTML from the committed notebooks and their stored outputs.

    python scripts/build_site.py            # (make site) -> build/site/html/index.html
    python scripts/build_site.py --out DIR  # another build folder

The site is rendered by Jupyter Book's engine used directly (MyST-NB on Sphinx, with
``sphinx-book-theme``; configuration in ``docs/site/conf.py``). Nothing is executed: the pages
show the outputs stored in ``notebooks/*.ipynb``. The build works offline, and so does the site
(MathJax comes from ``sphinx-mathjax-offline``; no page loads anything from the web).

Steps: the README (the home page) and the notebooks are staged in ``OUT/source``, with
  - a table of contents in course order (``notebooks/NN_*.ipynb`` sorted by number) added to the
    home page, hidden on the page itself and shown in the sidebar;
  - the "Open in Colab" badge image (a web image) replaced by a plain link to the same place,
    and each notebook's Colab-only cell (tag ``colab``) left out of the page;
  - relative links to files of the repository that are not pages of the site (a script, a
    folder) pointed at the repository on GitHub (``rotation_utils.colab.COURSE_REPOSITORY``);
then Sphinx writes ``OUT/html``. A Sphinx warning (a broken link, an unreadable output) fails
the build (``--allow-warnings`` lets it through). Staged files are rewritten only when their
content changes, so a second build only redoes what changed.

Only ``OUT`` is written, and only when it is new, empty or an earlier build folder of this script
(marked by its file ``.rotation-course-site``): any other folder is refused. The committed
notebooks, README and figures are read, never changed.
Exit status: 0 when the site was built, 1 when Sphinx failed or warned, 2 for bad arguments or
a missing package (the ``site`` extra: ``.venv/bin/python -m pip install -e '.[site]'``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rotation_utils.colab import COURSE_BRANCH, COURSE_REPOSITORY  # noqa: E402  (the checkout's package)

CONF_DIR = ROOT / "docs" / "site"
DEFAULT_OUT = ROOT / "build" / "site"
REQUIRED_MODULES = {"sphinx": "sphinx", "myst_nb": "myst-nb", "sphinx_book_theme": "sphinx-book-theme",
                    "sphinx-mathjax-offline": "sphinx-mathjax-offline"}
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
COLAB_TAG = "colab"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]+)\)")
# A markdown link or image target: ](target) or ](target "title").
LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
# The file that marks a folder as a build folder of this script: only such a folder (or an empty
# or new one) is written to, so that --out can never clobber a folder of the user's.
MARKER = ".rotation-course-site"

__all__ = ["course_notebooks", "stage", "build", "main"]


def _repository_url(path: str) -> str:
    return f"https://github.com/{COURSE_REPOSITORY}/blob/{COURSE_BRANCH}/{path}"


def course_notebooks(root: Path = ROOT) -> list[Path]:
    """The course's notebooks in course order: ``notebooks/NN_*.ipynb`` sorted by their number.

    Raises FileNotFoundError when there are none (not the course's folder)."""
    notebooks = sorted(p for p in (Path(root) / "notebooks").glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks/NN_*.ipynb under {root}: is this the course's folder?")
    return notebooks


def _rewrite_links(text: str, folder: str, staged: set[str], root: Path) -> str:
    """Point relative links of a markdown text in ``folder`` (relative to the repository root)
    that are not staged (not a page or figure of the site) at the repository on GitHub."""
    def replace(match: re.Match) -> str:
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.IGNORECASE):
            return match.group(0)  # a web address, a mail link, an anchor, an absolute path
        path, _, anchor = target.partition("#")
        resolved = (root / folder / path).resolve()
        try:
            relative = resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            return match.group(0)
        if relative in staged or not resolved.exists():
            return match.group(0)  # a page or figure of the site; a broken link is left for Sphinx to report
        url = _repository_url(relative) + (f"#{anchor}" if anchor else "")
        return f"]({url}{match.group('title') or ''})"
    return LINK.sub(replace, text)


def _write_if_changed(path: Path, content: bytes) -> None:
    if path.exists() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _home_page(root: Path, notebooks: list[Path], staged: set[str]) -> str:
    readme = (root / "README.md").read_text(encoding="utf-8")
    readme = _rewrite_links(readme, "", staged, root)
    entries = "\n".join(f"notebooks/{nb.stem}" for nb in notebooks)
    toc = f"\n\n```{{toctree}}\n:hidden:\n:caption: The notebooks\n\n{entries}\n```\n"
    return readme.rstrip("\n") + toc


def _site_notebook(path: Path, staged: set[str], root: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            source = BADGE.sub(r"[Open this notebook in Colab](\1)", source)
            source = _rewrite_links(source, "notebooks", staged, root)
            cell["source"] = source.splitlines(keepends=True)
        tags = cell.setdefault("metadata", {}).get("tags", [])
        if COLAB_TAG in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]
    return nb


def stage(source: Path, root: Path = ROOT) -> list[Path]:
    """Write the site's sources into ``source``: ``index.md`` (the README and the table of
    contents), ``notebooks/NN_*.ipynb`` and ``docs/figures/*``. Returns the staged notebooks'
    paths in course order. Files of earlier stagings that are no longer part of the site are
    removed from ``source`` (a folder of this script's own)."""
    root, source = Path(root), Path(source)
    notebooks = course_notebooks(root)
    figures = sorted((root / "docs" / "figures").glob("*")) if (root / "docs" / "figures").is_dir() else []
    staged = {"README.md"} | {f"notebooks/{nb.name}" for nb in notebooks} | {
        f"docs/figures/{f.name}" for f in figures if f.is_file()}
    wanted = {source / "index.md"}
    _write_if_changed(source / "index.md", _home_page(root, notebooks, staged).encode("utf-8"))
    out = []
    for nb in notebooks:
        target = source / "notebooks" / nb.name
        content = json.dumps(_site_notebook(nb, staged, root), indent=1, ensure_ascii=False) + "\n"
        _write_if_changed(target, content.encode("utf-8"))
        wanted.add(target)
        out.append(target)
    for figure in figures:
        if figure.is_file():
            target = source / "docs" / "figures" / figure.name
            _write_if_changed(target, figure.read_bytes())
            wanted.add(target)
    for path in sorted(source.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return out


def missing_packages() -> list[str]:
    """The pip names of the site's packages that cannot be imported here."""
    return [pip for module, pip in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]


def build(out: Path = DEFAULT_OUT, root: Path = ROOT, allow_warnings: bool = False,
          quiet: bool = True) -> dict:
    """Stage the sources into ``out/source`` and build the HTML site into ``out/html``.

    Returns {"index": path of the home page, "pages": [paths of the notebook pages in course
    order], "seconds": the build's wall-clock time, "returncode": Sphinx's exit status,
    "warnings": the warning lines Sphinx wrote}. ``out`` must be new, empty, or an earlier build
    folder of this function (it holds the file ``.rotation-course-site``). Raises RuntimeError
    when a package of the ``site`` extra is missing, FileExistsError when ``out`` is another
    folder or a file (nothing is written then), FileNotFoundError when ``root`` holds no notebooks.
    """
    missing = missing_packages()
    if missing:
        raise RuntimeError(f"the site needs {', '.join(missing)} (the 'site' extra): "
                           f".venv/bin/python -m pip install -e '.[site]'")
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise FileExistsError(f"{out} exists and is not a build folder of the course site (it has no "
                              f"{MARKER}): nothing was written; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a build folder of scripts/build_site.py: rebuilt in place by it\n",
                              encoding="utf-8")
    start = time.perf_counter()
    staged = stage(out / "source", root)
    html, doctrees = out / "html", out / "doctrees"
    warnings_file = out / "sphinx-warnings.log"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(CONF_DIR), "-d", str(doctrees),
               "--keep-going", "-w", str(warnings_file), str(out / "source"), str(html)]
    if not allow_warnings:
        command.insert(-2, "-W")
    if quiet:
        command.insert(3, "-q")
    completed = subprocess.run(command, cwd=out)
    warnings = [line for line in warnings_file.read_text(encoding="utf-8", errors="replace").splitlines()
                if line.strip()] if warnings_file.exists() else []
    return {"index": html / "index.html",
            "pages": [html / "notebooks" / f"{nb.stem}.html" for nb in staged],
            "seconds": time.perf_counter() - start, "returncode": completed.returncode,
            "warnings": warnings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="build folder (default: build/site); the site goes to OUT/html")
    parser.add_argument("--allow-warnings", action="store_true",
                        help="build even when Sphinx warns (a broken link, an unreadable output)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    try:
        result = build(args.out, allow_warnings=args.allow_warnings, quiet=not args.verbose)
    except (RuntimeError, FileExistsError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2
    if result["returncode"] != 0:  # Sphinx has printed its warnings and errors
        print(f"the site was not built (Sphinx exit status {result['returncode']}"
              f"{', warnings above' if result['warnings'] else ''})", file=sys.stderr)
        return 1
    print(f"site built in {result['seconds']:.0f} s: {result['index']}")
    print(f"open it in a browser, or serve it: python -m http.server -d {result['index'].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
