"""Models: a backbone with a (cos θ, sin θ) head, and loading checkpoints safely.

Taught in notebook 04. The reference architecture: torchvision's ResNet18 whose final layer is
replaced by ``Dropout(0.25)`` + ``Linear(512, 2)``; the two outputs are read as (cos θ, sin θ)
and decoded with atan2 (:func:`rotation_utils.angles.decode_angle_deg`). The same head sits on
every backbone of :mod:`rotation_utils.backbones` (EfficientNet-Lite0: ``Linear(1280, 2)``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

from . import backbones
from .config import save_torch_atomically
from .backbones import WeightsUnavailableError, resnet18_of_width

__all__ = [
    "build_regressor",
    "regressor_for_profile",
    "build_resnet18_regressor",
    "backbone_name",
    "WeightsUnavailableError",
    "resnet18_of_width",
    "set_trainable",
    "count_parameters",
    "save_checkpoint",
    "load_checkpoint",
    "half_precision_copy",
    "CheckpointExistsError",
    "prediction_settings",
]

#: The input sizes (pixels) a checkpoint's metadata may give: the networks need 32 at least.
IMAGE_SIZES = range(32, 4097)


def build_regressor(backbone: str = "resnet18", weights: str = "imagenet", dropout: float = 0.25,
                    num_outputs: int = 2, width: int = 64, verbose: bool = True) -> nn.Module:
    """A backbone whose final layer is replaced by ``Dropout(dropout)`` + ``Linear(features,
    num_outputs)``: the regressor of notebook 04, on any backbone of
    :data:`rotation_utils.backbones.BACKBONES`.

    backbone: ``"resnet18"`` (the reference architecture) or ``"efficientnet_lite0"`` (ImageNet
    weights offline, from the package index). weights: ``"imagenet"`` or ``"random"``.
    num_outputs: 2 for (cos θ, sin θ); other heads (bins, von Mises) use more.
    width: ResNet18's first-stage channels (64: the standard network).
    Input (N, 3, H, W) normalised with ImageNet mean and std, H, W ≥ 32; output (N, num_outputs).
    Raises :class:`rotation_utils.backbones.WeightsUnavailableError` when ImageNet weights are
    asked for and cannot be had (the message says how to get them), ValueError for an unknown
    backbone (the message lists the known ones) or weights value.
    Source: the reference result's head (ResNet18, 30k COCO-2017 photos × 6 rotations,
    validation MAE 4.57°).
    """
    spec = backbones.backbone_spec(backbone)
    model = backbones.build_backbone(backbone, weights, width)
    in_features = backbones.head_of(model, backbone).in_features
    setattr(model, spec.head_attr, nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_outputs)))
    if verbose:
        origin = spec.weights_source if weights == "imagenet" else "random initialisation"
        print(f"{backbone}: {weights} weights, from {origin}; {count_parameters(model):,} parameters")
    return model


def regressor_for_profile(profile, verbose: bool = True) -> tuple[nn.Module, dict]:
    """The profile's regressor (``backbone``, ``weights``, ``width``, and as many outputs as its
    ``head`` needs, :func:`rotation_utils.heads.num_outputs`) with the profile's layers unfrozen
    (``train_trainable``), and what a checkpoint should record of its weights.

    Returns (model, metadata) with metadata ``{"weights": "imagenet" | "random",
    "weights_source": where they came from}``. Raises what :func:`build_regressor` raises.
    """
    from .heads import num_outputs

    model = build_regressor(profile.backbone, profile.weights, width=profile.width, verbose=verbose,
                            num_outputs=num_outputs(profile.head, profile.bins))
    set_trainable(model, profile.train_trainable, profile.backbone)
    source = (backbones.backbone_spec(profile.backbone).weights_source if profile.weights == "imagenet"
              else "random initialisation")
    return model, {"weights": profile.weights, "weights_source": source}


def build_resnet18_regressor(pretrained: bool = True, dropout: float = 0.25, num_outputs: int = 2,
                             verbose: bool = True, width: int = 64) -> tuple[nn.Module, str]:
    """ResNet18 with ``Dropout(dropout)`` + ``Linear(512, num_outputs)`` as its final layer
    (``Linear(8 * width, num_outputs)`` for another ``width``), trying ImageNet weights.

    pretrained: try torchvision's ImageNet weights (``IMAGENET1K_V1``), read from
    ``$TORCH_HOME/hub/checkpoints/`` when cached there, else downloaded; when neither works
    (offline, corrupt file) the model starts from random weights and says so (use
    :func:`build_regressor` to get an error instead). ImageNet weights exist only for width 64.
    Returns (model, weights) where ``weights`` is ``"imagenet"`` or ``"random"``.
    Input (N, 3, H, W) normalised with ImageNet statistics, any H, W ≥ 32; output (N, num_outputs).
    Source: He et al. 2016 (ResNet); the head is the reference result's.
    Raises ValueError for a width below 8.
    """
    weights = "imagenet" if pretrained else "random"
    if pretrained and width != 64:
        weights = "random"
        if verbose:
            print(f"ImageNet weights exist only for the standard width 64; this ResNet18 of width "
                  f"{width} starts from random weights")
    try:
        model = build_regressor("resnet18", weights, dropout, num_outputs, width, verbose=False)
    except backbones.WeightsUnavailableError as err:
        if verbose:
            print(f"{err}; starting from random weights instead")
        weights = "random"
        model = build_regressor("resnet18", weights, dropout, num_outputs, width, verbose=False)
    if verbose and weights == "imagenet":
        print("ImageNet weights loaded (torchvision ResNet18_Weights.IMAGENET1K_V1)")
    return model, weights


def set_trainable(model: nn.Module, trainable: str = "all", backbone: str | None = None) -> int:
    """Choose which layers learn: ``"all"``, ``"head"`` (only the final layer),
    ``"last_stage+head"`` (the last stage of the backbone and the head; for ResNet18 also
    called ``"layer4+head"``).

    backbone: the backbone's name (default: guessed from the model, see :func:`backbone_name`).
    Returns the number of trainable parameters. Raises ValueError for another value.
    """
    spec = backbones.backbone_spec(backbone or backbone_name(model))
    last = spec.last_stage + (spec.head_attr,)
    groups = {"all": None, "head": (spec.head_attr,), "last_stage+head": last}
    if spec.name == "resnet18":
        groups["layer4+head"] = last
    if trainable not in groups:
        raise ValueError(f"trainable must be one of {sorted(groups)}, got {trainable!r}")
    for name, param in model.named_parameters():
        param.requires_grad = groups[trainable] is None or any(
            name == prefix or name.startswith(prefix + ".") for prefix in groups[trainable])
    return count_parameters(model, trainable_only=True)


def backbone_name(model: nn.Module) -> str:
    """``"resnet18"``, ``"efficientnet_lite0"`` or ``"efficientnet_lite2"`` for a model built by
    :func:`build_regressor` (timm records which EfficientNet it built). Raises ValueError for a
    model of another kind."""
    model = _unwrap(model)
    if isinstance(model, tv_models.ResNet):
        return "resnet18"
    if type(model).__name__ == "EfficientNet" and hasattr(model, "conv_head"):
        architecture = (getattr(model, "pretrained_cfg", None) or {}).get("architecture", "")
        return "efficientnet_lite2" if architecture.endswith("lite2") else "efficientnet_lite0"
    raise ValueError(f"not one of the course's backbones: {type(model).__name__}")


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
    The file is written to a temporary name first, so an interrupted save loses nothing; a
    full disk is an OSError (errno ENOSPC) and leaves the old file as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointExistsError(f"{path.name} already exists; pass overwrite=True "
                                    "(or --overwrite) to replace it, or choose another folder")
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return save_torch_atomically(path, {"model_state": state, "metadata": metadata, **extra})


def load_checkpoint(path, map_location="cpu", verbose: bool = True,
                    backbone: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the regressor saved by :func:`save_checkpoint` (safe: ``weights_only=True``).

    The backbone, the number of outputs and ResNet18's width come from the checkpoint's
    metadata (``backbone`` missing: ``resnet18``, the course's first checkpoints). Tensors saved
    in half precision (the reference checkpoint) are loaded into a float32 model.
    backbone: when given, a checkpoint of another backbone is refused.
    Returns (model in eval mode, metadata dict). Raises FileNotFoundError for a missing file
    and ValueError for a file that is not a checkpoint of this course (unreadable, metadata
    that is not a dict or has values of the wrong type), of another backbone, or whose weights
    are not finite (NaN or infinity: a run that diverged).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, truncated files, ...
        raise ValueError(f"{path.name} is not a readable checkpoint: {_why_unreadable(path, err)}") from err
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError(f"{path.name} is not a checkpoint of this course (no 'model_state')")
    metadata = checkpoint.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{path.name}: its metadata is a {type(metadata).__name__}, not a dict; "
                         "it was not written by this course")
    state = checkpoint["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path.name}: 'model_state' is not a dict of tensors")
    broken = [name for name, value in state.items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        raise ValueError(f"{path.name} holds weights that are not finite (NaN or infinity) in "
                         f"{len(broken)} tensor(s), e.g. {broken[0]}: the run diverged; use another checkpoint")
    try:
        num_outputs, width = int(metadata.get("num_outputs", 2)), int(metadata.get("width", 64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path.name}: metadata 'num_outputs' and 'width' must be whole numbers ({err})") from err
    saved_backbone = metadata.get("backbone", "resnet18")
    if not isinstance(saved_backbone, str):
        raise ValueError(f"{path.name}: metadata 'backbone' must be a name, got {saved_backbone!r}")
    if saved_backbone not in backbones.BACKBONES:
        raise ValueError(f"{path.name} holds a {saved_backbone!r} model, which this course cannot build; "
                         f"known backbones: {', '.join(sorted(backbones.BACKBONES))}")
    if backbone is not None and backbone != saved_backbone:
        raise ValueError(f"{path.name} holds a {saved_backbone} model, not a {backbone} one")
    model = build_regressor(saved_backbone, "random", num_outputs=num_outputs, width=width, verbose=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path.name} is not a checkpoint of this course's {saved_backbone} regressor: "
                         f"{str(err).splitlines()[0]}") from err
    model.eval()
    if verbose:
        mae = metadata.get("val_mae_deg")
        mae_text = f"{mae:.2f}°" if isinstance(mae, (int, float)) else "not recorded"
        print(f"loaded {path.name}: {saved_backbone}, epoch {metadata.get('epoch')}, validation MAE {mae_text}")
    return model, metadata


def _why_unreadable(path: Path, err: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words: never PyTorch's advice to
    load with ``weights_only=False`` (which would run whatever code the file holds)."""
    import zipfile

    if isinstance(err, OSError) and err.errno is not None:
        return f"it cannot be read ({err.strerror})"
    if not zipfile.is_zipfile(path):
        return ("it is not a PyTorch file (a checkpoint is a zip archive written by torch.save; this one is "
                "truncated, damaged, or another kind of file)")
    text = str(err)
    if "weights_only" in text or "Unsupported global" in text or "WeightsUnpickler" in text:
        return ("it holds Python objects other than tensors and plain values, which are not loaded because "
                "loading them could run code; a checkpoint of this course holds none")
    return f"it is damaged ({text.strip().splitlines()[0] if text.strip() else err.__class__.__name__})"


