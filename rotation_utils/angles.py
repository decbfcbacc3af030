"""Angles live on a circle: encoding, decoding and circular error.

Taught in notebook 01 (angles on a circle) and used by every later notebook.
All angles are in degrees, counter-clockwise, unless a name ends in ``_rad``.
Functions accept NumPy arrays or PyTorch tensors and return the same kind.
"""
from __future__ import annotations


from typing import Any

import numpy as np

try:  # torch is optional for the pure-NumPy functions
    import torch
except ImportError:  # pragma: no cover - torch is a course dependency
    torch = None

__all__ = [
    "wrap_angle_deg",
    "encode_angle_deg",
    "decode_angle_deg",
    "signed_angle_difference_deg",
    "circular_absolute_error_deg",
    "naive_absolute_error_deg",
    "circular_mean_deg",
    "summarize_errors",
    "format_summary",
    "RANDOM_GUESS_MAE_DEG",
]


def _is_tensor(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def wrap_angle_deg(angle_deg):
    """Wrap angles in degrees into [0, 360).

    angle_deg: any shape, degrees (scalar, NumPy array or tensor).
    Returns the same shape and type, degrees in [0, 360).
    """
    if _is_tensor(angle_deg):
        wrapped = torch.remainder(angle_deg, 360.0)
        return torch.where(wrapped >= 360.0, wrapped - 360.0, wrapped)
    wrapped = np.mod(np.asarray(angle_deg, dtype=np.float64), 360.0)
    wrapped = np.where(wrapped >= 360.0, wrapped - 360.0, wrapped)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def encode_angle_deg(angle_deg):
    """(cos θ, sin θ) targets from angles in degrees.

    angle_deg: (N,) degrees counter-clockwise (any real value; 370 encodes like 10).
    Returns (N, 2) with columns cos θ and sin θ, a unit vector per angle; tensor in,
    tensor out (float32), NumPy in, NumPy out (float64).
    Source: the (cos θ, sin θ) encoding of Beyer et al., "Biternion Nets", GCPR 2015.
    """
    if _is_tensor(angle_deg):
        theta_rad = torch.deg2rad(angle_deg.to(torch.float32))
        return torch.stack([torch.cos(theta_rad), torch.sin(theta_rad)], dim=-1)
    theta_rad = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    return np.stack([np.cos(theta_rad), np.sin(theta_rad)], axis=-1)


def decode_angle_deg(cos_sin):
    """Angle in degrees in [0, 360) from (cos θ, sin θ) pairs.

    cos_sin: (N, 2), any length (the vector need not be unit: atan2 ignores its norm).
    Returns (N,) degrees, counter-clockwise, in [0, 360).
    Raises ValueError if the last dimension is not 2.
    Source: atan2 decoding, Beyer et al. 2015.
    """
    if cos_sin.shape[-1] != 2:
        raise ValueError(f"cos_sin must have shape (..., 2), got {tuple(cos_sin.shape)}")
    if _is_tensor(cos_sin):
        return wrap_angle_deg(torch.rad2deg(torch.atan2(cos_sin[..., 1], cos_sin[..., 0])))
    cos_sin = np.asarray(cos_sin, dtype=np.float64)
    return wrap_angle_deg(np.rad2deg(np.arctan2(cos_sin[..., 1], cos_sin[..., 0])))


def signed_angle_difference_deg(predicted_deg, true_deg):
    """Signed circular difference predicted − true in degrees, in [−180, 180).

    predicted_deg, true_deg: broadcastable shapes, degrees.
    Returns degrees; positive means the prediction is counter-clockwise of the truth.
    """
    if _is_tensor(predicted_deg) or _is_tensor(true_deg):
        diff = torch.as_tensor(predicted_deg) - torch.as_tensor(true_deg)
        return torch.remainder(diff + 180.0, 360.0) - 180.0
    diff = np.asarray(predicted_deg, dtype=np.float64) - np.asarray(true_deg, dtype=np.float64)
    out = np.mod(diff + 180.0, 360.0) - 180.0
    return float(out) if np.ndim(out) == 0 else out


def circular_absolute_error_deg(predicted_deg, true_deg):
    """Circular absolute error CAE = min(|a − b|, 360 − |a − b|) in degrees, in [0, 180].

    predicted_deg, true_deg: broadcastable shapes, degrees (any real values: both are
    wrapped first, so 359 vs 1 gives 2, not 358).
    Returns degrees in [0, 180], same type as the inputs.
    Source: the circular error used by the reference result (ResNet18 on COCO-2017,
    validation MAE 4.57°).
    """
    if _is_tensor(predicted_deg) or _is_tensor(true_deg):
        diff = torch.abs(wrap_angle_deg(torch.as_tensor(predicted_deg) - torch.as_tensor(true_deg)))
        return torch.minimum(diff, 360.0 - diff)
    diff = np.abs(wrap_angle_deg(np.asarray(predicted_deg, dtype=np.float64)
                                 - np.asarray(true_deg, dtype=np.float64)))
    out = np.minimum(diff, 360.0 - diff)
    return float(out) if np.ndim(out) == 0 else out


def naive_absolute_error_deg(predicted_deg, true_deg):
    """The naive |a − b| in degrees that ignores the 0/360 seam (for teaching only).

    predicted_deg, true_deg: broadcastable shapes, degrees in [0, 360).
    Returns degrees in [0, 360): 359 vs 1 gives 358 although the angles are 2° apart.
    """
    if _is_tensor(predicted_deg) or _is_tensor(true_deg):
        return torch.abs(torch.as_tensor(predicted_deg) - torch.as_tensor(true_deg))
    out = np.abs(np.asarray(predicted_deg, dtype=np.float64) - np.asarray(true_deg, dtype=np.float64))
    return float(out) if np.ndim(out) == 0 else out


def circular_mean_deg(angle_deg, weights=None, axis: int = -1):
    """Circular mean of angles in degrees: atan2 of the mean (cos, sin) vector.

    angle_deg: (..., K) degrees; weights: same shape or None (equal weights).
    Returns (...,) degrees in [0, 360) (NumPy). The mean of 350° and 10° is 0°, not 180°.
    Source: Mardia & Jupp, "Directional Statistics", 2000, §2.2.
    """
    theta_rad = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    w = np.ones_like(theta_rad) if weights is None else np.asarray(weights, dtype=np.float64)
    c = np.sum(w * np.cos(theta_rad), axis=axis)
    s = np.sum(w * np.sin(theta_rad), axis=axis)
    return wrap_angle_deg(np.rad2deg(np.arctan2(s, c)))


def summarize_errors(errors_deg) -> dict:
    """Summary of circular absolute errors in degrees, the reference result's metrics.

    errors_deg: (N,) circular absolute errors in degrees, N ≥ 1.
    Returns a dict: ``n``, ``mae_deg`` (mean), ``median_deg``, ``p90_deg`` (90th percentile),
    and ``within_5``, ``within_10``, ``within_15`` (shares in [0, 1] of errors ≤ 5°, 10°, 15°).
    Raises ValueError on an empty input or on errors outside [0, 180].
    Source: the reference result (ResNet18, 30k COCO-2017 photos × 6 rotations:
    MAE 4.57°, median 1.74°, 88.1% within 5°).
    """
    if _is_tensor(errors_deg):
        errors_deg = errors_deg.detach().cpu().numpy()
    e = np.asarray(errors_deg, dtype=np.float64).ravel()
    if e.size == 0:
        raise ValueError("summarize_errors needs at least one error")
    if np.any(~np.isfinite(e)) or np.any(e < 0) or np.any(e > 180.0 + 1e-9):
        raise ValueError("circular absolute errors must be finite and in [0, 180] degrees")
    return {
        "n": int(e.size),
        "mae_deg": float(e.mean()),
        "median_deg": float(np.median(e)),
        "p90_deg": float(np.percentile(e, 90)),
        "within_5": float(np.mean(e <= 5.0)),
        "within_10": float(np.mean(e <= 10.0)),
        "within_15": float(np.mean(e <= 15.0)),
    }


def format_summary(summary: dict) -> str:
    """One line of text for a :func:`summarize_errors` dict (degrees and percentages)."""
    return (f"n={summary['n']}  MAE {summary['mae_deg']:.2f}°  median {summary['median_deg']:.2f}°  "
            f"p90 {summary['p90_deg']:.2f}°  within 5° {100 * summary['within_5']:.1f}%  "
            f"within 10° {100 * summary['within_10']:.1f}%  within 15° {100 * summary['within_15']:.1f}%")


RANDOM_GUESS_MAE_DEG = 90.0
"""Expected circular absolute error of a uniform random guess, in degrees (the chance level)."""
