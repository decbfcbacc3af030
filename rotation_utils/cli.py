"""The ``rotation-course`` command line: train and evaluate on your own photos.

    rotation-course train --images DIR [--images DIR ...] --profile quick --out RUN_DIR
    rotation-course train --images DIR --resume RUN_DIR [--epochs E]
    torchrun --standalone --nproc_per_node=2 -m rotation_utils.cli train --images DIR --out RUN_DIR
    rotation-course evaluate --checkpoint RUN_DIR/best.pt --images DIR --rotations 6 --seed 0 \\
        --border crop --json
    rotation-course straighten PHOTOS... --checkpoint RUN_DIR/best.pt --out UPRIGHT_DIR [--rule safe|always] [--json]
    rotation-course export --checkpoint RUN_DIR/best.pt --format onnx --out model.onnx
    rotation-course headpose evaluate --images DIR --method pnp --fit-on OTHER_DIR --json
    rotation-course headpose train --images DIR [--images DIR ...] --out RUN_DIR

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
    train.add_argument("--max-angle", type=float, metavar="D",
                       help="a small-tilt model: train and validate on angles in ±D degrees (recorded in the "
                            "checkpoint; evaluate then uses the same range)")
    train.add_argument("--augment", choices=["none", "photometric"],
                       help="photometric: random colour, blur and JPEG changes as well (default: the profile's)")
    train.add_argument("--balance-collections", action="store_true",
                       help="draw each collection (each --images folder, or each sub-folder of one) equally often")
    train.add_argument("--image-size", type=int, metavar="PX", help="side of the network's input (default: the profile's)")
    train.add_argument("--min-scale", type=float, metavar="S",
                       help="training crops: random squares of S–1 of the largest one (default: the profile's)")
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
    evaluate.add_argument("--max-angle", type=float, metavar="D",
                          help="rotate the photos by angles in ±D degrees (default: the checkpoint's own range)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    straighten = sub.add_parser("straighten", help="turn photos upright with a trained model, into another folder")
    straighten.add_argument("inputs", nargs="+", metavar="INPUT", help="photos or folders (searched recursively)")
    straighten.add_argument("--checkpoint", required=True, help="a best.pt written by train (or reference/*.pt)")
    straighten.add_argument("--out", required=True, metavar="DIR",
                            help="where the upright photos go, under the same relative paths; never an input folder")
    straighten.add_argument("--rule", choices=["safe", "always"], default="safe",
                            help="safe (default): turn a photo only when the model is sure of a quarter turn "
                                 "or its straight lines show a tilt, else leave it as it is; always: correct "
                                 "every photo by its predicted angle")
    straighten.add_argument("--border", choices=["crop", "expand"], default="crop",
                            help="crop: the largest upright rectangle (default); expand: the whole turned photo")
    straighten.add_argument("--snap", type=int, choices=[90], help="--snap 90: correct by the nearest quarter turn only")
    straighten.add_argument("--max-angle", type=float, metavar="D",
                            help="only correct predictions within ±D degrees (small tilts); leave the rest as they are")
    straighten.add_argument("--min-confidence", type=float, metavar="C",
                            help="leave photos whose confidence is below C as they are (the head's confidence; "
                                 "for the (cos θ, sin θ) head the output length, about 1 when sure)")
    straighten.add_argument("--tta", action="store_true", help="average the prediction over the four 90° turns")
    straighten.add_argument("--overwrite", action="store_true", help="redo outputs that exist already")
    straighten.add_argument("--json", action="store_true", help="one JSON line per file on stdout")
    straighten.add_argument("--batch-size", type=int, default=16)
    straighten.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")

    export = sub.add_parser("export", help="write a checkpoint as TorchScript or ONNX, answering in degrees")
    export.add_argument("--checkpoint", required=True, help="a best.pt written by train (or reference/*.pt)")
    export.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    export.add_argument("--out", required=True, metavar="FILE", help="the file to write (and FILE.json beside it)")
    export.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")

    headpose = sub.add_parser("headpose", help="yaw, pitch and roll of faces (notebook 08)")
    hp_sub = headpose.add_subparsers(dest="headpose_command", required=True)
    hp_eval = hp_sub.add_parser("evaluate", help="MAE per angle on a folder of AFLW2000-style or Pointing'04 faces")
    hp_eval.add_argument("--images", required=True, metavar="DIR",
                         help="AFLW2000-style .jpg + .mat pairs, or Pointing'04 images (yaw and pitch only)")
    hp_eval.add_argument("--method", required=True, choices=["pnp", "mlp", "model"],
                         help="pnp: the 68 landmarks of the .mat + a mean 3-D face + cv2.solvePnP; "
                              "mlp: landmarks → a small MLP; model: a checkpoint of `headpose train`")
    hp_eval.add_argument("--fit-on", metavar="DIR",
                         help="pnp and mlp: AFLW2000-style faces (other than --images) to build the mean "
                              "3-D face from, or to train the MLP on")
    hp_eval.add_argument("--checkpoint", help="model: a headpose.pt written by `headpose train`")
    hp_eval.add_argument("--focal-px", type=float, help="pnp: focal length in pixels (default: image width)")
    hp_eval.add_argument("--landmarks", choices=["labels", "dlib"], default="labels",
                         help="pnp and mlp: the 68 landmarks of the .mat files (default) or Dlib's, found "
                              "on the photos (the optional extra: pip install dlib-bin face-recognition-models)")
    hp_eval.add_argument("--json", action="store_true", help="print one JSON object")
    hp_train = hp_sub.add_parser("train", help="train HopeNet (66 bins per angle, dual loss) on folders of faces")
    hp_train.add_argument("--images", action="append", required=True, metavar="DIR",
                          help="AFLW2000-style or Pointing'04 folder (repeat for several)")
    hp_train.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for headpose.pt")
    hp_train.add_argument("--backbone", default="efficientnet_lite0",
                          choices=["efficientnet_lite0", "resnet18", "mobilenet_v2", "small_cnn"])
    hp_train.add_argument("--weights", default="imagenet", choices=["imagenet", "random"])
    hp_train.add_argument("--alpha", type=float, default=1.0, help="weight of the MSE term of the dual loss")
    hp_train.add_argument("--epochs", type=int, default=3)
    hp_train.add_argument("--size", type=int, default=112, help="side of the face crop, pixels")
    hp_train.add_argument("--max-roll", type=float, default=30.0, help="in-plane turns of up to ± this, degrees")
    hp_train.add_argument("--seed", type=int, default=0)
    hp_train.add_argument("--overwrite", action="store_true", help="replace an existing RUN_DIR/headpose.pt")
    for command in (parser, train, evaluate, straighten, export, hp_eval, hp_train):  # before or after the command
        command.add_argument("--debug", action="store_true", default=False if command is parser else argparse.SUPPRESS,
                             help="show the full traceback of an error (else one line)")
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
    if args.augment is not None:
        overrides["augment"] = args.augment
    if args.balance_collections:
        overrides["balance_collections"] = True
    if args.image_size is not None:
        if not 32 <= args.image_size <= 1024:
            raise ValueError(f"--image-size must be 32 to 1024 pixels, got {args.image_size}")
        overrides["image_size"] = args.image_size
    if args.min_scale is not None:
        if not 0 < args.min_scale <= 1:
            raise ValueError(f"--min-scale must be in (0, 1], got {args.min_scale}")
        overrides["min_scale"] = args.min_scale
    if args.max_angle is not None:
        if not 0 < args.max_angle <= 180:
            raise ValueError(f"--max-angle must be in (0, 180] degrees, got {args.max_angle}")
        overrides["max_angle_deg"] = args.max_angle
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
                             max_photos=None, tta=args.tta, max_angle_deg=args.max_angle)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['n']} rotated samples: MAE {result['mae_deg']:.2f}°, median "
              f"{result['median_deg']:.2f}°, p90 {result['p90_deg']:.2f}°, within 5° "
              f"{100 * result['within_5']:.1f}%, 10° {100 * result['within_10']:.1f}%, "
              f"15° {100 * result['within_15']:.1f}%")
    return 0


def _straighten(args) -> int:
    import torch

    from .models import load_checkpoint, prediction_settings
    from .straighten import StraightenSettings, straighten_photos

    settings = StraightenSettings(rule=args.rule, border=args.border, snap_90=args.snap == 90, max_angle_deg=args.max_angle,
                                  min_confidence=args.min_confidence, tta=args.tta, overwrite=args.overwrite,
                                  batch_size=args.batch_size)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, metadata = load_checkpoint(args.checkpoint, verbose=False)
    prediction_settings(metadata, Path(args.checkpoint).name)  # metadata that contradict the weights: one line

    def report(record):
        if args.json:
            print(json.dumps(record.as_json()), flush=True)
        elif record.action != "straightened":
            print(f"{record.action} {record.path}: {record.reason}", file=sys.stderr)

    def note(text):
        print(f"note: {text}", file=sys.stderr)

    records = straighten_photos(model, metadata, args.inputs, args.out, settings, device=device,
                                progress=True, on_record=report, protect=[args.checkpoint], on_note=note)
    counts = {action: sum(r.action == action for r in records) for action in ("straightened", "unchanged", "skipped")}
    print(f"{counts['straightened']} straightened, {counts['unchanged']} unchanged, {counts['skipped']} skipped; "
          f"outputs in {args.out}", file=sys.stderr)
    done_before = sum(r.action == "skipped" and r.output is not None for r in records)
    if not records:
        raise FileNotFoundError(f"no photos found in {', '.join(args.inputs)}")
    return 0 if counts["straightened"] + counts["unchanged"] + done_before else 1


def _headpose_evaluate(args) -> int:
    import numpy as np
    from PIL import Image

    from . import headpose as hp

    samples, skipped, kind = hp.load_folder(args.images)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if args.method in ("pnp", "mlp"):
        if kind != "aflw2000":
            raise ValueError(f"--method {args.method} needs 68 landmarks per face; {Path(args.images).name} "
                             "holds Pointing'04 images, which have none: use --method model")
        if not args.fit_on:
            raise ValueError(f"--method {args.method} needs --fit-on DIR: AFLW2000-style faces other than "
                             "--images to build the mean 3-D face from (pnp) or to train on (mlp)")
        fit, _ = hp.load_aflw2000(args.fit_on)
        overlap = {Path(s.image_path).resolve() for s in fit} & {Path(s.image_path).resolve() for s in samples}
        if overlap:
            raise ValueError(f"--fit-on and --images share {len(overlap)} faces: fitting on the faces you score "
                             "is no test; give two different folders")
        samples = [s for s in samples if s.landmarks is not None]
        if not samples:
            raise ValueError(f"no face in {Path(args.images).name} has 68 landmarks (pt3d_68 or a 2×68 pt2d)")
        missed = []
        if args.landmarks == "dlib":
            from dataclasses import replace as _replace

            found = [(s, hp.dlib_landmarks(s.image_path)) for s in samples]
            missed = [s.image_path.name for s, points in found if points is None]
            samples = [_replace(s, landmarks=points) for s, points in found if points is not None]
            for name in missed:
                print(f"no face found by Dlib in {name}", file=sys.stderr)
            if not samples:
                raise ValueError("Dlib found no face in any photo")
        if args.method == "pnp":
            shape = hp.mean_face_shape(fit)
            predicted, solved = [], []
            for s in samples:
                try:
                    with Image.open(s.image_path) as image:
                        predicted.append(hp.solve_pnp_pose(s.landmarks, shape, image.size, args.focal_px))
                    solved.append(s)
                except (OSError, ValueError) as err:  # an unreadable photo, landmarks with no pose
                    print(f"skipped {s.image_path.name}: {err}", file=sys.stderr)
            if not solved:
                raise ValueError(f"no face of {Path(args.images).name} gave a pose")
            samples, predicted = solved, np.stack(predicted)
        else:
            predicted = hp.predict_landmark_mlp(hp.fit_landmark_mlp(fit), samples)
    else:
        missed = []
        if not args.checkpoint:
            raise ValueError("--method model needs --checkpoint (a headpose.pt from `headpose train`)")
        model, meta = hp.load_headpose_checkpoint(args.checkpoint)
        predicted = hp.predict_headpose(model, hp.HeadPoseDataset(samples, meta.get("size", 112)))
    truth = np.stack([s.angles_deg for s in samples])
    result = {"method": args.method, "kind": kind, **hp.pose_errors(predicted, truth), "skipped": len(skipped),
              "landmarks": args.landmarks if args.method != "model" else None, "no_face_found": len(missed),
              "angles": [a for a, col in zip(hp.ANGLES, truth.T) if np.isfinite(col).any()]}
    if kind == "pointing04":
        result["note"] = "Pointing'04 has no roll label: yaw and pitch only, mae_deg is their mean"
    if args.json:
        print(json.dumps(result))
    else:
        cells = ", ".join(f"{a} {result[a + '_mae_deg']:.2f}°" for a in result["angles"])
        print(f"{result['n']} faces ({kind}), {args.method}: MAE {cells}; mean {result['mae_deg']:.2f}°")
    return 0


def _headpose_train(args) -> int:
    from . import config
    from . import headpose as hp

    out = Path(args.out) / "headpose.pt"
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it, or choose another --out")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    parts, counts = [], {}
    for folder in args.images:
        samples, skipped, kind = hp.load_folder(folder)
        for name, reason in skipped:
            print(f"skipped {name}: {reason}", file=sys.stderr)
        counts[kind] = counts.get(kind, 0) + len(samples)
        parts.append(hp.HeadPoseDataset(samples, args.size, train=True, max_roll_deg=args.max_roll, seed=args.seed,
                                        unlabelled_roll_deg=0.0 if kind == "pointing04" else None))
    config.seed_everything(args.seed)
    model = hp.HeadPoseNet(args.backbone, args.weights)
    fitted = hp.train_headpose(model, hp._EpochConcat(parts), epochs=args.epochs, alpha=args.alpha,
                               seed=args.seed, progress=True)
    hp.save_headpose_checkpoint(model, out, {"size": args.size, "alpha": args.alpha, "epochs": args.epochs,
                                             "faces": counts, "train_seconds": fitted["seconds"]},
                                overwrite=args.overwrite)
    print(f"trained {args.backbone} ({model.weights}) on {sum(counts.values())} faces for {args.epochs} epochs "
          f"in {fitted['seconds']:.0f} s; wrote {out}")
    return 0


#: The numeric flags, by their argparse ``dest``: (flag, test, what a good value is). A flag that
#: several sub-commands share means the same in each.
_NUMBERS = {
    "seed": ("--seed", lambda v: 0 <= v < 2 ** 32, "a whole number from 0 to 4294967295"),
    "epochs": ("--epochs", lambda v: v >= 1, "at least 1"),
    "max_photos": ("--max-photos", lambda v: v >= 1, "at least 1"),
    "time_budget": ("--time-budget", lambda v: v > 0, "a positive number of seconds"),
    "bins": ("--bins", lambda v: 2 <= v <= 3600, "a whole number from 2 to 3600"),
    "max_angle": ("--max-angle", lambda v: 0 < v <= 180, "a number of degrees in (0, 180]"),
    "rotations": ("--rotations", lambda v: 1 <= v <= 360, "a whole number from 1 to 360 (angles per photo)"),
    "batch_size": ("--batch-size", lambda v: 1 <= v <= 4096, "a whole number from 1 to 4096"),
    "min_confidence": ("--min-confidence", lambda v: v >= 0, "a number ≥ 0"),
    "focal_px": ("--focal-px", lambda v: v > 0, "a positive number of pixels"),
    "alpha": ("--alpha", lambda v: v >= 0, "a number ≥ 0"),
    "size": ("--size", lambda v: 16 <= v <= 1024, "a whole number of pixels from 16 to 1024"),
    "max_roll": ("--max-roll", lambda v: 0 <= v <= 180, "a number of degrees in [0, 180]"),
}


def check_numbers(args) -> None:
    """Every numeric flag of ``args`` that was given, against :data:`_NUMBERS` (NaN and infinity
    are no value). Raises ValueError naming the flag, what it must be and what it got."""
    import math

    for dest, (flag, test, what) in _NUMBERS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if not (math.isfinite(value) and test(value)):
            raise ValueError(f"{flag} must be {what}, got {value:g}" if isinstance(value, float)
                             else f"{flag} must be {what}, got {value}")


def check_device(device) -> None:
    """``--device``: None (the default), ``cpu``, or a GPU that is here (``cuda``, ``cuda:N``,
    ``mps``). Raises ValueError saying what is available."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {device} is not a device: use cpu, cuda or cuda:N (or leave --device out)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA GPU can be used here (torch.cuda.is_available() is False); "
                             "use --device cpu, or leave --device out")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: there are {torch.cuda.device_count()} CUDA GPU(s) here, "
                             f"numbered from 0")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"--device {device}: no Apple GPU (MPS) can be used here; use --device cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"--device {device}: the course runs on cpu, cuda or mps")


