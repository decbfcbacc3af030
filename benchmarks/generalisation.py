"""In collection or out of it: how well a recipe reads photos of collections it never trained on.

Every validation figure of training is measured on held-out photos *of the collections the model
trained on* (10% of the photos, split by photo: ``datasets.split_photos``). A user's photos come
from elsewhere. This benchmark leaves whole collections out (the sub-folders of the shared photos
folder: ``bsds500``, ``sun80``, ``camvid_subset``, …), trains each recipe on the rest with
``training.train_on_photos`` (the code of ``rotation-course train``), and scores every model in the
same run on

- **in collection**: the photos the split held out of its own collections, and
- **out of collection**: the photos of the collections left out,

each photo rotated by 6 seeded angles, ``crop`` border (no fill pixels remain), one pass. The
recipes: ``quick`` (the quick profile), ``laptop`` (the shipped model's recipe, 20 minutes) and
``random_resnet18`` (the quick profile with ResNet18 from random weights, at the quick budget: the
baseline). It prints the MAE and median of both sides, out / in, and quick / random out of
collection.

    python benchmarks/generalisation.py --photos ../shared/data/photos --leave-out bsds500   # one fold
    python benchmarks/generalisation.py --photos ../shared/data/photos --loco                # every collection
    python benchmarks/generalisation.py --photos ../shared/data/photos --leave-out bsds500 \\
        --reuse laptop=runs/lolo_laptop    # a run of that recipe trained on the same photos already

``--reuse`` checks, by the digest of the training photos stored in the checkpoint, that the run
trained on exactly this fold's training photos. Writes ``--out`` (default
``benchmarks/results/generalisation.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from rotation_utils import config, datasets, evaluation, models, profiles, sources, training

#: recipe name: (profile, profile overrides, training border). The first three are the course's
#: own; the ``quick+…`` ones each change one lever of the quick profile (the lever table, issue 19).
RECIPES = {"quick": ("quick", {}, "crop"),
           "laptop": ("laptop", {}, "crop"),
           "random_resnet18": ("quick", {"backbone": "resnet18", "weights": "random"}, "crop"),
           "quick+photometric": ("quick", {"augment": "photometric"}, "crop"),
           "quick+balanced": ("quick", {"balance_collections": True}, "crop"),
           "quick+min_scale_0.4": ("quick", {"min_scale": 0.4}, "crop"),
           "quick+224px": ("quick", {"image_size": 224}, "crop"),
           "quick+backbone_lr_0.3": ("quick", {"backbone_lr_factor": 0.3}, "crop"),
           "quick+reflect": ("quick", {}, "reflect"),
           "quick+photometric+balanced": ("quick", {"augment": "photometric", "balance_collections": True}, "crop"),
           "quick+lite2": ("quick", {"backbone": "efficientnet_lite2"}, "crop")}


def collections(root: Path) -> list[str]:
    """The collection folders (direct sub-folders with photos) of the shared photos folder."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and sources.find_images(p))


def fold_photos(root: Path, left_out: list[str]) -> tuple[list[Path], list[Path]]:
    """(photos of the collections kept, photos of the collections left out). Raises SystemExit
    for a collection that is not there."""
    names = collections(root)
    missing = [n for n in left_out if n not in names]
    if missing:
        raise SystemExit(f"error: no collection {', '.join(missing)} in {root} (it has {', '.join(names)})")
    kept = [p for n in names if n not in left_out for p in sources.find_images(root / n)]
    out = [p for n in left_out for p in sources.find_images(root / n)]
    return kept, out


_SAMPLES: dict = {}


