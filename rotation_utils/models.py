"""Models: ResNet18 with a (cos θ, sin θ) head, and loading checkpoints safely.

Taught in notebook 04. The reference architecture: torchvision's ResNet18 whose final layer is
replaced by ``Dropout(0.25)`` + ``Linear(512, 2)``; the two outputs are read as (cos θ, sin θ)
and decoded with atan2 (:func:`rotation_utils.angles.decode_angle_deg`).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

__all__ = [
    "build_resnet18_regressor",
    "set_trainable",
    "count_parameters",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointExistsError",
]


def build_resnet18_regressor(pretrained: bool = True, dropout: float = 0.25, num_outputs: int = 2,
                             verbose: bool = True) -> tuple[nn.Module, str]:
    """ResNet18 with ``Dropout(dropout)`` + ``Linear(512, num_outputs)`` as its final layer.

    pretrained: try torchvision's ImageNet weights (``IMAGENET1K_V1``). They are read from
    ``$TORCH_HOME/hub/checkpoints/`` when cached there, else downloaded; when neither works
    (offline, corrupt file) the model starts from random weights and says so.
    num_outputs: 2 for (cos θ, sin θ); other heads (bins, von Mises) use more.
    Returns (model, weights) where ``weights`` is ``"imagenet"`` or ``"random"``.
    Input (N, 3, H, W) normalised with ImageNet statistics, any H, W ≥ 32; output (N, num_outputs).
    Source: He et al. 2016 (ResNet); the head is the reference result's
    (ResNet18, 30k COCO-2017 photos × 6 rotations, validation MAE 4.57°).
    """
    weights = "random"
    model = None
    if pretrained:
        try:
            # torch.hub prints "Downloading ... to <cache path>"; keep machine paths out of outputs.
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                model = tv_models.resnet18(weights=tv_models.ResNet18_Weights.IMAGENET1K_V1, progress=False)
            weights = "imagenet"
        except Exception as err:  # noqa: BLE001 - offline (URLError), corrupt cache, ...
            if verbose:
                print(f"ImageNet weights could not be loaded ({err.__class__.__name__}: "
                      f"{str(err).splitlines()[0][:120]}); starting from random weights instead")
    if model is None:
        model = tv_models.resnet18(weights=None)
    elif verbose:
        print("ImageNet weights loaded (torchvision ResNet18_Weights.IMAGENET1K_V1)")
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_outputs))
    return model, weights


def set_trainable(model: nn.Module, trainable: str = "all") -> int:
    """Choose which layers learn: ``"all"``, ``"head"`` (only ``fc``) or ``"layer4+head"``.

    Returns the number of trainable parameters. Raises ValueError for another value.
    """
    groups = {"all": None, "head": ("fc",), "layer4+head": ("layer4", "fc")}
    if trainable not in groups:
        raise ValueError(f"trainable must be one of {sorted(groups)}, got {trainable!r}")
    for name, param in model.named_parameters():
        param.requires_grad = groups[trainable] is None or name.startswith(groups[trainable])
    return count_parameters(model, trainable_only=True)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class CheckpointExistsError(FileExistsError):
    """Raised instead of overwriting a checkpoint that is already there."""


def save_checkpoint(path, model: nn.Module, metadata: dict, overwrite: bool = False, **extra) -> Path:
    """Save ``{"model_state": ..., "metadata": ..., **extra}`` with ``torch.save``.

    metadata: plain values (numbers, strings, lists, dicts) such as the image size, the
    profile and the validation metrics, so that ``torch.load(weights_only=True)`` can read it.
    Raises :class:`CheckpointExistsError` if ``path`` exists and ``overwrite`` is False.
    The file is written to a temporary name first, so an interrupted save loses nothing.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointExistsError(f"{path.name} already exists; pass overwrite=True "
                                    "(or --overwrite) to replace it, or choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model_state": state, "metadata": metadata, **extra}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path, map_location="cpu", verbose: bool = True) -> tuple[nn.Module, dict]:
    """Rebuild the regressor saved by :func:`save_checkpoint` (safe: ``weights_only=True``).

    Returns (model in eval mode, metadata dict). Raises FileNotFoundError for a missing file
    and ValueError for a file that is not a checkpoint of this course.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, truncated files, ...
        raise ValueError(f"{path.name} is not a readable checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError(f"{path.name} is not a checkpoint of this course (no 'model_state')")
    metadata = checkpoint.get("metadata", {})
    num_outputs = int(metadata.get("num_outputs", 2))
    model, _ = build_resnet18_regressor(pretrained=False, num_outputs=num_outputs, verbose=False)
    try:
        model.load_state_dict(checkpoint["model_state"])
    except RuntimeError as err:
        raise ValueError(f"{path.name} is not a checkpoint of this course's ResNet18 regressor: "
                         f"{str(err).splitlines()[0]}") from err
    model.eval()
    if verbose:
        print(f"loaded {path.name}: epoch {metadata.get('epoch')}, "
              f"validation MAE {metadata.get('val_mae_deg', float('nan')):.2f}°")
    return model, metadata


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)
