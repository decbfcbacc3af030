"""Rotating images with the four border strategies of the reference.

Taught in notebook 03 (building the rotated dataset). A rotation by ``angle_deg`` turns the
image counter-clockwise; the corners that leave the frame are filled by one of four strategies:

- ``"reflect"``: the image is mirrored outward before rotating, so the frame stays full;
- ``"crop"``: the largest axis-aligned rectangle inside the rotated image is kept (no border
  pixels at all, the protocol used to evaluate on photos the network never saw);
- ``"random_background"``: the corners are filled with random noise, which carries no cue;
- ``"alpha_mask"``: the corners become transparent (an RGBA image).

Images are PIL images or uint8/float tensors of shape (C, H, W) or (N, C, H, W); the output
has the input's type. Rotation and padding use torchvision's transforms.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = [
    "BORDERS",
    "largest_inscribed_rectangle",
    "rotate_image",
    "center_square_crop",
]

BORDERS = ("reflect", "crop", "random_background", "alpha_mask")


def largest_inscribed_rectangle(width: float, height: float, angle_deg: float) -> tuple[float, float]:
    """Width and height in pixels of the largest axis-aligned rectangle that fits inside a
    ``width`` × ``height`` rectangle rotated by ``angle_deg`` degrees (centred on it).

    Returns (width, height) in pixels, floats. Raises ValueError for a non-positive size.
    Source: the closed form of the "rotated rectangle with maximal area" problem
    (two cases: the half-constrained and the fully constrained rectangle).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    theta_rad = math.radians(angle_deg)
    sin_a, cos_a = abs(math.sin(theta_rad)), abs(math.cos(theta_rad))
    width_is_longer = width >= height
    side_long, side_short = (width, height) if width_is_longer else (height, width)
    if side_short <= 2.0 * sin_a * cos_a * side_long or abs(sin_a - cos_a) < 1e-10:
        # Half-constrained: two corners of the crop touch the longer side.
        x = 0.5 * side_short
        if sin_a < 1e-12:
            return float(width), float(height)
        w_r, h_r = (x / sin_a, x / cos_a) if width_is_longer else (x / cos_a, x / sin_a)
    else:
        # Fully constrained: the crop touches all four sides.
        cos_2a = cos_a * cos_a - sin_a * sin_a
        w_r = (width * cos_a - height * sin_a) / cos_2a
        h_r = (height * cos_a - width * sin_a) / cos_2a
    return float(w_r), float(h_r)


def _to_tensor(image):
    """(C, H, W) or (N, C, H, W) tensor view of a PIL image or tensor, and how to go back."""
    if isinstance(image, Image.Image):
        mode = image.mode
        if mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGB")
        return F.pil_to_tensor(image), "pil"
    if isinstance(image, torch.Tensor):
        if image.ndim not in (3, 4):
            raise ValueError(f"image tensor must be (C, H, W) or (N, C, H, W), got {tuple(image.shape)}")
        return image, "tensor"
    raise TypeError(f"expected a PIL image or a torch tensor, got {type(image).__name__}")


def _back(tensor: torch.Tensor, kind: str):
    return F.to_pil_image(tensor) if kind == "pil" else tensor


def _reflect_pad(tensor: torch.Tensor, pad_x: int, pad_y: int) -> torch.Tensor:
    """Reflect padding of any size: torchvision's reflect pad is limited to the image size,
    so large pads are applied in steps."""
    while pad_x > 0 or pad_y > 0:
        h, w = tensor.shape[-2:]
        step_x, step_y = min(pad_x, w - 1), min(pad_y, h - 1)
        tensor = F.pad(tensor, [step_x, step_y, step_x, step_y], padding_mode="reflect")
        pad_x, pad_y = pad_x - step_x, pad_y - step_y
    return tensor


