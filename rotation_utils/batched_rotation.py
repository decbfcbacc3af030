"""Rotation and crop of a whole batch at once, on the device that trains (one ``grid_sample``).

The course's training loader (:class:`rotation_utils.datasets.OnTheFlyRotationDataset`) rotates
each photo in Python, one at a time, in the loader's processes: simple, and fast enough on a
CPU. On a GPU that leaves the device waiting. Here the loader's workers only decode the
upright photos, at reduced size (JPEG draft mode), onto a canvas of fixed size; the device then
rotates, crops, flips and resizes the whole batch with one sampling grid:

- each output pixel (u, v) of the S × S input square is placed in the rotated photo's frame
  (the square's centre and side drawn as in training: a random square of ``min_scale``–1 of the
  largest one, at a random place), turned back by −θ into the upright photo's frame, and read
  there with bilinear interpolation (``torch.nn.functional.grid_sample``);
- border ``crop``: the square lies inside the largest rectangle inscribed in the rotated photo
  (:func:`rotation_utils.rotation.largest_inscribed_rectangle`, computed for the batch), so no
  border pixel is ever read; border ``reflect``: the square lies in the photo's own frame and
  points outside the photo are mirrored back into it, photo by photo (each has its own size on
  the shared canvas).

It is the same geometry as :func:`rotation_utils.rotation.rotate_image` followed by
:func:`rotation_utils.datasets.square_input` (tested against it), without the antialiasing of
the resize. Source of the method: spatial transformer networks (Jaderberg et al. 2015) use the
same affine grid and sampler; the angle convention is the course's (counter-clockwise).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from . import angles
from .datasets import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["inscribed_rectangle", "rotation_grid", "rotate_crop_batch", "UprightPhotoCanvas",
           "BatchedRotationLoader"]


def inscribed_rectangle(width: torch.Tensor, height: torch.Tensor, angle_rad: torch.Tensor):
    """:func:`rotation_utils.rotation.largest_inscribed_rectangle` for tensors of photos:
    width, height in pixels (N,), angle in **radians** (N,). Returns (width, height) (N,)."""
    sin_a, cos_a = angle_rad.sin().abs(), angle_rad.cos().abs()
    wide = width >= height
    long_side, short_side = torch.where(wide, width, height), torch.where(wide, height, width)
    half = (short_side <= 2.0 * sin_a * cos_a * long_side) | ((sin_a - cos_a).abs() < 1e-10)
    x = 0.5 * short_side
    safe_sin, safe_cos = sin_a.clamp_min(1e-12), cos_a.clamp_min(1e-12)
    w_half = torch.where(wide, x / safe_sin, x / safe_cos)
    h_half = torch.where(wide, x / safe_cos, x / safe_sin)
    cos_2a = cos_a * cos_a - sin_a * sin_a
    safe_cos_2a = torch.where(cos_2a.abs() < 1e-12, torch.ones_like(cos_2a), cos_2a)
    w_full = (width * cos_a - height * sin_a) / safe_cos_2a
    h_full = (height * cos_a - width * sin_a) / safe_cos_2a
    w_r, h_r = torch.where(half, w_half, w_full), torch.where(half, h_half, h_full)
    upright = sin_a < 1e-12
    return torch.where(upright, width, w_r), torch.where(upright, height, h_r)


def rotation_grid(sizes: torch.Tensor, canvas_hw: tuple[int, int], angles_deg: torch.Tensor, out_size: int,
                  border: str = "crop", scale: torch.Tensor | None = None, centre: torch.Tensor | None = None,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """The sampling grid (N, S, S, 2) of ``grid_sample`` (``align_corners=False``) that reads
    each photo rotated counter-clockwise by ``angles_deg`` (N,) degrees, as an S × S square.

    sizes: (N, 2) height and width in pixels of each photo, placed at the top-left of a canvas
    of ``canvas_hw`` pixels. border: ``crop`` or ``reflect`` (see the module). scale (N,): side
    of the square as a share of the largest one (default 1). centre (N, 2): where the square
    sits along x and y, 0–1 of the room left (default 0.5, centred). flip (N,) bool: mirror the
    upright photo left–right first (the angle label does not change).
    Raises ValueError for another border.
    """
    if border not in ("crop", "reflect"):
        raise ValueError(f"border must be 'crop' or 'reflect' for batched rotation, got {border!r}")
    device = angles_deg.device
    n = angles_deg.shape[0]
    h, w = sizes[:, 0].to(device, torch.float32), sizes[:, 1].to(device, torch.float32)
    theta = torch.deg2rad(angles_deg.to(torch.float32))
    if border == "crop":
        room_w, room_h = inscribed_rectangle(w, h, theta)
        room_w, room_h = (room_w - 2).clamp_min(1), (room_h - 2).clamp_min(1)  # as rotate_image: 1 px margins
    else:
        room_w, room_h = w, h
    scale = torch.ones(n, device=device) if scale is None else scale.to(device, torch.float32)
    centre = torch.full((n, 2), 0.5, device=device) if centre is None else centre.to(device, torch.float32)
    side = (torch.minimum(room_w, room_h) * scale).clamp_min(1.0)
    cx, cy = (centre[:, 0] - 0.5) * (room_w - side), (centre[:, 1] - 0.5) * (room_h - side)
    steps = (torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) / out_size * 2 - 1
    v, u = torch.meshgrid(steps, steps, indexing="ij")  # (S, S): v down the rows, u along them
    px = cx[:, None, None] + u[None] * side[:, None, None] / 2  # in the rotated frame, from its centre
    py = cy[:, None, None] + v[None] * side[:, None, None] / 2
    c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
    qx, qy = c * px - s * py, s * px + c * py  # turned back by −θ (x right, y down)
    if flip is not None:
        qx = torch.where(flip.to(device)[:, None, None], -qx, qx)
    x, y = w[:, None, None] / 2 + qx, h[:, None, None] / 2 + qy
    if border == "reflect":
        x, y = _reflect(x, w[:, None, None]), _reflect(y, h[:, None, None])
    x = torch.minimum(x.clamp_min(0.5), w[:, None, None] - 0.5)  # never between the photo and the canvas
    y = torch.minimum(y.clamp_min(0.5), h[:, None, None] - 0.5)
    canvas_h, canvas_w = canvas_hw
    return torch.stack((2 * x / canvas_w - 1, 2 * y / canvas_h - 1), dim=-1)


def _reflect(x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Mirror coordinates into [0, length] (a triangle wave of period 2·length)."""
    t = torch.remainder(x, 2 * length)
    return torch.where(t > length, 2 * length - t, t)


