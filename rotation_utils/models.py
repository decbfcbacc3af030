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
    "resnet18_of_width",
    "set_trainable",
    "count_parameters",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointExistsError",
]


def resnet18_of_width(width: int = 64) -> nn.Module:
    """torchvision's ResNet18 (``BasicBlock``, [2, 2, 2, 2]) with ``width`` channels in its
    first stage instead of 64 (then 2×, 4×, 8× width), random weights, torchvision's own
    initialisation. Its ``fc`` takes ``8 * width`` features.

    width: 64 is the standard ResNet18; 32 has about ¼ of its parameters and multiply-adds,
    so on a CPU it trains at a larger input size in the same time (``benchmarks/quick_profile.py
    --width 32 --image-size 96``: about as accurate as width 64 at 64 px after 4½ minutes).
    Raises ValueError for a width below 8. Source: He et al. 2016 (ResNet); narrowing every
    stage by the same factor as in Zagoruyko & Komodakis 2016 (wide residual networks).
    """
    if int(width) != width or width < 8:
        raise ValueError(f"width must be an integer of at least 8, got {width!r}")
    model = tv_models.resnet18(weights=None)
    if width == 64:
        return model
    model.inplanes = width  # _make_layer reads the input channels from here
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    for stage, stride in zip(range(1, 5), (1, 2, 2, 2)):
        setattr(model, f"layer{stage}", model._make_layer(
            tv_models.resnet.BasicBlock, width * 2 ** (stage - 1), 2, stride=stride))
    model.fc = nn.Linear(8 * width, 1000)
    for module in model.modules():  # torchvision's initialisation of ResNet
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    return model


def build_resnet18_regressor(pretrained: bool = True, dropout: float = 0.25, num_outputs: int = 2,
                             verbose: bool = True, width: int = 64) -> tuple[nn.Module, str]:
    """ResNet18 with ``Dropout(dropout)`` + ``Linear(512, num_outputs)`` as its final layer
    (``Linear(8 * width, num_outputs)`` for another ``width``).

    pretrained: try torchvision's ImageNet weights (``IMAGENET1K_V1``). They are read from
    ``$TORCH_HOME/hub/checkpoints/`` when cached there, else downloaded; when neither works
    (offline, corrupt file) the model starts from random weights and says so.
    num_outputs: 2 for (cos θ, sin θ); other heads (bins, von Mises) use more.
    width: channels of the first stage (64: the standard ResNet18, what every profile uses;
    see :func:`resnet18_of_width`, whose head is then ``Linear(8 * width, num_outputs)``).
    ImageNet weights exist only for width 64; another width starts from random weights and
    says so.
    Returns (model, weights) where ``weights`` is ``"imagenet"`` or ``"random"``.
    Input (N, 3, H, W) normalised with ImageNet statistics, any H, W ≥ 32; output (N, num_outputs).
    Source: He et al. 2016 (ResNet); the head is the reference result's
    (ResNet18, 30k COCO-2017 photos × 6 rotations, validation MAE 4.57°).
    Raises ValueError for a width below 8.
    """
    weights = "random"
    model = None
    if width != 64:
        model = resnet18_of_width(width)
        if pretrained and verbose:
            print(f"ImageNet weights exist only for the standard width 64; this ResNet18 of width "
                  f"{width} starts from random weights")
    elif pretrained:
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
    elif verbose and weights == "imagenet":
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
    width = int(metadata.get("width", 64))
    model, _ = build_resnet18_regressor(pretrained=False, num_outputs=num_outputs, verbose=False,
                                        width=width)
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
