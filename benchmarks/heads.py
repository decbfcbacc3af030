"""Five heads on one budget: which way of asking for an angle works best? (issue 9)

The quick profile's recipe (EfficientNet-Lite0 from ImageNet weights, 160 px, AdamW, cosine to
the time budget, EMA) with each head of :mod:`rotation_utils.heads` in turn — the same photos,
augmentation, seeds and time budget — scored on the 328 held-out photos of
``benchmarks/quick_profile.py`` (COCO val2017 sample and BSDS500 test), each rotated by 6 seeded
angles with the ``crop`` border, in one pass and with the four 90° turns:

    python benchmarks/heads.py --photos ../shared/data/photos                         # 5 heads × 270 s
    python benchmarks/heads.py --photos ../shared/data/photos --time-budget-s 60 --seeds 0,1
    python benchmarks/heads.py --photos ../shared/data/photos --heads cos_sin_mse,von_mises

Columns: MAE, median, p90, within 5/10/15°, the share of errors near 90° (a quarter turn,
80–100°) and near 180° (upside down, > 170°), the training time; the same with the four turns.
With several seeds each figure is the mean and the spread (max − min) is printed too.
Notebook 07 runs the same comparison on a shorter budget.
"""
from __future__ import annotations

import argparse
import json
import statistics
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


def mix_ups(errors_deg: np.ndarray) -> dict:
    """Shares of quarter-turn (80–100°) and upside-down (> 170°) errors."""
    return {"quarter_turn": float(np.mean((errors_deg >= 80) & (errors_deg <= 100))),
            "upside_down": float(np.mean(errors_deg > 170))}


def run_head(head: str, seed: int, train_paths, val_paths, out_dir: Path, budget_s: float, bins: int) -> dict:
    """Train the quick recipe with ``head`` for ``budget_s`` seconds; score it with and without turns."""
    profile = profiles.get_profile("quick", head=head, bins=bins, time_budget_s=budget_s, patience=10**6)
    config.seed_everything(seed)
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, val_rotations=6, seed=seed)
    model, _ = models.regressor_for_profile(profile, verbose=False)
    folder = out_dir / f"{head}-seed{seed}"
    summary = fit(model, train_loader, val_loader, profile, folder, device="cpu", progress=False, overwrite=True)
    best, metadata = models.load_checkpoint(folder / "best.pt", verbose=False)
    scores = {}
    for name, tta in (("one_pass", False), ("four_turns", True)):
        result = evaluation.evaluate_loader(best, val_loader, "cpu", tta=tta, head=head, bins=bins)
        scores[name] = {**result["summary"], **mix_ups(result["error_deg"])}
    row = {"head": head, "seed": seed, "epochs": len(summary["history"]), "train_seconds": summary["train_seconds"],
           **scores}
    print(f"{head:<20} seed {seed}: {row['epochs']} epochs in {row['train_seconds']:.0f} s, "
          f"MAE {scores['one_pass']['mae_deg']:.1f}°, median {scores['one_pass']['median_deg']:.1f}°; "
          f"four turns {scores['four_turns']['mae_deg']:.1f}°", flush=True)
    return row


def table(rows: list[dict], key: str) -> str:
    """One line per head: means over seeds (and the MAE's spread)."""
    lines = [f"{'head':<20}{'seeds':>6}{'MAE':>8}{'±':>6}{'median':>8}{'p90':>8}{'≤5°':>7}{'≤10°':>7}{'≤15°':>7}"
             f"{'~90°':>7}{'~180°':>7}{'train s':>9}"]
    for head in dict.fromkeys(r["head"] for r in rows):
        mine = [r for r in rows if r["head"] == head]
        mean = {k: statistics.fmean(r[key][k] for r in mine) for k in
                ("mae_deg", "median_deg", "p90_deg", "within_5", "within_10", "within_15", "quarter_turn", "upside_down")}
        spread = max(r[key]["mae_deg"] for r in mine) - min(r[key]["mae_deg"] for r in mine)
        lines.append(f"{head:<20}{len(mine):>6}{mean['mae_deg']:>7.1f}°{spread:>5.1f}°{mean['median_deg']:>7.1f}°"
                     f"{mean['p90_deg']:>7.1f}°{100 * mean['within_5']:>6.1f}%{100 * mean['within_10']:>6.1f}%"
                     f"{100 * mean['within_15']:>6.1f}%{100 * mean['quarter_turn']:>6.1f}%"
                     f"{100 * mean['upside_down']:>6.1f}%{statistics.fmean(r['train_seconds'] for r in mine):>9.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder (../shared/data/photos)")
    parser.add_argument("--heads", default=",".join(heads.HEADS), help="comma-separated heads")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (two show the spread)")
    parser.add_argument("--time-budget-s", type=float, default=profiles.PROFILES["quick"].time_budget_s)
    parser.add_argument("--bins", type=int, default=72, help="bins of bins_expected")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    chosen = [h.strip() for h in args.heads.split(",") if h.strip()]
    for head in chosen:
        heads.head_spec(head)
    torch.set_num_threads(args.threads)
    train_paths, val_paths = split_photos(Path(args.photos), "all")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="heads-bench-"))
    print(f"train photos {len(train_paths)}, held-out photos {len(val_paths)} × 6 rotations (crop), "
          f"{args.time_budget_s:.0f} s of training per run")
    start = time.monotonic()
    rows = [run_head(head, int(seed), train_paths, val_paths, out, args.time_budget_s, args.bins)
            for seed in args.seeds.split(",") for head in chosen]
    print("\none pass\n" + table(rows, "one_pass"))
    print("\nwith the four 90° turns\n" + table(rows, "four_turns"))
    print(f"\n{len(rows)} runs in {time.monotonic() - start:.0f} s")
    print(json.dumps(rows))
    (out / "heads.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