def rotate_crop_batch(canvas: torch.Tensor, sizes: torch.Tensor, angles_deg: torch.Tensor, out_size: int,
                      border: str = "crop", scale=None, centre=None, flip=None,
                      normalize: bool = True) -> torch.Tensor:
    """Rotate, crop and resize a batch in one ``grid_sample``: (N, 3, Hc, Wc) uint8 or float
    canvases (photos at the top-left, ``sizes`` (N, 2) their height and width in pixels) →
    (N, 3, S, S) float32, normalised with ImageNet mean and std when ``normalize`` (else in
    [0, 1]). Angles in degrees, counter-clockwise; the other arguments as in
    :func:`rotation_grid`. Runs on the canvas's device."""
    images = canvas.float() / 255.0 if canvas.dtype == torch.uint8 else canvas.float()
    grid = rotation_grid(sizes, tuple(canvas.shape[-2:]), angles_deg.to(canvas.device), out_size, border,
                         scale, centre, flip)
    out = torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN, device=out.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=out.device).view(1, 3, 1, 1)
        out = (out - mean) / std
    return out


class UprightPhotoCanvas(Dataset):
    """Upright photos decoded at reduced size onto a square canvas of fixed size (the loader's
    only work in the batched pipeline).

    paths: photo files (each ``repeats`` times per epoch). short_side: each photo is resized so that its shorter side has this
    many pixels (decoded in JPEG draft mode at the nearest larger power-of-two reduction
    first); the longer side is cut to ``2 × short_side`` around its centre (photos wider than
    2:1). Items: (canvas uint8 (3, 2·short_side, 2·short_side) with the photo at its top-left,
    size (2,) int64 = height, width). Raises what :func:`rotation_utils.sources.load_image`
    raises for a file that became unusable. augment: one of ``datasets.AUGMENTATIONS``, applied
    here to the upright photo (:func:`rotation_utils.datasets.photometric_augmentation`).
    """

    def __init__(self, paths, short_side: int, repeats: int = 1, augment: str = "none"):
        from .datasets import photometric_augmentation

        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("UprightPhotoCanvas needs at least one photo")
        self.short_side, self.side, self.repeats = int(short_side), 2 * int(short_side), int(repeats)
        self.augment = photometric_augmentation(augment)

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, index: int):
        from .sources import load_image

        image = load_image(self.paths[index % len(self.paths)], draft_short_side=self.short_side)
        photo = F.pil_to_tensor(image)
        photo = F.resize(photo, self.short_side, interpolation=InterpolationMode.BILINEAR, antialias=True)
        h, w = photo.shape[-2:]
        if max(h, w) > self.side:
            photo = F.center_crop(photo, [min(h, self.side), min(w, self.side)])
            h, w = photo.shape[-2:]
        if self.augment is not None:
            photo = self.augment(photo)
        canvas = torch.zeros((3, self.side, self.side), dtype=torch.uint8)
        canvas[:, :h, :w] = photo
        return canvas, torch.tensor([h, w], dtype=torch.int64)