def _samples(paths, image_size: int, max_photos: int | None) -> TensorDataset:
    """``paths`` × 6 seeded rotations, crop border, as model inputs, decoded once and kept for
    every recipe of the fold (all read the same photos at the same size)."""
    if max_photos and len(paths) > max_photos:
        paths = paths[:: max(1, len(paths) // max_photos)][:max_photos]
    key = (tuple(map(str, paths)), image_size)
    if key not in _SAMPLES:
        dataset = datasets.FixedRotationDataset(paths, image_size, rotations=evaluation.VAL_ROTATIONS, seed=0,
                                                border="crop")
        batches = list(DataLoader(dataset, batch_size=64, shuffle=False, num_workers=2))
        _SAMPLES.clear()  # one side at a time in memory
        _SAMPLES[key] = TensorDataset(*(torch.cat(parts) for parts in zip(*batches)))
    return _SAMPLES[key]


def score(checkpoint: Path, paths, max_photos: int | None, tta: bool = False) -> dict:
    """MAE, median and the rest over ``paths`` × 6 seeded rotations, crop border: one pass, or
    averaged over the four 90° turns (``tta``)."""
    model, metadata = models.load_checkpoint(checkpoint, verbose=False)
    loader = DataLoader(_samples(paths, int(metadata.get("image_size", 224)), max_photos), batch_size=64)
    return evaluation.evaluate_loader(model, loader, "cpu", head=metadata.get("head", "cos_sin_mse"),
                                      bins=int(metadata.get("bins", 72)), tta=tta)["summary"]


def run_fold(root: Path, left_out: list[str], recipes: list[str], reuse: dict, work: Path, budget: float | None,
             max_photos: int | None, progress: bool, epochs: int | None = None, seeds=(0,),
             tta: bool = False) -> list[dict]:
    kept, out_paths = fold_photos(root, left_out)
    train_paths, in_paths = datasets.split_photos(kept, profiles.PROFILES["quick"].val_fraction, 0)
    print(f"fold: leave out {', '.join(left_out)}: train on {len(train_paths)} photos, in collection "
          f"{len(in_paths)}, out of collection {len(out_paths)}", flush=True)
    rows = []
    for recipe in recipes:
        name, overrides, border = RECIPES[recipe]
        if budget is not None:
            overrides = {**overrides, "time_budget_s": budget}
        if epochs is not None:  # bound by epochs alone: every recipe sees as many images, whatever the machine
            overrides = {**overrides, "epochs": epochs, "time_budget_s": None}
        for seed in (seeds if recipe not in reuse else (0,)):
            start = time.monotonic()
            if recipe in reuse:
                run_dir = Path(reuse[recipe])
                _, metadata = models.load_checkpoint(run_dir / "best.pt", verbose=False)
                if metadata.get("photos_digest") != training.photos_digest(train_paths):
                    raise SystemExit(f"error: {run_dir} did not train on this fold's {len(train_paths)} training "
                                     f"photos (train it with --images on every collection but {', '.join(left_out)})")
                summary = json.loads((run_dir / "training_summary.json").read_text())
            else:
                run_dir = work / f"{'+'.join(left_out)}-{recipe}" if seed == 0 else \
                    work / f"{'+'.join(left_out)}-{recipe}-seed{seed}"
                profile = profiles.get_profile(name, **overrides)
                config.seed_everything(seed)
                finished = run_dir / "training_summary.json"
                if finished.exists():  # a --work folder of an interrupted benchmark: this run is done
                    summary = json.loads(finished.read_text())
                else:  # the split stays seed 0's: every seed holds out the same in-collection photos
                    summary = training.train_on_photos(kept, profile, run_dir, seed=0, device="cpu",
                                                       progress=progress, border=border,
                                                       resume=(run_dir / "last.pt").exists())
            rows.append({"left_out": left_out, "recipe": recipe, "seed": seed, "train_photos": len(train_paths),
                         "train_seconds": summary.get("train_seconds"), "epochs": len(summary.get("history", [])),
                         "reused": recipe in reuse, "run_dir": run_dir})
            print(f"  {recipe} (seed {seed}): {rows[-1]['epochs']} epochs, {rows[-1]['train_seconds'] or 0:.0f} s "
                  f"of training ({time.monotonic() - start:.0f} s)", flush=True)
    for side, paths in (("in_collection", in_paths), ("out_of_collection", out_paths)):
        for row in rows:
            row[side] = score(row["run_dir"] / "best.pt", paths, max_photos)
            if tta:
                row[side + "_tta"] = score(row["run_dir"] / "best.pt", paths, max_photos, tta=True)
    for row in rows:
        row["run_dir"] = config.display_path(row["run_dir"])
        row["out_over_in"] = row["out_of_collection"]["mae_deg"] / row["in_collection"]["mae_deg"]
        print(f"  {row['recipe']} (seed {row['seed']}): in collection MAE {row['in_collection']['mae_deg']:.1f}°, "
              f"out {row['out_of_collection']['mae_deg']:.1f}°"
              + (f", out with the four turns {row['out_of_collection_tta']['mae_deg']:.1f}°" if tta else ""),
              flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    """The rows as a text table, then each recipe's out-of-collection MAE over the quick
    profile's (the lever table: < 1 is better) and quick / random ResNet18, fold by fold,
    averaged over the seeds of each."""
    print(f"\n{'left out':<34}{'recipe':<28}{'seed':>5}{'in MAE':>8}{'median':>8}{'out MAE':>9}{'median':>8}"
          f"{'out/in':>8}{'out, 4 turns':>13}")
    for r in rows:
        i, o = r["in_collection"], r["out_of_collection"]
        turns = f"{r['out_of_collection_tta']['mae_deg']:>12.1f}°" if "out_of_collection_tta" in r else ""
        print(f"{'+'.join(r['left_out']):<34}{r['recipe']:<28}{r.get('seed', 0):>5}{i['mae_deg']:>7.1f}°"
              f"{i['median_deg']:>7.1f}°{o['mae_deg']:>8.1f}°{o['median_deg']:>7.1f}°{r['out_over_in']:>8.2f}{turns}")
    means: dict = {}
    for r in rows:
        means.setdefault((tuple(r["left_out"]), r["recipe"]), []).append(r["out_of_collection"]["mae_deg"])
    means = {key: sum(v) / len(v) for key, v in means.items()}
    for (fold, recipe), mae in means.items():
        name = "+".join(fold)
        if recipe != "quick" and (fold, "quick") in means:
            print(f"{name}: {recipe} / quick out of collection: {mae / means[(fold, 'quick')]:.2f}")
        if recipe == "quick" and (fold, "random_resnet18") in means:
            print(f"{name}: quick / random ResNet18 out of collection: {mae / means[(fold, 'random_resnet18')]:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder, one sub-folder per collection")
    parser.add_argument("--leave-out", action="append", metavar="COLLECTION",
                        help="one fold: these collections left out together (repeat to add)")
    parser.add_argument("--loco", action="store_true", help="every collection left out in turn (one fold each)")
    parser.add_argument("--recipes", default="quick,laptop,random_resnet18",
                        help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--reuse", action="append", default=[], metavar="RECIPE=RUN_DIR",
                        help="score a finished run of that recipe instead of training it (single fold)")
    parser.add_argument("--time-budget", type=float, help="seconds of training for every recipe (default: each's)")
    parser.add_argument("--epochs", type=int,
                        help="train every recipe this many epochs, bound by epochs alone (the lever table)")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    parser.add_argument("--tta", action="store_true", help="also score with the four 90° turns averaged")
    parser.add_argument("--max-eval-photos", type=int, help="score at most this many photos on each side")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "generalisation.json"))
    args = parser.parse_args(argv)
    root = Path(args.photos)
    if not root.is_dir():
        raise SystemExit(f"error: no such folder: {root}")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {', '.join(unknown)} (choose from {', '.join(RECIPES)})")
    reuse = dict(item.split("=", 1) for item in args.reuse if "=" in item)
    if len(reuse) != len(args.reuse) or any(r not in RECIPES for r in reuse):
        parser.error("--reuse takes RECIPE=RUN_DIR with a known recipe")
    if args.time_budget is not None and not args.time_budget > 0:
        parser.error("--time-budget must be a positive number of seconds")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
    if not seeds or any(x < 0 for x in seeds):
        parser.error("--seeds needs at least one seed ≥ 0")
    if args.loco == bool(args.leave_out):
        parser.error("give one fold with --leave-out, or --loco for every collection")
    folds = [[c] for c in collections(root)] if args.loco else [args.leave_out]
    if reuse and len(folds) > 1:
        parser.error("--reuse serves a single fold (--leave-out)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="generalisation-"))
    rows = []
    for fold in folds:
        rows += run_fold(root, fold, recipes, reuse, work, args.time_budget, args.max_eval_photos, args.progress,
                         epochs=args.epochs, seeds=seeds, tta=args.tta)
    print_table(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"photos": str(args.photos), "time_budget_s": args.time_budget, "epochs": args.epochs,
                               "seeds": seeds, "rows": rows}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
