"""Turn a finished `rotation-course train` run into the course's reference checkpoint.

    python scripts/make_reference.py RUN_DIR OUT_DIR --images PHOTOS [--name NAME]

Writes into OUT_DIR (which must not hold those files yet): ``NAME.pt``, the run's ``best.pt`` in
half precision (``models.half_precision_copy``); ``training_summary.json``, the run's own;
``trained_on.txt``, a digest of every training photo (``reference.photo_digest``), so that the
notebooks measure the reference only on photos it never saw; and
``held_out.json``, the checkpoint's figures on the run's validation photos — the photos of
PHOTOS that ``rotation-course train`` held out (``datasets.split_photos`` with the run's
validation share and seed) — each rotated by 6 seeded angles with the ``crop`` border, in one
pass and with the four 90° turns, measured on the half-precision file itself.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from rotation_utils import datasets, evaluation, models, reference, sources


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--images", required=True, action="append", help="the folder(s) the run trained on")
    parser.add_argument("--name", default="reference")
    args = parser.parse_args(argv)
    summary_path = args.run_dir / "training_summary.json"
    if not summary_path.is_file():
        raise SystemExit(f"{args.run_dir} holds no training_summary.json: not a finished run")
    targets = [args.out_dir / f"{args.name}.pt", args.out_dir / "training_summary.json",
               args.out_dir / "held_out.json", args.out_dir / "trained_on.txt"]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise SystemExit(f"refusing to overwrite {existing}")
    summary = json.loads(summary_path.read_text())
    checkpoint = models.half_precision_copy(args.run_dir / "best.pt", targets[0])
    shutil.copy2(summary_path, targets[1])
    photos = sources.resolve_photos(args.images, max_photos=None, verbose=False).paths
    train_photos, val_photos = datasets.split_photos(photos, summary["profile"]["val_fraction"],
                                                     seed=summary.get("split_seed", 0))
    targets[3].write_text("# SHA-256 (first 16 hex digits) of each photo the reference trained on\n"
                          + "".join(sorted(f"{reference.photo_digest(p)}\n" for p in train_photos)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = evaluation.link_photos(val_photos, Path(tmp) / "val")
        held_out = {"photos": len(val_photos), "rotations": 6, "border": "crop",
                    "one_pass": evaluation.evaluate_folder(checkpoint, folder),
                    "four_turns": evaluation.evaluate_folder(checkpoint, folder, tta=True)}
    targets[2].write_text(json.dumps(held_out, indent=2))
    print(json.dumps(held_out))
    print(f"wrote {', '.join(str(t) for t in targets)} ({checkpoint.stat().st_size / 1e6:.1f} MB checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