def prediction_settings(metadata: dict, name: str = "the checkpoint") -> tuple[str, int, int]:
    """How to read a checkpoint's network, from its metadata, checked against the network:
    ``(head, bins, image_size)``: the head (:data:`rotation_utils.heads.HEADS`, default
    ``cos_sin_mse``), its bins (default 72) and the input size in pixels (``image_size``, else
    the profile's, else 224).

    name: the file's name, for the messages. Raises ValueError, naming the file, for metadata
    that contradict the weights or cannot be right: an unknown head, bins that are not a whole
    number ≥ 2, a head that needs another number of outputs than the network has
    (``num_outputs``, as :func:`load_checkpoint` built it), an input size outside 32–4096
    pixels, or a ``max_angle_deg`` outside (0, 180] degrees; straighten, export and evaluate
    call it before they use the network, so such a file is one error line, never a crash.
    """
    from . import heads

    profile = metadata.get("profile") or {}
    if not isinstance(profile, dict):
        raise ValueError(f"{name}: its metadata 'profile' is a {type(profile).__name__}, not a dict; "
                         "the file is damaged or was not written by this course")
    head = metadata.get("head", "cos_sin_mse")
    if not isinstance(head, str) or head not in heads.HEADS:
        raise ValueError(f"{name}: its metadata names the head {head!r}, which is not one of the course's "
                         f"({', '.join(heads.HEADS)}); the file is damaged or was not written by this course")
    bins = metadata.get("bins", 72)
    if isinstance(bins, bool) or not isinstance(bins, (int, float)) or bins != int(bins) or bins < 2:
        raise ValueError(f"{name}: its metadata gives {bins!r} bins; a head needs a whole number of at least 2 "
                         "(the file is damaged or was not written by this course)")
    bins = int(bins)
    outputs = metadata.get("num_outputs", 2)
    needed = heads.num_outputs(head, bins)
    if outputs != needed:
        raise ValueError(f"{name}: its metadata says the {head} head" + (f" with {bins} bins" if head == "bins_expected"
                         else "") + f", which needs {needed} outputs, but its network has {outputs}: the metadata "
                         "contradicts the weights (the file was edited or damaged)")
    size = metadata.get("image_size") or profile.get("image_size") or 224
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size != int(size) or int(size) not in IMAGE_SIZES:
        raise ValueError(f"{name}: its metadata gives an input size of {size!r} pixels; a course network reads "
                         f"a whole number from {IMAGE_SIZES.start} to {IMAGE_SIZES.stop - 1} (the file is damaged "
                         "or was not written by this course)")
    within = profile.get("max_angle_deg")
    if within is not None and (isinstance(within, bool) or not isinstance(within, (int, float))
                               or not 0 < within <= 180):
        raise ValueError(f"{name}: its metadata says it was trained within ±{within!r}°, not a number of degrees "
                         "in (0, 180] (the file is damaged or was not written by this course)")
    return head, bins, int(size)


def half_precision_copy(source, target, overwrite: bool = False) -> Path:
    """Write a copy of a course checkpoint with its floating-point tensors in float16: half the
    size (EfficientNet-Lite0: about 7 MB instead of 14), for shipping a reference model.

    source: a checkpoint of :func:`save_checkpoint` (read with ``weights_only=True``).
    target: the new file (``metadata["precision"]`` says ``"float16"``); the optimiser state
    is dropped. :func:`load_checkpoint` loads it into a float32 model.
    Returns the target's path. Raises FileNotFoundError, ValueError (not a course checkpoint)
    and :class:`CheckpointExistsError` (target exists and ``overwrite`` is False).
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(f"no checkpoint at {source}")
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        raise ValueError(f"{source.name} is not a checkpoint of this course (no 'model_state')")
    if target.exists() and not overwrite:
        raise CheckpointExistsError(f"{target.name} already exists; pass overwrite=True to replace it")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in checkpoint["model_state"].items()}
    metadata = {**checkpoint.get("metadata", {}), "precision": "float16"}
    return save_torch_atomically(target, {"model_state": state, "metadata": metadata})


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside DDP (``.module``), an EMA (``.module``) or ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
