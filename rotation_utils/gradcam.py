"""Grad-CAM for the (cos θ, sin θ) regressor: what the network looks at.

Taught in notebook 06. pytorch-grad-cam explains a *scalar* per sample; its targets are small
callables that turn the model's output into that scalar. For a (cos θ, sin θ) regressor the
natural scalar is the component of the output along a direction u = (cos φ, sin φ):
``s = out · u``. With φ the *predicted* angle, s is the length of the output vector, i.e. how
sure the network is of its own answer; with φ the *true* angle, s measures the evidence for the
right answer. Source: Selvaraju et al., "Grad-CAM", ICCV 2017; pytorch-grad-cam (J. Gildenblat).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import angles
from .datasets import denormalize

__all__ = [
    "AngleDirectionTarget",
    "default_target_layer",
    "compute_gradcam",
    "overlay_cam",
    "border_fill_mask",
    "cam_mass_share",
    "gradcam_for_loader",
]


class AngleDirectionTarget:
    """Grad-CAM target: the component of the model's answer along the direction ``angle_deg``.

    angle_deg: degrees, counter-clockwise. head, bins: how the outputs are read
    (:mod:`rotation_utils.heads`); the answer is the head's resultant vector on the circle (for
    the reference's head the (cos θ, sin θ) output itself, for a classifier the circular mean
    of its softmax, for von Mises the direction of μ times its mean resultant length).
    Called with one sample's output (K,) (or (N, K)), returns ``cos φ · v[0] + sin φ · v[1]``
    (a scalar, or (N,)).
    """

    def __init__(self, angle_deg: float, head: str = "cos_sin_mse", bins: int = 72):
        self.angle_deg, self.head, self.bins = float(angle_deg), head, int(bins)
        theta_rad = math.radians(self.angle_deg)
        self.direction = (math.cos(theta_rad), math.sin(theta_rad))

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if self.head != "cos_sin_mse":
            from .heads import resultant

            single = model_output.ndim == 1
            vector = resultant(self.head, model_output[None] if single else model_output, self.bins)
            model_output = vector[0] if single else vector
        return model_output[..., 0] * self.direction[0] + model_output[..., 1] * self.direction[1]

    def __repr__(self) -> str:
        return f"AngleDirectionTarget(angle_deg={self.angle_deg:.1f}, head={self.head!r})"


def default_target_layer(model, fine: bool = False):
    """The Grad-CAM layer of one of the course's models: its backbone's last block, or with
    ``fine`` a block of stride 16 (maps of input side / 16 cells instead of / 32).
    Raises ValueError for a model that is not one of the course's backbones."""
    from .backbones import gradcam_layer
    from .models import backbone_name

    return gradcam_layer(model, backbone_name(model), fine=fine)


def compute_gradcam(model, images: torch.Tensor, target_angles_deg=None, target_layer=None,
                    head: str = "cos_sin_mse", bins: int = 72) -> tuple:
    """Grad-CAM maps of a (cos θ, sin θ) regressor (or of another head, read with ``head`` and
    ``bins``, see :class:`AngleDirectionTarget`) for a batch.

    images: (N, 3, H, W) normalised network inputs. target_angles_deg: (N,) degrees, the
    direction each map explains (default: the model's own predicted angles).
    target_layer: a module (default: the backbone's last block,
    :func:`rotation_utils.backbones.gradcam_layer`: ResNet18's ``layer4[-1]``,
    EfficientNet-Lite0's ``blocks[-1]``).
    Returns (cams (N, H, W) NumPy in [0, 1], predicted angles (N,) in degrees).
    Raises ValueError if the number of target angles is not N.
    """
    from pytorch_grad_cam import GradCAM

    model = model.eval()
    device = next(model.parameters()).device
    images = images.to(device)
    from .heads import resultant

    with torch.no_grad():
        predicted_deg = angles.decode_angle_deg(resultant(head, model(images).float(), bins)).cpu().numpy()
    if target_angles_deg is None:
        target_angles_deg = predicted_deg
    target_angles_deg = np.asarray(target_angles_deg, dtype=np.float64).ravel()
    if len(target_angles_deg) != len(images):
        raise ValueError(f"{len(target_angles_deg)} target angles for {len(images)} images")
    layer = target_layer if target_layer is not None else default_target_layer(model)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=images, targets=[AngleDirectionTarget(a, head, bins) for a in target_angles_deg])
    return maps, predicted_deg