def rotate_image(image, angle_deg: float, border: str = "reflect",
                 rng: np.random.Generator | None = None,
                 interpolation: InterpolationMode = InterpolationMode.BILINEAR):
    """Rotate an image counter-clockwise by ``angle_deg`` degrees and fill the corners.

    image: PIL image, or a tensor (C, H, W) / (N, C, H, W) (uint8 or float).
    angle_deg: degrees, counter-clockwise (any real value).
    border: one of ``BORDERS``. ``reflect``, ``random_background`` and ``alpha_mask`` keep the
    input's size (``alpha_mask`` adds a fourth, alpha channel: RGBA); ``crop`` returns the
    largest inscribed rectangle, which is smaller (at 45° a square keeps half its area).
    rng: NumPy generator for the random background (default: a fresh unseeded one).
    Returns the rotated image, same type as the input.
    Raises ValueError for an unknown border or an image smaller than 2×2 pixels, TypeError for
    an input that is neither a PIL image nor a tensor.
    Source: the four border strategies of the reference result's dataset builder.
    """
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}; choose one of {BORDERS}")
    tensor, kind = _to_tensor(image)
    h, w = tensor.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"image of {w}×{h} pixels is too small to rotate")
    angle_deg = float(angle_deg)

    if border == "reflect":
        theta_rad = math.radians(angle_deg)
        c, s = abs(math.cos(theta_rad)), abs(math.sin(theta_rad))
        pad_x = max(0, int(math.ceil((w * c + h * s - w) / 2))) + 2
        pad_y = max(0, int(math.ceil((w * s + h * c - h) / 2))) + 2
        padded = _reflect_pad(tensor, pad_x, pad_y)
        rotated = F.rotate(padded, angle_deg, interpolation=interpolation)
        return _back(F.center_crop(rotated, [h, w]), kind)

    if border == "crop":
        cw, ch = largest_inscribed_rectangle(w, h, angle_deg)
        cw, ch = max(1, int(math.floor(cw)) - 2), max(1, int(math.floor(ch)) - 2)
        # Rotating onto the input's own frame, when the crop fits in it, computes about half as
        # many pixels as expanding the frame to the whole rotated image; the crop's centre is
        # the same to within one pixel.
        fits = cw <= w and ch <= h
        rotated = F.rotate(tensor, angle_deg, interpolation=interpolation, expand=not fits)
        return _back(F.center_crop(rotated, [ch, cw]), kind)

    # random_background and alpha_mask need to know which pixels came from the image.
    is_float = tensor.is_floating_point()
    ones = torch.ones((1, h, w), dtype=tensor.dtype) * (1.0 if is_float else 255)
    if tensor.ndim == 4:
        ones = ones.expand(tensor.shape[0], 1, h, w)
    rotated = F.rotate(torch.cat([tensor, ones], dim=-3), angle_deg, interpolation=interpolation)
    content, mask = rotated[..., :-1, :, :], rotated[..., -1:, :, :]
    if border == "alpha_mask":
        if content.shape[-3] == 4:  # an RGBA input: its own transparency times the mask
            alpha = content[..., 3:, :, :].to(torch.float32) * mask.to(torch.float32) / (1.0 if is_float else 255.0)
            mask = alpha.to(tensor.dtype) if is_float else alpha.round().clamp(0, 255).to(torch.uint8)
            content = content[..., :3, :, :]
        if content.shape[-3] == 1:
            content = content.expand(*content.shape[:-3], 3, h, w)
        return _back(torch.cat([content, mask], dim=-3), kind)

    rng = rng or np.random.default_rng()
    noise = torch.from_numpy(rng.integers(0, 256, size=tuple(content.shape), dtype=np.uint8))
    noise = noise.to(torch.float32) / 255.0 if is_float else noise
    weight = mask.to(torch.float32) / (1.0 if is_float else 255.0)
    mixed = content.to(torch.float32) * weight + noise.to(torch.float32) * (1.0 - weight)
    return _back(mixed if is_float else mixed.round().clamp(0, 255).to(torch.uint8), kind)


def center_square_crop(image):
    """The largest centred square of an image (PIL or (…, H, W) tensor), same type back."""
    tensor, kind = _to_tensor(image)
    side = min(tensor.shape[-2:])
    return _back(F.center_crop(tensor, [side, side]), kind)