#: Errors that are the input's, not the code's: one line and exit status 2.
_USER_ERRORS = (ValueError, OSError, ImportError, WeightsUnavailableError, MemoryError)


def _describe(err: BaseException) -> str:
    """One line for an error: the message the course wrote, or, for the system's own errors,
    what happened to which file."""
    import errno

    if isinstance(err, MemoryError):
        return f"not enough memory ({err or 'MemoryError'}); ask for less (fewer photos, a smaller --batch-size)"
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f", {err.filename}" if err.filename and str(err.filename) not in str(err.strerror) else ""
        return (f"the disk is full ({err.strerror}{where}): no half-written file was left and every file written "
                "before is complete; make room and run again")
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__


def _run(args) -> int:
    if args.command == "straighten":
        return _straighten(args)
    if args.command == "export":
        from .export import export_model

        described = export_model(args.checkpoint, args.format, args.out, overwrite=args.overwrite)
        size = described["input"]["shape"][-1]
        print(f"wrote {args.out} ({args.format}: images (N, 3, {size}, {size}) → angle_deg, resultant_length) "
              f"and {args.out}.json")
        return 0
    if args.command == "headpose":
        return _headpose_evaluate(args) if args.headpose_command == "evaluate" else _headpose_train(args)
    return _train(args) if args.command == "train" else _evaluate(args)


