"""Issue 2's baseline, written again from its description alone: a calibration, not the course.

"A torchvision ResNet18 from random weights at 112 px, trained 12 minutes on 2 cores on 508 real
photos with fresh rotations each epoch, reaches about 60° MAE on photos it never saw, rotated
and cropped so that no border pixels remain." This script does exactly that with torchvision
alone (no ``rotation_utils``), so that its figures can be set beside the course's own pipeline
(``quick_profile.py``): ``torchvision.models.resnet18(num_classes=2)`` read as (cos θ, sin θ),
MSE loss, Adam at 1e-3, batch 32, float32, no schedule, no flips, no weight decay.
Each sample is the photo (short side 1.5× the input) rotated counter-clockwise by θ about its
centre, then the largest centred square with no border pixels (side = short side /
(|cos θ| + |sin θ|)), resized to the input side. Same split as ``quick_profile.py``: 508
training photos, 328 held-out photos × 6 seeded angles.

    python benchmarks/naive_baseline.py --photos ../shared/data/photos [--budget-s 720]

Prints the validation MAE and median (degrees) at each ``--eval-at`` point of training time
(seconds, evaluation not counted) and at the end, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageOps
from torch import nn

TRAIN = ["bsds500/train", "bsds500/val", "coco2017_sample/train2017", "sun80"]
HELD_OUT = ["coco2017_sample/val2017", "bsds500/test"]
SUFFIXES = {".jpg", ".jpeg", ".png"}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def load(path: Path, short_side: int) -> torch.Tensor:
    """uint8 (3, H, W), EXIF orientation applied, shorter side ``short_side`` pixels."""
    with Image.open(path) as im:
        image = ImageOps.exif_transpose(im).convert("RGB")
    return TF.resize(TF.pil_to_tensor(image), short_side, antialias=True)


def rotated_square(photo: torch.Tensor, angle_deg: float, size: int) -> torch.Tensor:
    """The photo (uint8 (3, H, W)) rotated by ``angle_deg`` degrees counter-clockwise, its
    largest centred square with no border pixels (bar bilinear blending along its edge),
    resized to ``size`` pixels and normalised with ImageNet statistics: float (3, size, size)."""
    h, w = photo.shape[-2:]
    rotated = TF.rotate(photo, angle_deg, interpolation=TF.InterpolationMode.BILINEAR, expand=False)
    rad = math.radians(angle_deg)
    side = int(min(h, w) / (abs(math.cos(rad)) + abs(math.sin(rad))))
    square = TF.resize(TF.center_crop(rotated, [side, side]), [size, size], antialias=True)
    return (square.float() / 255 - MEAN) / STD


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="the shared photos folder (../shared/data/photos)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--budget-s", type=float, default=720.0, help="training time, seconds")
    parser.add_argument("--eval-at", type=float, nargs="*", default=[270.0],
                        help="also evaluate after this much training time, seconds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = Path(args.photos)
    if not root.is_dir():
        parser.error(f"--photos: no such folder: {root}")

    def find(sub):
        return sorted(p for p in (root / sub).rglob("*") if p.suffix.lower() in SUFFIXES)

    cache = int(round(1.5 * args.image_size))
    train = [load(p, cache) for sub in TRAIN for p in find(sub)]
    held_out = [load(p, cache) for sub in HELD_OUT for p in find(sub)]
    print(f"train photos {len(train)}, held-out photos {len(held_out)}")
    if len(train) < 32 or not held_out:
        parser.error("--photos must hold the shared photos' bsds500, coco2017_sample and sun80 folders")
    rng = np.random.default_rng(args.seed)
    val = [(i, float(a)) for i in range(len(held_out)) for a in rng.uniform(0.0, 360.0, 6)]
    val_x = torch.stack([rotated_square(held_out[i], a, args.image_size) for i, a in val])
    val_deg = torch.tensor([a for _, a in val])

    model = torchvision.models.resnet18(num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(val_x[k:k + 128]) for k in range(0, len(val_x), 128)])
        model.train()
        error = (torch.rad2deg(torch.atan2(out[:, 1], out[:, 0])) - val_deg).abs() % 360
        error = torch.minimum(error, 360 - error)
        return {"mae_deg": round(float(error.mean()), 2), "median_deg": round(float(error.median()), 2)}

    checkpoints = sorted(t for t in args.eval_at if t < args.budget_s)
    results, trained, epoch = [], 0.0, 0
    while trained < args.budget_s:
        epoch += 1
        order = torch.randperm(len(train))
        for k in range(0, len(train) - 31, 32):
            start = time.monotonic()
            angles = torch.rand(32) * 360.0
            x = torch.stack([rotated_square(train[i], float(a), args.image_size)
                             for i, a in zip(order[k:k + 32], angles)])
            rad = torch.deg2rad(angles)
            loss = nn.functional.mse_loss(model(x), torch.stack([torch.cos(rad), torch.sin(rad)], 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trained += time.monotonic() - start
            if checkpoints and trained >= checkpoints[0]:
                checkpoints.pop(0)
                results.append({"train_seconds": round(trained), "epoch": epoch, **evaluate()})
                print(results[-1], flush=True)
            if trained >= args.budget_s:
                break
    results.append({"train_seconds": round(trained), "epoch": epoch, **evaluate()})
    print(f"naive baseline, {args.image_size} px: MAE {results[-1]['mae_deg']:.1f}°, median "
          f"{results[-1]['median_deg']:.1f}° after {trained:.0f} s of training ({epoch} epochs of "
          f"{len(train)} photos)")
    print(json.dumps({"image_size": args.image_size, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
