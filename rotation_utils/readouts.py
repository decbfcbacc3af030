"""Heads compared on the features of one network: the fast experiment of notebook 07.

Training five CNNs end to end, one per head, takes 5 × several minutes on a laptop CPU
(``benchmarks/heads.py`` does it). A **readout** trains only the head: the network without its
last layer turns every input into a feature vector once (:func:`extract_features`), and each
head of :mod:`rotation_utils.heads` is then trained on those vectors
(:func:`train_readout`) with its own loss, in seconds. Every head sees the same features, the
same samples (the same photos, rotations, crops and flips) and the same number of steps, so
what differs is only how the angle is asked for. It answers a narrower question than end-to-end
training: how well each loss reads the angle out of fixed features, not how each loss would
shape the features.

Test-time turns work on features too: the features of the four 90° turns of each input are
extracted once, each head reads all four, and :func:`rotation_utils.evaluation.undo_turns`
averages its answers on the circle.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import angles, heads
from .evaluation import undo_turns
from .precision import for_inference, inference_input

__all__ = ["feature_extractor", "extract_features", "Readout", "train_readout", "readout_predict"]


def feature_extractor(model: nn.Module) -> nn.Module:
    """A copy of a course model (:func:`rotation_utils.models.build_regressor`) whose last layer
    (``Dropout`` + ``Linear``, the head) is replaced by the identity, in eval mode: it maps inputs
    (N, 3, S, S) to the pooled features (N, F) that the head reads (F = 1280 for
    EfficientNet-Lite0, 512 for ResNet18). The model itself is not changed.
    Raises ValueError for a model without a known head.
    """
    from .models import backbone_name, _unwrap
    from . import backbones

    model = _unwrap(model)
    name = backbone_name(model)
    copy_ = copy.deepcopy(model)
    setattr(copy_, backbones.backbone_spec(name).head_attr, nn.Identity())
    return copy_.eval()


@torch.no_grad()
def extract_features(model: nn.Module, loader, turns: bool = False, passes: int = 1, device=None,
                     progress: bool = False, desc: str = "features") -> dict:
    """The features of every input of a loader of (images, targets, angles in degrees).

    model: a course model (its head is dropped, see :func:`feature_extractor`) or a feature
    extractor already. turns: also extract the features of each input turned by 90°, 180° and
    270° counter-clockwise (for test-time turns). passes: go through the loader this many times
    (a training loader draws fresh rotations, crops and flips each time: more samples of the
    same photos).
    Returns ``features``: float32 tensor (T, N, F) with T = 4 turns (item k: turned by 90°·k)
    or 1, and ``angle_deg``: (N,) the true angles in degrees of the unturned inputs.
    Raises ValueError for ``passes`` < 1 or an empty loader.
    """
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    extractor = model if not _has_head(model) else feature_extractor(model)
    device = torch.device(device) if device is not None else next(extractor.parameters()).device
    extractor = for_inference(extractor, device)
    chunks, truths = [], []
    for _ in range(passes):
        for images, _, angle_deg in tqdm(loader, desc=desc, leave=False, disable=not progress):
            images = inference_input(images, device)
            ks = range(4) if turns else range(1)
            chunks.append(torch.stack([extractor(torch.rot90(images, k, dims=(-2, -1))).float().cpu() for k in ks]))
            truths.append(angle_deg.float().cpu())
    if not chunks:
        raise ValueError("the loader gave no inputs")
    return {"features": torch.cat(chunks, dim=1), "angle_deg": torch.cat(truths)}


def _has_head(model: nn.Module) -> bool:
    from .models import backbone_name, _unwrap
    from . import backbones

    try:
        head = backbones.head_of(_unwrap(model), backbone_name(model))
    except (ValueError, AttributeError):
        return False
    return not isinstance(head, nn.Identity)


class Readout(nn.Module):
    """A head on features: ``Dropout(dropout)`` + ``Linear(in_features, heads.num_outputs(head,
    bins))``, the same layer as the course model's head. Input (N, F), output (N, K) raw outputs
    read by :mod:`rotation_utils.heads`. Raises ValueError for an unknown head or < 2 bins."""

    def __init__(self, in_features: int, head: str, bins: int = 72, dropout: float = 0.25):
        super().__init__()
        self.head, self.bins = head, int(bins)
        self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, heads.num_outputs(head, bins)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def train_readout(features: dict, head: str, bins: int = 72, alpha: float = 1.0, epochs: int = 30,
                  batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-2, seed: int = 0) -> tuple:
    """Train a :class:`Readout` of ``head`` on extracted features with the head's own loss
    (:func:`rotation_utils.heads.loss`; ``alpha`` weighs the circular term of
    ``bins_expected``), AdamW with a cosine decay to zero over ``epochs`` epochs of shuffled
    mini-batches (the shuffle and the head's initial weights drawn from ``seed``).

    features: a dict of :func:`extract_features` (only the unturned features, item 0, are used).
    Returns (readout in eval mode, seconds of training). Raises ValueError for an unknown head,
    fewer than 2 bins, ``epochs`` < 1 or non-finite features.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    x, angle_deg = features["features"][0], features["angle_deg"]
    if not torch.isfinite(x).all():
        raise ValueError("the features hold NaN or infinite values")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        readout = Readout(x.shape[1], head, bins)
        optimizer = torch.optim.AdamW(readout.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * int(np.ceil(len(x) / batch_size))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * step / steps)))
        start = time.perf_counter()
        readout.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for batch in order.split(batch_size):
                loss = heads.loss(head, readout(x[batch]), angle_deg[batch], bins, alpha)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
    return readout.eval(), time.perf_counter() - start


