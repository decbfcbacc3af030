"""Put the "Open in Colab" badge and the Colab cell into notebooks, idempotently.

    python scripts/colab_cells.py [NOTEBOOK ...]      (default: every notebooks/*.ipynb)

For each notebook: the badge of :func:`rotation_utils.colab.badge_markdown` becomes the first
line of the first Markdown cell (an existing badge line is replaced), and a code cell tagged
``colab`` with :func:`rotation_utils.colab.setup_cell_source` becomes the first code cell,
before the profile cell (an existing ``colab`` cell is rewritten in place). The cell's stored
output is what running its source here prints (the not-in-Colab line), with no execution count;
the cell is also tagged ``nbval-skip``, since nbval refuses stored outputs without a count. No other cell is
touched, and running the script twice changes nothing the second time. Rerun it after
changing ``COURSE_REPOSITORY`` or ``COURSE_BRANCH`` in ``rotation_utils/colab.py``.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rotation_utils import colab  # noqa: E402  (the checkout's package, installed or not)

BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*$")
CELL_ID = "colab-setup"


def cell_output(source: str) -> str:
    """What ``source`` prints when run here by this Python (stdout). Raises
    subprocess.CalledProcessError when it fails."""
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True,
                          cwd=ROOT / "notebooks")
    return done.stdout


def with_badge(markdown: str, notebook_name: str) -> str:
    """``markdown`` with the badge as its first line (replacing a badge line already there)."""
    badge = colab.badge_markdown(notebook_name)
    lines = markdown.split("\n")
    if lines and BADGE_LINE.match(lines[0]):
        return "\n".join([badge] + lines[1:])
    return badge + "\n\n" + markdown


def update(path: Path, output: str | None = None) -> bool:
    """Add or refresh the badge and the Colab cell of the notebook at ``path``.

    output: the Colab cell's printed text (default: run its source once here).
    Returns True when the file changed. Raises ValueError for a notebook without a Markdown
    or without a code cell.
    """
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    markdown = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if markdown is None:
        raise ValueError(f"{path.name}: no Markdown cell for the badge")
    markdown.source = with_badge(markdown.source, path.name)

    source = colab.setup_cell_source()
    output = cell_output(source) if output is None else output
    tagged = [c for c in nb.cells if colab.CELL_TAG in c.get("metadata", {}).get("tags", [])]
    for extra in tagged[1:]:
        nb.cells.remove(extra)
    if tagged:
        cell = tagged[0]
    else:
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
        if first_code is None:
            raise ValueError(f"{path.name}: no code cell to put the Colab cell before")
        ids = {c.get("id") for c in nb.cells}
        cell = nbformat.v4.new_code_cell()
        if CELL_ID not in ids:
            cell.id = CELL_ID
        nb.cells.insert(first_code, cell)
    cell.source = source
    # nbval refuses a cell with outputs and no execution count ("Unrun reference cell has
    # outputs"); the cell is skipped there instead (tests/test_colab.py runs its source).
    cell.metadata = {"tags": [colab.CELL_TAG, "nbval-skip"]}
    cell.execution_count = None
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]

    new = nbformat.writes(nb)
    new += "\n" if text.endswith("\n") else ""  # keep the file's last byte as it was
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv=None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    output = cell_output(colab.setup_cell_source())
    for path in paths:
        changed = update(path, output)
        print(f"{'updated' if changed else 'unchanged'}  {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
