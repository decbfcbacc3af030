"""Five ways to ask a network for an angle: the heads compared in notebook 07.

Each head is a number of outputs, a loss, and a decoding into an angle (degrees,
counter-clockwise, in [0, 360)) with a confidence. Every head also gives a **resultant vector**
(N, 2) on the circle (:func:`resultant`): its direction is the predicted angle and its length
says how sure the head is. The course's test-time turns (averaging over the four 90° turns of
the input) and Grad-CAM target (the resultant's component along a direction) work through it,
so they serve every head alike.

- ``cos_sin_mse``: outputs (cos θ, sin θ), MSE loss — the reference result's head.
- ``angular``: two outputs, normalised to the unit circle, loss 1 − cos(θ̂ − θ).
- ``von_mises``: outputs (μ as a direction (a, b), raw concentration r); κ = softplus(r) +
  10⁻³ > 0; loss: the negative log-likelihood of the von Mises distribution,
  −κ cos(θ − μ) + log(2π I₀(κ)), with log I₀(κ) = log(i0e(κ)) + κ, stable for any κ.
  The network says how sure it is (κ large: sure).
- ``classification_360``: one class per degree, cross-entropy — RotNet (d4nst/RotNet); decoded
  by the argmax class or by the circular mean of the softmax.
- ``bins_expected``: B bins (72 of 5° by default), cross-entropy plus α × the squared circular
  error (radians²) of the expected angle — HopeNet's dual loss (Ruiz et al. 2018, there with
  the expected value on a line and an MSE) made circular: the expected value is taken on the
  circle, Σ pₖ (cos cₖ, sin cₖ), so it does not break at 0/360.

Classes: bin k (of width w = 360 / B degrees) is centred on k·w and holds the angles within w/2
of it; the class of θ is round(θ / w) mod B, so decoding is exact on bin centres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import angles

__all__ = ["HEADS", "HeadSpec", "head_spec", "num_outputs", "bin_centres_deg", "angle_to_class", "concentration",
           "loss", "resultant", "decode", "von_mises_log_likelihood", "circular_std_deg"]


@dataclass(frozen=True)
class HeadSpec:
    """One head: ``name``, whether it classifies, its confidence's meaning, and its source."""

    name: str
    classifies: bool
    confidence: str
    source: str


HEADS: dict[str, HeadSpec] = {
    "cos_sin_mse": HeadSpec("cos_sin_mse", False, "length of the (cos, sin) output",
                            "the reference result (ResNet18, COCO-2017: MAE 4.57°)"),
    "angular": HeadSpec("angular", False, "length of the output before normalising",
                        "the cosine (angular) loss 1 − cos(θ̂ − θ)"),
    "von_mises": HeadSpec("von_mises", False, "concentration κ (circular std = √(−2 ln(I₁(κ)/I₀(κ))))",
                          "von Mises negative log-likelihood (e.g. Prokudin et al. 2018, Deep Directional Statistics)"),
    "classification_360": HeadSpec("classification_360", True, "the softmax's largest probability",
                                   "RotNet (d4nst/RotNet): 360 one-degree classes, cross-entropy"),
    "bins_expected": HeadSpec("bins_expected", True, "the softmax's largest probability",
                              "HopeNet (Ruiz et al. 2018): bins + expected value, dual loss (here circular)"),
}


def head_spec(head: str) -> HeadSpec:
    """The :class:`HeadSpec` of ``head``. Raises ValueError naming the known heads."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return HEADS[head]


def num_outputs(head: str, bins: int = 72) -> int:
    """Outputs of the network's last layer for ``head`` (bins: of ``bins_expected``).
    Raises ValueError for an unknown head or fewer than 2 bins."""
    head_spec(head)
    if head == "bins_expected" and bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    return {"cos_sin_mse": 2, "angular": 2, "von_mises": 3, "classification_360": 360}.get(head, bins)


def _classes(head: str, bins: int) -> int:
    return 360 if head == "classification_360" else int(bins)


def bin_centres_deg(n_bins: int, device=None) -> torch.Tensor:
    """Centres of ``n_bins`` equal bins on the circle, degrees: 0, w, 2w, … (w = 360 / n_bins)."""
    return torch.arange(n_bins, device=device, dtype=torch.float32) * (360.0 / n_bins)


def angle_to_class(angle_deg: torch.Tensor, n_bins: int) -> torch.Tensor:
    """The class (int64, (N,)) of angles in degrees: the nearest bin centre, round(θ / w) mod B."""
    return torch.remainder(torch.round(angle_deg.float() / (360.0 / n_bins)), n_bins).long()


def concentration(raw: torch.Tensor) -> torch.Tensor:
    """κ > 0 from the network's raw output: softplus(raw) + 10⁻³ (never zero, any raw value)."""
    return nn.functional.softplus(raw.float()) + 1e-3


