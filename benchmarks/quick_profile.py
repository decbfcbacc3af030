"""Benchmark of the quick profile against its baseline, in one run on the same machine.

Protocol (issues 2 and 7): train on real photos with fresh rotations each epoch, on the CPU;
evaluate on 328 photos the network never saw (the COCO-2017 val2017 sample and BSDS500 test)
rotated by 6 seeded angles and cropped to the largest inscribed rectangle, so that no border
pixels remain. Both runs get the same photos and the same time budget (training only: the clock
stops while validating).

- **baseline**: the quick profile of before issue 7 — ResNet18 from random weights, 64 px,
  Adam, cosine to the budget, EMA of the weights, bfloat16 (``BASELINE`` below);
- **candidate**: the quick profile of ``rotation_utils.profiles`` as it is now (every option
  below overrides one of its fields), also scored with test-time averaging over the 4 turns.

    python benchmarks/quick_profile.py --photos ../shared/data/photos              # both, ratio
    python benchmarks/quick_profile.py --photos ../shared/data/photos --runs candidate --image-size 96

``--train-set all`` (default) trains on every photo of the folder but the 328 held out;
``--train-set small`` on the 508 of issue 2 (BSDS500 train+val, COCO train2017 sample, SUN80).
Prints one line per run, the table side by side with the ratio, and a JSON record.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rotation_utils import config, evaluation, models, profiles, sources
from rotation_utils.training import fit, make_loaders

SMALL_TRAIN = ["bsds500/train", "bsds500/val", "coco2017_sample/train2017", "sun80"]
HELD_OUT = ["coco2017_sample/val2017", "bsds500/test"]

#: The quick profile before issue 7 (random ResNet18 at 64 px): the baseline of the aim.
BASELINE = dict(backbone="resnet18", weights="random", image_size=64, lr=1e-3, weight_decay=1e-4,
                optimizer="adam", backbone_lr_factor=1.0, warmup_steps=0, ema_decay=0.998, cpu_bf16=True,
                channels_last=True, min_scale=0.5, train_repeats=4, batch_size=32, lr_schedule="cosine",
                width=64, tta=False)
TUNABLE = ("backbone", "weights", "image_size", "time_budget_s", "batch_size", "lr", "weight_decay",
           "optimizer", "backbone_lr_factor", "warmup_steps", "train_repeats", "ema_decay", "min_scale",
           "train_trainable")


def split_photos(root: Path, train_set: str) -> tuple[list[Path], list[Path]]:
    """(training photos, the 328 held-out photos) under the shared photos folder ``root``.
    Raises SystemExit with a message when the folder or its held-out part is missing."""
    if not root.is_dir():
        raise SystemExit(f"no such folder: {root}")
    held_out = [p for sub in HELD_OUT for p in sources.find_images(root / sub)] \
        if all((root / sub).is_dir() for sub in HELD_OUT) else []
    if not held_out:
        raise SystemExit(f"{root} has no {' or '.join(HELD_OUT)}: point --photos at ../shared/data/photos")
    if train_set == "small":
        train = [p for sub in SMALL_TRAIN for p in sources.find_images(root / sub)]
    else:
        held = {p.resolve() for p in held_out}
        train = [p for p in sources.find_images(root) if p.resolve() not in held]
    return train, held_out


def run_one(name: str, overrides: dict, train_paths, val_paths, out_dir: Path, progress: bool) -> dict:
    """Train one profile on ``train_paths`` and score it on ``val_paths`` × 6 rotations (crop)."""
    profile = profiles.get_profile("quick", patience=10**6, **overrides)
    config.seed_everything(0)
    t0 = time.monotonic()
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, val_rotations=6, seed=0)
    decode_s = time.monotonic() - t0
    model, _ = models.regressor_for_profile(profile, verbose=False)
    summary = fit(model, train_loader, val_loader, profile, out_dir / name, device="cpu", progress=progress)
    best, _ = models.load_checkpoint(out_dir / name / "best.pt", verbose=False)
    plain = evaluation.evaluate_loader(best, val_loader, "cpu", cpu_bf16=profile.cpu_bf16)["summary"]
    t1 = time.monotonic()
    turned = evaluation.evaluate_loader(best, val_loader, "cpu", cpu_bf16=profile.cpu_bf16, tta=True)["summary"]
    row = {"name": name, "backbone": profile.backbone, "weights": profile.weights,
           "image_size": profile.image_size, "train_photos": len(train_paths),
           "train_seconds": summary["train_seconds"], "epochs": len(summary["history"]),
           "best_epoch": summary["best_epoch"], "images_seen": sum(len(train_loader.dataset) for _ in
                                                                   summary["history"]),
           "decode_seconds": decode_s, "tta_seconds": time.monotonic() - t1,
           "val": plain, "val_tta": turned, "settings": overrides}
    print(f"{name}: {profile.backbone} ({profile.weights}) {profile.image_size} px, "
          f"{row['epochs']} epochs in {row['train_seconds']:.0f} s on {len(train_paths)} photos: "
          f"MAE {plain['mae_deg']:.1f}°, median {plain['median_deg']:.1f}°; "
          f"with 4-turn TTA {turned['mae_deg']:.1f}° / {turned['median_deg']:.1f}°", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder (../shared/data/photos)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", default="baseline,candidate",
                        help="comma-separated: baseline, candidate, and baseline-small / candidate-small "
                             "(the same on the 508 photos of issue 2)")
    parser.add_argument("--train-set", choices=("all", "small"), default="all")
    parser.add_argument("--progress", action="store_true", help="per-epoch lines")
    quick = profiles.PROFILES["quick"]
    for field in TUNABLE:
        default = getattr(quick, field)
        kind = {bool: int}.get(type(default), type(default)) if default is not None else float
        parser.add_argument("--" + field.replace("_", "-"), type=kind, default=None,
                            help=f"override the quick profile's {field} (now {default})")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.photos)
    train_paths, val_paths = split_photos(root, args.train_set)
    small_paths, _ = split_photos(root, "small")
    print(f"train photos {len(train_paths)}, held-out photos {len(val_paths)} × 6 rotations (crop)")
    candidate = {f: getattr(args, f) for f in TUNABLE if getattr(args, f) is not None}
    budget = {"time_budget_s": candidate.get("time_budget_s", quick.time_budget_s)}
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="quick-bench-"))
    rows = []
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        if name == "baseline":
            rows.append(run_one(name, {**BASELINE, **budget}, train_paths, val_paths, out, args.progress))
        elif name == "candidate":
            rows.append(run_one(name, candidate, train_paths, val_paths, out, args.progress))
        elif name == "baseline-small":
            rows.append(run_one(name, {**BASELINE, **budget}, small_paths, val_paths, out, args.progress))
        elif name == "candidate-small":
            rows.append(run_one(name, candidate, small_paths, val_paths, out, args.progress))
        else:
            raise SystemExit(f"unknown run {name!r}")
    print()
    print(f"{'run':<16}{'weights':>10}{'px':>5}{'photos':>8}{'epochs':>8}{'train s':>9}"
          f"{'MAE':>8}{'median':>8}{'MAE tta':>9}{'med tta':>9}")
    for row in rows:
        print(f"{row['name']:<16}{row['weights']:>10}{row['image_size']:>5}{row['train_photos']:>8}"
              f"{row['epochs']:>8}{row['train_seconds']:>9.0f}{row['val']['mae_deg']:>7.1f}°"
              f"{row['val']['median_deg']:>7.1f}°{row['val_tta']['mae_deg']:>8.1f}°{row['val_tta']['median_deg']:>8.1f}°")
    by_name = {row["name"]: row for row in rows}
    if "baseline" in by_name and "candidate" in by_name:
        base, cand = by_name["baseline"]["val"]["mae_deg"], by_name["candidate"]["val"]["mae_deg"]
        print(f"ratio candidate / baseline MAE: {cand / base:.2f} (aim ≤ 0.6); "
              f"with the candidate's TTA: {by_name['candidate']['val_tta']['mae_deg'] / base:.2f}")
    print(json.dumps(rows))
    (out / "benchmark.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
