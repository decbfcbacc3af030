"""Head pose on one budget: the baselines without a CNN, HopeNet's α, and four backbones (issue 10).

Every CNN trains the same way (:func:`rotation_utils.headpose.run_cnn`): Pointing'04's training
persons and the 43 AFLW2000 faces of ``aflw2000_more/`` (shown 8 times), flipped and turned in
the plane with exact labels, at 112 px, Adam 1e-3, batch 16, clipping at 1.0, for ``--epochs``
epochs on the CPU. It is scored on the 16 AFLW2000 faces of ``aflw2000_sample/`` (yaw, pitch,
roll) and on Pointing'04's test persons (yaw and pitch). The baselines (68 landmarks + PnP, and
landmarks → MLP) are fitted on the same 43 AFLW2000 training faces.

    python benchmarks/headpose.py --head-pose ../shared/data/head_pose                # all rows, 3 epochs
    python benchmarks/headpose.py --head-pose ../shared/data/head_pose --epochs 1 --rows lite0_a1
    python benchmarks/headpose.py --head-pose ../shared/data/head_pose --rows lite0_a0.01 --append

Writes ``benchmarks/results/headpose_<epochs>_epochs.json`` (``--out`` to change) and prints the
table: parameters, training images/s on this machine, MAE per angle and their mean.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rotation_utils import headpose as hp
from rotation_utils.backbones import WeightsUnavailableError

ROWS = {  # name: (backbone, weights, alpha)
    "lite0_a0": ("efficientnet_lite0", "imagenet", 0.0),
    "lite0_a1": ("efficientnet_lite0", "imagenet", 1.0),
    "lite0_a2": ("efficientnet_lite0", "imagenet", 2.0),
    "lite0_a0.01": ("efficientnet_lite0", "imagenet", 0.01),
    "resnet18_a1": ("resnet18", "imagenet", 1.0),
    "mobilenet_v2_a1": ("mobilenet_v2", "imagenet", 1.0),
    "small_cnn_a1": ("small_cnn", "random", 1.0),
}


def baselines(splits) -> list[dict]:
    """PnP on the ground-truth landmarks with the training faces' mean 3-D shape, and the MLP."""
    truth = np.stack([s.angles_deg for s in splits.aflw_test])
    shape = hp.mean_face_shape(splits.aflw_train)
    rows = []
    start = time.perf_counter()
    pnp = np.stack([hp.solve_pnp_pose(s.landmarks, shape, (450, 450)) for s in splits.aflw_test])
    rows.append({"method": "68 landmarks (ground truth) + PnP", "aflw2000": hp.pose_errors(pnp, truth),
                 "seconds": time.perf_counter() - start})
    start = time.perf_counter()
    mlp = hp.fit_landmark_mlp(splits.aflw_train)
    rows.append({"method": "68 landmarks (ground truth) → MLP",
                 "aflw2000": hp.pose_errors(hp.predict_landmark_mlp(mlp, splits.aflw_test), truth),
                 "seconds": time.perf_counter() - start})
    return rows


def _fmt(errors) -> str:
    if errors is None:
        return " " * 27
    cells = [errors.get(f"{a}_mae_deg") for a in ("yaw", "pitch", "roll")] + [errors["mae_deg"]]
    return " ".join("   —  " if v is None else f"{v:6.1f}" for v in cells)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-pose", help="the head-pose folder (default: $ROTATION_COURSE_HEAD_POSE)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON file (default benchmarks/results/headpose_<epochs>_epochs.json)")
    parser.add_argument("--append", action="store_true",
                        help="add the rows to the JSON file's (same epochs, size and seed), replacing rows of the same name")
    args = parser.parse_args(argv)
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; the rows are {', '.join(ROWS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    splits = hp.course_splits(args.head_pose, seed=args.seed)
    print(f"AFLW2000: {len(splits.aflw_train)} training faces, {len(splits.aflw_test)} test faces; "
          f"Pointing'04: {len(splits.pointing_train)} training images, {len(splits.pointing_test)} test images "
          f"(persons {', '.join(sorted({s.person for s in splits.pointing_test}))}); "
          f"{len(splits.skipped)} files skipped", flush=True)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"headpose_{args.epochs}_epochs.json"
    result = {"epochs": args.epochs, "size": args.size, "seed": args.seed,
              "n": {"aflw_train": len(splits.aflw_train), "aflw_test": len(splits.aflw_test),
                    "pointing_train": len(splits.pointing_train), "pointing_test": len(splits.pointing_test)},
              "pointing_test_persons": sorted({s.person for s in splits.pointing_test}),
              "baselines": baselines(splits), "cnn": []}
    if args.append and out.exists():
        earlier = json.loads(out.read_text())
        if (earlier["epochs"], earlier["size"], earlier["seed"]) != (args.epochs, args.size, args.seed):
            parser.error(f"{out.name} holds another setting (epochs, size, seed); --append needs the same")
        result["cnn"] = [row for row in earlier["cnn"] if row["row"] not in args.rows.split(",")]
    test_sets = hp.evaluation_sets(splits, args.size)
    for name in args.rows.split(","):
        backbone, weights, alpha = ROWS[name]
        try:
            row = hp.run_cnn(splits, backbone, weights, alpha, args.epochs, args.size, args.seed, test_sets=test_sets)
        except WeightsUnavailableError as err:
            print(f"{name}: ImageNet weights unavailable ({str(err)[:80]}…); trained from random weights instead")
            row = hp.run_cnn(splits, backbone, "random", alpha, args.epochs, args.size, args.seed, test_sets=test_sets)
        row.pop("model")
        row["row"] = name
        result["cnn"].append(row)
        print(f"{name:16s} {row['weights']:8s} α={alpha:g}  {row['parameters'] / 1e6:5.2f} M  "
              f"{row['train_images_per_s']:5.1f} img/s  AFLW2000 {_fmt(row['aflw2000'])}  "
              f"Pointing'04 {_fmt(row.get('pointing04'))}", flush=True)
    result["cnn"].sort(key=lambda row: list(ROWS).index(row["row"]))
    print("\nMAE in degrees: yaw, pitch, roll, mean (Pointing'04 has no roll label)")
    print(f"{'method':44s} {'AFLW2000 (n=' + str(len(splits.aflw_test)) + ')':28s} "
          f"Pointing'04 (n={len(splits.pointing_test)})")
    for row in result["baselines"]:
        print(f"{row['method']:44s} {_fmt(row['aflw2000'])}")
    for row in result["cnn"]:
        label = f"HopeNet {row['backbone']} ({row['weights']}), α={row['alpha']:g}"
        print(f"{label:44s} {_fmt(row['aflw2000'])}  {_fmt(row.get('pointing04'))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