def von_mises_log_likelihood(angle_rad: torch.Tensor, mu_rad: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """log p(θ | μ, κ) of the von Mises distribution, all in **radians**:
    κ cos(θ − μ) − log(2π) − log I₀(κ), with log I₀(κ) = log(i0e(κ)) + κ (stable for large κ)."""
    return kappa * torch.cos(angle_rad - mu_rad) - math.log(2 * math.pi) - (torch.log(torch.special.i0e(kappa)) + kappa)


def circular_std_deg(kappa: torch.Tensor) -> torch.Tensor:
    """Circular standard deviation of a von Mises distribution, degrees: √(−2 ln A(κ)) with
    A(κ) = I₁(κ) / I₀(κ) (= i1e / i0e), the mean resultant length."""
    ratio = (torch.special.i1e(kappa) / torch.special.i0e(kappa)).clamp(1e-12, 1.0)
    return torch.rad2deg(torch.sqrt(-2.0 * torch.log(ratio)))


def _unit(xy: torch.Tensor) -> torch.Tensor:
    return xy / xy.norm(dim=1, keepdim=True).clamp_min(1e-8)


def loss(head: str, outputs: torch.Tensor, angle_deg: torch.Tensor, bins: int = 72, alpha: float = 1.0) -> torch.Tensor:
    """The training loss (a scalar, mean over the batch) of ``head``.

    outputs: (N, :func:`num_outputs`) the network's raw outputs. angle_deg: (N,) true angles,
    degrees. alpha: weight of the circular term of ``bins_expected``.
    Raises ValueError for an unknown head or outputs of the wrong width.
    """
    head_spec(head)
    outputs = outputs.float()
    if outputs.ndim != 2 or outputs.shape[1] != num_outputs(head, bins):
        raise ValueError(f"the {head} head needs outputs (N, {num_outputs(head, bins)}), got {tuple(outputs.shape)}")
    theta = torch.deg2rad(angle_deg.float().to(outputs.device))
    target = torch.stack((torch.cos(theta), torch.sin(theta)), dim=1)
    if head == "cos_sin_mse":
        return nn.functional.mse_loss(outputs, target)
    if head == "angular":
        return (1.0 - (_unit(outputs) * target).sum(dim=1)).mean()
    if head == "von_mises":
        mu = torch.atan2(outputs[:, 1], outputs[:, 0])
        return -von_mises_log_likelihood(theta, mu, concentration(outputs[:, 2])).mean()
    n = _classes(head, bins)
    cross_entropy = nn.functional.cross_entropy(outputs, angle_to_class(angle_deg.to(outputs.device), n))
    if head == "classification_360":
        return cross_entropy
    expected = resultant(head, outputs, bins)
    difference = torch.atan2(expected[:, 1] * target[:, 0] - expected[:, 0] * target[:, 1],
                             (expected * target).sum(dim=1))  # θ̂ − θ wrapped to (−π, π]
    return cross_entropy + alpha * (difference ** 2).mean()


def resultant(head: str, outputs: torch.Tensor, bins: int = 72) -> torch.Tensor:
    """The head's answer as a vector on the circle (N, 2): direction = the predicted angle,
    length = how sure (≤ 1 for every head but ``cos_sin_mse`` and ``angular``, whose raw
    length is kept). von Mises: the unit direction of μ times A(κ) = I₁(κ)/I₀(κ); classifiers:
    Σₖ pₖ (cos cₖ, sin cₖ), the circular mean of the softmax."""
    outputs = outputs.float()
    if head in ("cos_sin_mse", "angular"):
        return outputs[:, :2]
    if head == "von_mises":
        kappa = concentration(outputs[:, 2])
        return _unit(outputs[:, :2]) * (torch.special.i1e(kappa) / torch.special.i0e(kappa))[:, None]
    head_spec(head)
    n = _classes(head, bins)
    probabilities = torch.softmax(outputs, dim=1)
    centres = torch.deg2rad(bin_centres_deg(n, outputs.device))
    return torch.stack((probabilities @ torch.cos(centres), probabilities @ torch.sin(centres)), dim=1)


def decode(head: str, outputs: torch.Tensor, bins: int = 72, method: str = "mean") -> dict:
    """Angles and confidences from raw outputs (N, K).

    method: for the classifiers, ``"mean"`` (the circular mean of the softmax) or ``"argmax"``
    (the centre of the most probable bin); ignored by the regressors.
    Returns tensors: ``predicted_deg`` (N,) in [0, 360), ``confidence`` (N,) (see
    :data:`HEADS`: the output length, κ, or the largest probability) and ``resultant_length``
    (N,). Raises ValueError for an unknown head or method.
    """
    spec = head_spec(head)
    if method not in ("mean", "argmax"):
        raise ValueError(f"method must be 'mean' or 'argmax', got {method!r}")
    outputs = outputs.float()
    vector = resultant(head, outputs, bins)
    predicted = angles.decode_angle_deg(vector)
    length = vector.norm(dim=1)
    if spec.classifies:
        probabilities = torch.softmax(outputs, dim=1)
        confidence, best = probabilities.max(dim=1)
        if method == "argmax":
            predicted = bin_centres_deg(_classes(head, bins), outputs.device)[best]
    elif head == "von_mises":
        confidence = concentration(outputs[:, 2])
    else:
        confidence = outputs[:, :2].norm(dim=1)
    return {"predicted_deg": predicted, "confidence": confidence, "resultant_length": length}
