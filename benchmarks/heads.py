"""Five heads on one budget: which way of asking for an angle works best? (issue 9)

The quick profile's recipe (EfficientNet-Lite0 from ImageNet weights, 160 px, AdamW, cosine to
the time budget, EMA) with each head of :mod:`rotation_utils.heads` in turn — the same photos,
augmentation, seeds and time budget — scored on the 328 held-out photos of
``benchmarks/quick_profile.py`` (COCO val2017 sample and BSDS500 test), each rotated by 6 seeded
angles with the ``crop`` border, in one pass and with the four 90° turns:

    python benchmarks/heads.py --photos ../shared/data/photos                         # 5 heads × 270 s
    python benchmarks/heads.py --photos ../shared/data/photos --time-budget-s 60 --seeds 0,1
    python benchmarks/heads.py --photos ../shared/data/photos --heads cos_sin_mse,von_mises
    python benchmarks/heads.py --photos ../shared/data/photos --epochs 4 --seeds 0,1        # bound by epochs

``--epochs N`` bounds every run by N epochs instead of the clock (the cosine schedule then runs
over N epochs), so every head sees the same images even when the machine is shared and a clock
would hand one head fewer steps than another; 4 epochs is what the 270-second budget reaches on
2 idle CPU cores.

Columns: MAE, median, p90, within 5/10/15°, the share of errors near 90° (a quarter turn,
80–100°) and near 180° (upside down, > 170°), the training time; the same with the four turns.
With several seeds each figure is the mean and the spread (max − min) is printed too.
Notebook 07 runs the same comparison on a shorter budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quick_profile import split_photos  # noqa: E402 - the same 328 held-out photos

from rotation_utils import config, evaluation, heads, models, profiles  # noqa: E402
from rotation_utils.training import fit, make_loaders  # noqa: E402


def run_head(head: str, seed: int, train_paths, val_paths, out_dir: Path, budget_s: float, bins: int,
             epochs: int | None = None) -> dict:
    """Train the quick recipe with ``head`` for ``budget_s`` seconds (or ``epochs`` epochs, no clock);
    score it with and without turns."""
    bound = {"time_budget_s": budget_s} if epochs is None else {"time_budget_s": None, "epochs": epochs}
    profile = profiles.get_profile("quick", head=head, bins=bins, patience=10**6, **bound)
    config.seed_everything(seed)
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, val_rotations=6, seed=seed)
    model, _ = models.regressor_for_profile(profile, verbose=False)
    folder = out_dir / f"{head}-seed{seed}"
    summary = fit(model, train_loader, val_loader, profile, folder, device="cpu", progress=False, overwrite=True)
    best, metadata = models.load_checkpoint(folder / "best.pt", verbose=False)
    scores = {}
    for name, tta in (("one_pass", False), ("four_turns", True)):
        result = evaluation.evaluate_loader(best, val_loader, "cpu", tta=tta, head=head, bins=bins)
        scores[name] = {**result["summary"], **evaluation.turn_mix_ups(result["error_deg"])}
    row = {"head": head, "seed": seed, "epochs": len(summary["history"]), "train_seconds": summary["train_seconds"],
           **scores}
    print(f"{head:<20} seed {seed}: {row['epochs']} epochs in {row['train_seconds']:.0f} s, "
          f"MAE {scores['one_pass']['mae_deg']:.1f}°, median {scores['one_pass']['median_deg']:.1f}°; "
          f"four turns {scores['four_turns']['mae_deg']:.1f}°", flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder (../shared/data/photos)")
    parser.add_argument("--heads", default=",".join(heads.HEADS), help="comma-separated heads")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (two show the spread)")
    parser.add_argument("--time-budget-s", type=float, default=profiles.PROFILES["quick"].time_budget_s)
    parser.add_argument("--epochs", type=int, default=None,
                        help="bound each run by this many epochs instead of the time budget")
    parser.add_argument("--bins", type=int, default=72, help="bins of bins_expected")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    chosen = [h.strip() for h in args.heads.split(",") if h.strip()]
    for head in chosen:
        heads.head_spec(head)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    torch.set_num_threads(args.threads)
    train_paths, val_paths = split_photos(Path(args.photos), "all")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="heads-bench-"))
    print(f"train photos {len(train_paths)}, held-out photos {len(val_paths)} × 6 rotations (crop), "
          + (f"{args.epochs} epochs of training per run" if args.epochs else
             f"{args.time_budget_s:.0f} s of training per run"))
    start = time.monotonic()
    rows = [run_head(head, int(seed), train_paths, val_paths, out, args.time_budget_s, args.bins, args.epochs)
            for seed in args.seeds.split(",") for head in chosen]
    print("\none pass\n" + evaluation.head_comparison_table(rows, "one_pass"))
    print("\nwith the four 90° turns\n" + evaluation.head_comparison_table(rows, "four_turns"))
    print(f"\n{len(rows)} runs in {time.monotonic() - start:.0f} s")
    print(json.dumps(rows))
    (out / "heads.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
