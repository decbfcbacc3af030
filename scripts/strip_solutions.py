"""Write learners' copies of the notebooks: solution cells removed, outputs cleared.

    python scripts/strip_solutions.py notebooks learner_notebooks

A solution cell is a cell whose metadata tags include "solution"; the exercise cell before it
(with `None` to replace) and the check cell after it stay, so a learner can still check an answer.
Never writes into the source folder.
"""
import sys
from pathlib import Path

import nbformat


def strip(source: Path, target: Path) -> int:
    """Copy every notebook of ``source`` to ``target`` without solutions; returns cells removed."""
    if source.resolve() == target.resolve():
        raise SystemExit("the learner copy must go to another folder than the notebooks")
    target.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in sorted(source.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        kept = []
        for cell in nb.cells:
            if "solution" in cell.get("metadata", {}).get("tags", []):
                removed += 1
                continue
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            kept.append(cell)
        nb.cells = kept
        nbformat.write(nb, target / path.name)
    return removed


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    n = strip(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"learner copies written to {sys.argv[2]}/ ({n} solution cells removed)")
