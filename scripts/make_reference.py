"""Turn a finished `rotation-course train` run into the course's reference checkpoint.

    python scripts/make_reference.py RUN_DIR OUT_DIR --images PHOTOS [--name NAME]

Writes into OUT_DIR (which must not hold those files yet): ``NAME.pt``, the run's ``best.pt`` in
half precision (``models.half_precision_copy``); ``training_summary.json``, the run's own;
``trained_on.txt``, a digest of every training photo (``reference.photo_digest``), so that the
notebooks measure the reference only on photos it never saw; and
``held_out.json``, the checkpoint's figures on the run's validation photos — the photos of
PHOTOS that ``rotation-course train`` held out (``datasets.split_photos`` with the run's
validation share and seed) — each rotated by 6 seeded angles with the ``crop`` border, in one
pass and with the four 90° turns, measured on the half-precision file itself. With
``--left-out DIR`` (repeat), the same figures on every photo of those folders, collections the
run never trained on, under ``out_of_collection`` (issue 19: the figure a user meets).

    python scripts/make_reference.py RUN_DIR OUT_DIR --images PHOTOS [--name NAME] [--left-out DIR ...]
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
    parser.add_argument("--left-out", action="append", default=[], metavar="DIR",
                        help="a collection the run never trained on, scored as out of collection (repeat)")
    args = parser.parse_args(argv)
    for folder in args.left_out:
        if not Path(folder).is_dir():
            raise SystemExit(f"--left-out {folder}: no such folder")
    summary_path = args.run_dir / "training_summary.json"
    if not summary_path.is_file():
        raise SystemExit(f"{args.run_dir} holds no training_summary.json: not a finished run")
    targets = [args.out_dir / f"{args.name}.pt", args.out_dir / "training_summary.json",
               args.out_dir / "held_out.json", args.out_dir / "trained_on.txt"]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise SystemExit(f"refusing to overwrite {existing}")
    summary = json.loads(summary_path.read_text())
    photos = sources.resolve_photos(args.images, max_photos=None, verbose=False).paths
    train_photos, val_photos = datasets.split_photos(photos, summary["profile"]["val_fraction"],
                                                     seed=summary.get("split_seed", 0))
    if summary.get("n_train_photos") not in (None, len(train_photos)):
        raise SystemExit(f"the run trained on {summary['n_train_photos']} photos, but --images gives "
                         f"{len(train_photos)} training photos: name the folders it trained on")
    unseen = sources.resolve_photos(args.left_out, max_photos=None, verbose=False).paths if args.left_out else []
    seen = {reference.photo_digest(p) for p in train_photos}
    trained = [p for p in unseen if reference.photo_digest(p) in seen]
    if trained:
        raise SystemExit(f"--left-out: {len(trained)} of its photos are training photos of the run, "
                         f"e.g. {trained[0]}: not out of collection")
    checkpoint = models.half_precision_copy(args.run_dir / "best.pt", targets[0])
    shutil.copy2(summary_path, targets[1])
    targets[3].write_text("# SHA-256 (first 16 hex digits) of each photo the reference trained on\n"
                          + "".join(sorted(f"{reference.photo_digest(p)}\n" for p in train_photos)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = evaluation.link_photos(val_photos, Path(tmp) / "val")
        held_out = {"trained_on_collections": [Path(f).name for f in args.images],
                    "photos": len(val_photos), "rotations": 6, "border": "crop",
                    "one_pass": evaluation.evaluate_folder(checkpoint, folder),
                    "four_turns": evaluation.evaluate_folder(checkpoint, folder, tta=True)}
    if args.left_out:
        with tempfile.TemporaryDirectory() as tmp:
            folder = evaluation.link_photos(unseen, Path(tmp) / "unseen")
            held_out["out_of_collection"] = {
                "collections": [Path(f).name for f in args.left_out], "photos": len(unseen), "rotations": 6,
                "border": "crop", "one_pass": evaluation.evaluate_folder(checkpoint, folder),
                "four_turns": evaluation.evaluate_folder(checkpoint, folder, tta=True)}
    targets[2].write_text(json.dumps(held_out, indent=2))
    print(json.dumps(held_out))
    print(f"wrote {', '.join(str(t) for t in targets)} ({checkpoint.stat().st_size / 1e6:.1f} MB checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