def overlay_cam(image: torch.Tensor, cam: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """A heat map over a normalised image (3, H, W): returns (H, W, 3) uint8 RGB for display."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = denormalize(image.detach().cpu()).permute(1, 2, 0).numpy().astype(np.float32)
    return show_cam_on_image(rgb, cam, use_rgb=True, image_weight=image_weight)


def border_fill_mask(width: int, height: int, angle_deg: float, image_size: int) -> np.ndarray:
    """Where a rotation's border fill lands in the network input: the corners that
    ``reflect`` or ``random_background`` fill because they lie outside the rotated photo.

    width, height: the photo's size in pixels before rotating (only their ratio matters).
    angle_deg: the rotation, degrees counter-clockwise. image_size: side S of the network
    input, which is the centred largest square of the rotated frame resized to S × S (as in
    :func:`rotation_utils.datasets.to_model_input` with ``train=False``).
    Returns a (S, S) bool array, True where the input shows fill rather than the photo
    (all False at 0°; at 45° about 17% of a square photo's input).
    Raises ValueError for a non-positive size.
    """
    if width <= 0 or height <= 0 or image_size <= 0:
        raise ValueError(f"sizes must be positive, got {width}×{height} and {image_size}")
    side = min(width, height)
    centres = ((np.arange(image_size) + 0.5) / image_size - 0.5) * side
    u, v = np.meshgrid(centres, centres)  # x to the right, y down, from the frame's centre
    theta_rad = math.radians(angle_deg)
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    # Undo the counter-clockwise rotation (clockwise on screen, y pointing down).
    x = u * c - v * s
    y = u * s + v * c
    return (np.abs(x) > width / 2) | (np.abs(y) > height / 2)


def cam_mass_share(cams, masks) -> np.ndarray:
    """Share of each Grad-CAM map's mass that falls inside a mask (e.g. the border corners).

    cams: (N, H, W) or (H, W) non-negative maps (as :func:`compute_gradcam` returns).
    masks: bool, the same shape as ``cams`` or (H, W) for all maps.
    Returns (N,) shares in [0, 1] (a float for one map); NaN for a map with no mass at all.
    A map spread evenly over the image gives the mask's share of the area, so compare with
    ``masks.mean()``: a larger share means the attention is drawn into the mask.
    Raises ValueError for shapes that do not match or negative values.
    """
    cams = np.asarray(cams, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    single = cams.ndim == 2
    if single:
        cams = cams[None]
    if cams.ndim != 3:
        raise ValueError(f"cams must be (N, H, W) or (H, W), got shape {cams.shape}")
    if masks.shape != cams.shape and masks.shape != cams.shape[1:]:
        raise ValueError(f"masks of shape {masks.shape} do not match cams of shape {cams.shape}")
    if np.any(cams < 0):
        raise ValueError("Grad-CAM maps must be non-negative")
    total = cams.sum(axis=(1, 2))
    inside = (cams * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    return float(share[0]) if single else share


def gradcam_for_loader(model, loader, target: str = "predicted", target_layer=None) -> dict:
    """Grad-CAM maps and predictions for every sample of a loader, batch by batch.

    loader: yields (images (B, 3, S, S), targets, angles in degrees (B,)), as the course's
    datasets do. target: ``"predicted"`` (explain the network's own answer) or ``"true"``
    (explain the evidence for the right answer); see :class:`AngleDirectionTarget`.
    target_layer: as in :func:`compute_gradcam` (default: the backbone's last block).
    Returns NumPy arrays ``cams`` (N, S, S) in [0, 1], ``predicted_deg`` (N,), ``true_deg`` (N,)
    and ``error_deg`` (N,) circular absolute errors in degrees.
    Raises ValueError for another ``target``.
    """
    if target not in ("predicted", "true"):
        raise ValueError(f"target must be 'predicted' or 'true', got {target!r}")
    cams, predicted, truths = [], [], []
    for images, _, angle_deg in loader:
        wanted = angle_deg.numpy() if target == "true" else None
        maps, predicted_deg = compute_gradcam(model, images, wanted, target_layer)
        cams.append(maps)
        predicted.append(predicted_deg)
        truths.append(angle_deg.numpy().astype(np.float64))
    predicted_deg = np.concatenate(predicted).astype(np.float64)
    true_deg = np.concatenate(truths)
    return {"cams": np.concatenate(cams), "predicted_deg": predicted_deg, "true_deg": true_deg,
            "error_deg": angles.circular_absolute_error_deg(predicted_deg, true_deg)}