def main(argv=None) -> int:
    """Entry point of ``rotation-course``; returns the exit status: 0 done, 1 nothing could be
    done (``straighten``: no photo usable) or an error of the course's own code, 2 bad input, 130
    interrupted. Every error is one line on stderr (``rotation-course COMMAND: error: …``);
    ``--debug`` (or ROTATION_COURSE_DEBUG=1) prints the traceback above it."""
    import os

    args = build_parser().parse_args(argv)
    command = args.command + (f" {args.headpose_command}" if args.command == "headpose" else "")
    debug = getattr(args, "debug", False) or os.environ.get("ROTATION_COURSE_DEBUG", "") not in ("", "0")
    try:
        check_numbers(args)
        check_device(getattr(args, "device", None))
        return _run(args)
    except KeyboardInterrupt:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"rotation-course {command}: interrupted; every file written so far is complete (no half file is "
              "left), and a second run goes on from there", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns every error into one line
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(err, _USER_ERRORS) or (isinstance(err, RuntimeError) and "out of memory" in str(err)):
            print(f"rotation-course {command}: error: {_describe(err)}", file=sys.stderr)
            return 2
        print(f"rotation-course {command}: internal error: {err.__class__.__name__}: {_describe(err)} (a bug of the "
              "course; please report it with the traceback that --debug prints)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