class BatchedRotationLoader:
    """A training loader whose batches are rotated on the device: iterating gives (images
    (N, 3, S, S) float on ``device``, targets (N, 2) = (cos θ, sin θ), θ in degrees (N,)), like
    the course's other training loaders, with fresh angles, squares and flips every epoch.

    loader: a DataLoader of :class:`UprightPhotoCanvas` (its ``sampler`` and ``generator`` are
    the ones a resumed or distributed run handles). image_size: S. border: ``crop`` or
    ``reflect``. min_scale: squares of ``min_scale``–1 of the largest. hflip: mirror half of the
    upright photos. max_angle_deg: angles in ±D degrees instead of the whole circle. The random
    draws come from the loader's own generator, on the CPU, so a seed gives the same batches on
    any device.
    """

    def __init__(self, loader: DataLoader, image_size: int, device, border: str = "crop", min_scale: float = 0.85,
                 hflip: bool = True, max_angle_deg: float | None = None):
        self.loader, self.image_size, self.device = loader, int(image_size), torch.device(device)
        self.max_angle_deg = max_angle_deg
        self.border = border
        self.min_scale, self.hflip = float(min_scale), bool(hflip)
        self.dataset, self.batch_size = loader.dataset, loader.batch_size
        self.sampler, self.generator = loader.sampler, loader.generator
        self.num_workers = loader.num_workers
        rotation_grid(torch.ones(1, 2) * 8, (8, 8), torch.zeros(1), 2, border)  # an unknown border fails here

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for canvas, sizes in self.loader:
            n = len(canvas)
            draws = torch.rand(n, 5, generator=self.generator)
            angles_deg = (draws[:, 0] * 360.0 if self.max_angle_deg is None
                          else torch.remainder((2 * draws[:, 0] - 1) * self.max_angle_deg, 360.0))
            scale = self.min_scale + (1 - self.min_scale) * draws[:, 1]
            flip = (draws[:, 4] < 0.5) if self.hflip else None
            canvas = canvas.to(self.device, non_blocking=True)
            images = rotate_crop_batch(canvas, sizes.to(self.device), angles_deg.to(self.device), self.image_size,
                                       self.border, scale.to(self.device), draws[:, 2:4].to(self.device),
                                       None if flip is None else flip.to(self.device))
            yield images, angles.encode_angle_deg(angles_deg).to(self.device), angles_deg