@torch.no_grad()
def readout_predict(readout: Readout, features: dict, turns: bool = False, method: str = "mean") -> dict:
    """Predictions of a trained :class:`Readout` on extracted features.

    turns: average the answers for the four 90° turns (needs features extracted with
    ``turns=True``; :func:`rotation_utils.evaluation.undo_turns`). method: for the classifiers,
    ``"mean"`` (circular mean of the softmax) or ``"argmax"`` (the most probable bin's centre);
    not allowed with ``turns``.
    Returns NumPy arrays like :func:`rotation_utils.evaluation.predict`: ``predicted_deg`` (N,)
    in [0, 360), ``true_deg``, ``error_deg`` (circular absolute errors, degrees in [0, 180]),
    ``confidence`` (the head's own, see :data:`rotation_utils.heads.HEADS`; with turns the
    averaged vector's length) and ``kappa`` (von Mises only, one pass: the concentration, and
    ``circular_std_deg`` its predicted spread in degrees).
    Raises ValueError when the turns are asked for but were not extracted, or for argmax with turns.
    """
    x = features["features"]
    if turns and x.shape[0] != 4:
        raise ValueError("test-time turns need the features of the four turns: extract_features(..., turns=True)")
    if turns and method != "mean":
        raise ValueError("the turns average vectors on the circle: use method='mean'")
    readout = readout.eval()
    result = {}
    if turns:
        vector = undo_turns([heads.resultant(readout.head, readout(x[k]), readout.bins) for k in range(4)])
        predicted = angles.decode_angle_deg(vector)
        confidence = vector.norm(dim=1)
    else:
        raw = readout(x[0])
        decoded = heads.decode(readout.head, raw, readout.bins, method=method)
        predicted, confidence = decoded["predicted_deg"], decoded["confidence"]
        if readout.head == "von_mises":
            kappa = heads.concentration(raw[:, 2])
            result["kappa"] = kappa.numpy().astype(np.float64)
            result["circular_std_deg"] = heads.circular_std_deg(kappa).numpy().astype(np.float64)
    true_deg = features["angle_deg"].numpy().astype(np.float64)
    predicted_deg = predicted.numpy().astype(np.float64)
    result.update(predicted_deg=predicted_deg, true_deg=true_deg, confidence=confidence.numpy().astype(np.float64),
                  error_deg=angles.circular_absolute_error_deg(predicted_deg, true_deg))
    return result
