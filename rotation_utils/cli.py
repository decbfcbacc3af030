"""The ``rotation-course`` command line: train and evaluate on your own photos.

    rotation-course train --images DIR [--images DIR ...] --profile quick --out RUN_DIR
    rotation-course train --images DIR --resume RUN_DIR [--epochs E]
    torchrun --standalone --nproc_per_node=2 -m rotation_utils.cli train --images DIR --out RUN_DIR
    rotation-course evaluate --checkpoint RUN_DIR/best.pt --images DIR --rotations 6 --seed 0 \\
        --border crop --json

The same functions serve the notebooks (04 trains, 05 evaluates).
"""
from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

from .backbones import BACKBONES, WeightsUnavailableError
from .evaluation import VAL_ROTATIONS
from .heads import HEADS
from .profiles import PROFILES

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rotation-course`` (sub-commands ``train`` and ``evaluate``)."""
    parser = argparse.ArgumentParser(prog="rotation-course",
                                     description="Train and evaluate image-rotation regressors.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a (cos θ, sin θ) regressor on folders of photos")
    train.add_argument("--images", action="append", required=True, metavar="DIR",
                       help="folder of photos, searched recursively (repeat for several)")
    train.add_argument("--profile", choices=list(PROFILES),
                       help="the recipe (default: quick; with --resume, the run's own)")
    train.add_argument("--backbone", choices=sorted(BACKBONES),
                       help="the network under the head (default: the profile's)")
    train.add_argument("--weights", choices=["imagenet", "random"],
                       help="start from ImageNet weights or random ones (default: the profile's); "
                            "ImageNet weights that cannot be had are an error, never replaced")
    train.add_argument("--out", metavar="RUN_DIR",
                       help="folder for best.pt, last.pt and training_summary.json")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="go on from RUN_DIR/last.pt (same recipe and photos; --epochs may be larger)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing RUN_DIR/best.pt")
    train.add_argument("--epochs", type=int,
                       help="train this many epochs, bound by epochs alone (the profile's time budget "
                            "then does not apply unless --time-budget is given too)")
    train.add_argument("--time-budget", type=float, metavar="SECONDS", help="override the time budget")
    train.add_argument("--max-photos", type=int, help="use at most this many photos")
    train.add_argument("--head", choices=list(HEADS),
                       help="how the network answers (default: the profile's, cos_sin_mse; see notebook 07)")
    train.add_argument("--bins", type=int, help="bins of the bins_expected head (default 72, of 5°)")
    train.add_argument("--compile", action="store_true", help="torch.compile the model for training (GPUs)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    evaluate = sub.add_parser("evaluate", help="circular error of a checkpoint on a folder of photos")
    evaluate.add_argument("--checkpoint", required=True, help="a best.pt written by train")
    evaluate.add_argument("--images", action="append", required=True, metavar="DIR")
    evaluate.add_argument("--rotations", type=int, default=VAL_ROTATIONS,
                          help="seeded angles per photo (default: the validation protocol's)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--border", default="crop", choices=["crop", "reflect"])
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    evaluate.add_argument("--tta", action="store_true",
                          help="average each prediction over the four 90° turns of the input")
    evaluate.add_argument("--head", choices=list(HEADS),
                          help="the head the checkpoint must have (it is read from the checkpoint; a "
                               "checkpoint of another head is refused)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _train_profile(args):
    """The profile a ``train`` call asks for: the named one (or, resuming with no --profile, the
    run's own), with the command line's overrides."""
    from . import profiles, resume

    overrides = {}
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        overrides["epochs"] = args.epochs
        overrides["time_budget_s"] = None  # bound by epochs, not by the clock
    if args.time_budget is not None:
        if not args.time_budget > 0:
            raise ValueError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
        overrides["time_budget_s"] = args.time_budget
    if args.backbone is not None:
        overrides["backbone"] = args.backbone
    if args.weights is not None:
        overrides["weights"] = args.weights
    if args.compile:
        overrides["compile"] = True
    if args.head is not None:
        overrides["head"] = args.head
    if args.bins is not None:
        overrides["bins"] = args.bins
    if args.resume and args.profile is None:
        saved = resume.load_training_state(args.resume)["metadata"].get("profile")
        if not isinstance(saved, dict) or saved.get("name") not in profiles.PROFILES:
            raise ValueError(f"{Path(args.resume).name}/last.pt records no known profile; name one with --profile")
        fields = {k: v for k, v in saved.items() if k in profiles.Profile.__dataclass_fields__}
        return profiles.Profile(**{**fields, **overrides})
    return profiles.get_profile(args.profile or "quick", **overrides)


def _train(args) -> int:
    from . import config, distributed, sources, training

    if args.resume and args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ValueError("--resume continues a run in its own folder: leave out --out, or give the same folder")
    out = args.resume or args.out
    if out is None:
        raise ValueError("say where the run goes with --out RUN_DIR (or continue one with --resume RUN_DIR)")
    config.seed_everything(args.seed)
    profile = _train_profile(args)
    ctx = distributed.init(args.device)  # under torchrun: join the other processes (else nothing)
    max_photos = args.max_photos if args.max_photos is not None else "profile"
    source = sources.resolve_photos(args.images, profile=profile, max_photos=max_photos, verbose=ctx.is_main)
    summary = training.train_on_photos(source.paths, profile, out, seed=args.seed,
                                       overwrite=args.overwrite, device=args.device,
                                       progress=not args.no_progress, resume=bool(args.resume))
    if ctx.is_main:
        val = summary["val"]
        print(f"best epoch {summary['best_epoch']} ({summary['stop_reason']}), "
              f"{summary['train_seconds']:.0f} s: validation MAE {val['mae_deg']:.2f}°, "
              f"median {val['median_deg']:.2f}°, within 5° {100 * val['within_5']:.1f}%, "
              f"within 10° {100 * val['within_10']:.1f}%")
        print(f"wrote {Path(out) / 'best.pt'}, {Path(out) / 'last.pt'} and {Path(out) / 'training_summary.json'}")
    distributed.shutdown()
    return 0


def _evaluate(args) -> int:
    from .evaluation import evaluate_folder

    if args.head is not None:
        from .models import load_checkpoint

        saved = load_checkpoint(args.checkpoint, verbose=False)[1].get("head", "cos_sin_mse")
        if saved != args.head:
            raise ValueError(f"{Path(args.checkpoint).name} has the {saved} head, not {args.head}")

    result = evaluate_folder(args.checkpoint, args.images, rotations=args.rotations, seed=args.seed,
                             border=args.border, batch_size=args.batch_size, device=args.device,
                             max_photos=None, tta=args.tta)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['n']} rotated samples: MAE {result['mae_deg']:.2f}°, median "
              f"{result['median_deg']:.2f}°, p90 {result['p90_deg']:.2f}°, within 5° "
              f"{100 * result['within_5']:.1f}%, 10° {100 * result['within_10']:.1f}%, "
              f"15° {100 * result['within_15']:.1f}%")
    return 0


def main(argv=None) -> int:
    """Entry point of ``rotation-course``; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _evaluate(args)
    except (FileNotFoundError, NotADirectoryError, FileExistsError, ValueError, ImportError,
            WeightsUnavailableError) as err:
        print(f"rotation-course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
