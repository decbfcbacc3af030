"""The README's gallery: one figure per notebook, taken from the notebooks' stored outputs.

    python scripts/readme_figures.py          # write docs/figures/NN.png and print the README table
    python scripts/readme_figures.py --check  # exit 1 when a figure no longer matches its notebook

Each figure is the first figure (PNG or JPEG output) of one cell (named by its cell id in ``FIGURES``), scaled
to ``WIDTH`` pixels wide. The table gives each notebook's run time: the sum of its cells'
execution times in the stored outputs (a real run of the quick profile on two CPU cores).
A test (tests/test_course_materials.py) runs the check, so a notebook re-executed without
``python scripts/readme_figures.py`` fails it.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES_DIR = ROOT / "docs" / "figures"
WIDTH = 520

#: notebook file -> (id of the cell whose first figure is shown, caption)
FIGURES = {
    "01_angles_on_a_circle.ipynb": ("3b85e570", "a degree regressor fails at the 0°/360° seam"),
    "02_when_angle_regression_goes_wrong.ipynb": ("5f276afd", "tanh + cosine proximity collapses to a few angles"),
    "03_building_a_rotated_dataset.ipynb": ("1fc3069d", "four border strategies for a rotated photo"),
    "04_training_a_rotation_regressor.ipynb": ("9c9a958d", "training curves of the (cos θ, sin θ) regressor"),
    "05_measuring_circular_error.ipynb": ("0f031683", "circular error against the true angle"),
    "06_what_the_network_looks_at.ipynb": ("0cc47fb9", "Grad-CAM along the predicted direction"),
    "07_classification_or_regression.ipynb": ("2b6be291", "five heads on the same features and budget"),
    "08_head_pose.ipynb": ("p3focal1", "PnP on synthetic faces: error against the assumed focal length"),
    "09_straightening_real_photos.ipynb": ("f1ce34d7", "held-out photos turned and straightened"),
}


def _seconds(nb: dict) -> float:
    total = 0.0
    for cell in nb["cells"]:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start = dt.datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            total += (end - start).total_seconds()
    return total


def figure_png(notebook: Path, cell_id: str) -> bytes:
    """The first figure (PNG or JPEG) of the cell ``cell_id`` of ``notebook``, scaled to WIDTH pixels wide,
    as PNG bytes. Raises KeyError when the cell or its figure is not there."""
    from PIL import Image

    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell.get("id") == cell_id:
            for output in cell.get("outputs", []):
                data = output.get("data", {}).get("image/png") or output.get("data", {}).get("image/jpeg")
                if data:
                    image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
                    height = round(image.height * WIDTH / image.width)
                    buffer = io.BytesIO()
                    image.resize((WIDTH, height), Image.LANCZOS).save(buffer, format="PNG", optimize=True)
                    return buffer.getvalue()
            raise KeyError(f"{notebook.name}: cell {cell_id} has no figure")
    raise KeyError(f"{notebook.name}: no cell with id {cell_id}")


def _same_pixels(a: bytes, b: bytes, tolerance: float = 2.0) -> bool:
    """True when two PNGs show the same picture: equal bytes, or the same size and a mean
    absolute difference of at most ``tolerance`` (of 255) per channel, so that another Pillow's
    encoder or resampling does not count as a change."""
    if a == b:
        return True
    import numpy as np
    from PIL import Image

    x, y = (np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) for data in (a, b))
    return x.shape == y.shape and float(np.abs(x - y).mean()) <= tolerance


def figure_path(notebook_name: str) -> Path:
    """Where the README's figure of a notebook lives: docs/figures/NN.png."""
    return FIGURES_DIR / f"{notebook_name[:2]}.png"


def table() -> str:
    """The README's gallery as Markdown: notebook, figure, run time on two CPU cores."""
    rows = ["| notebook | a figure from its stored outputs | 2 CPU cores |", "|---|---|---|"]
    for name, (_, caption) in FIGURES.items():
        nb = json.loads((NOTEBOOKS / name).read_text())
        title = next(line.lstrip("# ").strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                     for line in "".join(cell["source"]).splitlines() if line.startswith("# "))
        minutes = _seconds(nb) / 60
        rows.append(f"| [{title}](notebooks/{name}) | ![{caption}](docs/figures/{name[:2]}.png) "
                    f"| {minutes:.1f} min |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, (cell_id, _) in FIGURES.items():
        png = figure_png(NOTEBOOKS / name, cell_id)
        path = figure_path(name)
        if path.is_file() and _same_pixels(path.read_bytes(), png):
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} does not match its notebook: run python scripts/readme_figures.py")
        return 1 if stale else 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
