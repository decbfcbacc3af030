"""Benchmark of the quick profile: train on part of a photo collection, evaluate on the rest.

Protocol (issue 2): train on 508 real photos (BSDS500 train+val, COCO-2017 train sample,
SUN80) with fresh rotations each epoch, from random weights, on the CPU; evaluate on photos the
network never saw (COCO-2017 val sample + BSDS500 test, 328 photos) rotated by 6 seeded angles
and cropped to the largest inscribed rectangle so that no border pixels remain.
Baseline to beat: about 60° MAE after 12 minutes at 112 px (guessing gives 90°).

    python benchmarks/quick_profile.py --photos ../shared/data/photos [--image-size 64 ...]

Prints the training time and the validation figures (degrees) and writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from rotation_utils import config, profiles, sources
from rotation_utils.models import build_resnet18_regressor
from rotation_utils.training import fit, make_loaders

TRAIN = ["bsds500/train", "bsds500/val", "coco2017_sample/train2017", "sun80"]
HELD_OUT = ["coco2017_sample/val2017", "bsds500/test"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder (../shared/data/photos)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    for field in ("image_size", "epochs", "time_budget_s", "batch_size", "lr", "lr_step_epochs",
                  "lr_gamma", "train_repeats", "weight_decay", "ema_decay", "width", "lr_schedule",
                  "min_scale"):
        default = getattr(profiles.PROFILES["quick"], field)
        parser.add_argument("--" + field.replace("_", "-"), type=type(default) if default is not None else float,
                            default=default)
    parser.add_argument("--no-hflip", action="store_true")
    parser.add_argument("--no-cpu-bf16", action="store_true", help="float32 on the CPU")
    parser.add_argument("--progress", action="store_true", help="show tqdm bars and per-epoch lines")
    parser.add_argument("--channels-last", type=int, choices=(0, 1), default=None,
                        help="channels-last memory format (default: the profile's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config.seed_everything(0)
    root = Path(args.photos)
    train_paths = [p for sub in TRAIN for p in sources.find_images(root / sub)]
    val_paths = [p for sub in HELD_OUT for p in sources.find_images(root / sub)]
    print(f"train photos {len(train_paths)}, held-out photos {len(val_paths)}")
    overrides = {k: getattr(args, k) for k in ("image_size", "epochs", "time_budget_s", "batch_size", "lr",
                                               "lr_step_epochs", "lr_gamma", "train_repeats", "weight_decay",
                                               "ema_decay", "width", "lr_schedule", "min_scale")}
    if args.channels_last is not None:
        overrides["channels_last"] = bool(args.channels_last)
    if args.no_cpu_bf16:
        overrides["cpu_bf16"] = False
    profile = profiles.get_profile("quick", hflip=not args.no_hflip, patience=10**6, **overrides)
    t0 = time.monotonic()
    # The course's own loaders (training.make_loaders): fresh rotations for training, 6 seeded
    # rotations with the crop border for validation, photos cached in memory.
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, val_rotations=6, seed=0)
    train_set = train_loader.dataset
    print(f"decoded and cached the photos in {time.monotonic() - t0:.1f} s")
    model, weights = build_resnet18_regressor(pretrained=False, width=profile.width)
    out = Path(args.out) if args.out else Path(config.run_dir()) / f"bench-{int(time.time())}"
    summary = fit(model, train_loader, val_loader, profile, out, device="cpu", progress=args.progress)
    result = {"train_seconds": summary["train_seconds"], "best_epoch": summary["best_epoch"],
              "epochs_run": len(summary["history"]), "samples_seen": sum(
                  len(train_set) for _ in summary["history"]),  # upper bound: last epoch may stop early
              "best_val": summary["val"], "stop_reason": summary["stop_reason"], "weights": weights,
              "settings": {**overrides, "hflip": profile.hflip, "cache_side": train_set.cache_short_side}}
    val = summary["val"]
    print(json.dumps(result, indent=2))
    print(f"quick profile on {len(val_paths)} held-out photos × 6 rotations (crop): MAE {val['mae_deg']:.1f}°, "
          f"median {val['median_deg']:.1f}°, within 10° {100 * val['within_10']:.1f}%, after "
          f"{summary['train_seconds']:.0f} s of training ({len(summary['history'])} epochs)")
    (out / "benchmark.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
