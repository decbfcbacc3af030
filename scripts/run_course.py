"""Run every notebook in order into runs/<timestamp>/ (what `make course` does).

The committed notebooks are never overwritten: executed copies and every artifact (FiftyOne
images aside, which go to data/) land in the run folder. Ends by printing the trained model's
validation figures and where the figures are.

    python scripts/run_course.py [--profile quick] [--notebooks 01 03 ...] [--timeout 1800] [--inplace]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _show(path: Path) -> str:
    """A path relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("ROTATION_COURSE_PROFILE", "quick"))
    parser.add_argument("--notebooks", nargs="*", help="number prefixes to run (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", help="run folder (default runs/<timestamp>)")
    parser.add_argument("--inplace", action="store_true",
                        help="maintainers: store the outputs in the committed notebooks themselves")
    args = parser.parse_args(argv)

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run = Path(args.out) if args.out else ROOT / "runs" / stamp
    run.mkdir(parents=True, exist_ok=False)
    # Relative folders are meant from the project root; the kernels start in notebooks/.
    for name in ("ROTATION_COURSE_IMAGES", "ROTATION_COURSE_MNIST", "ROTATION_COURSE_HEAD_POSE"):
        if os.environ.get(name):
            os.environ[name] = os.pathsep.join(str((ROOT / p).resolve()) if not Path(p).is_absolute() else p
                                               for p in os.environ[name].split(os.pathsep) if p)
    os.environ.update(ROTATION_COURSE_PROFILE=args.profile, ROTATION_COURSE_RUN_DIR=str(run / "artifacts"),
                      FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_DATABASE_VALIDATION="false")
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.notebooks]
    images = os.environ.get("ROTATION_COURSE_IMAGES") or "the offline photos shipped in packages"
    print(f"profile {args.profile}, photos: {images}\nrun folder: {_show(run)}")
    total = time.monotonic()
    skipped = []
    for path in notebooks:
        start = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        needs = nb.metadata.get("rotation_course", {})
        if needs.get("requires_env") and not os.environ.get(needs["requires_env"], "").strip():
            skipped.append(path.name)
            print(f"skip {path.name:45s} it needs {needs.get('requires', 'its data')}: set {needs['requires_env']}")
            continue
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        try:
            client.execute()
        except CellExecutionError as err:
            nbformat.write(nb, run / path.name)
            print(f"FAILED {path.name} after {time.monotonic() - start:.0f} s; the executed copy with the "
                  f"error is {_show(run / path.name)}\n{str(err)[-2000:]}")
            return 1
        nbformat.write(nb, path if args.inplace else run / path.name)
        print(f"ok  {path.name:45s} {time.monotonic() - start:6.0f} s")
    print(f"{len(notebooks) - len(skipped)} notebooks ran in {time.monotonic() - total:.0f} s"
          + (f"; skipped for want of data: {', '.join(skipped)}" if skipped else ""))

    summary_path = run / "artifacts" / "training_summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        val = summary["val"]
        print(f"\ntrained model ({summary.get('weights', '?')} start weights, {summary['train_seconds']:.0f} s of "
              f"training, {val['n']} validation samples of photos it never trained on):\n"
              f"validation MAE {val['mae_deg']:.2f}°, median {val['median_deg']:.2f}°, "
              f"within 5° {100 * val['within_5']:.1f}%, within 10° {100 * val['within_10']:.1f}%"
              f"  (guessing: 90°; reference result: 4.57°)")
    figures = sorted((run / "artifacts").glob("*.png"))
    if figures:
        print("figures:\n" + "\n".join(f"  {_show(f)}" for f in figures))
    print("notebooks updated in place" if args.inplace else f"executed notebooks: {_show(run)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
