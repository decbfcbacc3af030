"""Rotated digits: the small experiment of notebook 02 (when angle regression goes wrong).

Loading digits (MNIST IDX files, or scikit-learn's 8×8 digits offline), a rotated-digits
dataset, a small CNN with a ``tanh`` head or a linear head, the two losses, a short training
loop and predictions in degrees. Taught in notebook 02; angles are degrees, counter-clockwise.

Source of the experiment: "[D] Learning the rotation of 2d images with a CNN",
r/MachineLearning, June 2019: the Keras MNIST CNN with a 2-unit ``tanh`` output trained with
``cosine_proximity`` on rotated "3"s predicts almost only x, y ∈ {−1, 0, 1}, i.e. angles that
are multiples of 45°. The fix, a linear (cos θ, sin θ) head trained with MSE, follows
Beyer et al., "Biternion Nets", GCPR 2015.

Reproducing the collapse needs large early steps: notebook 02 trains the ``tanh`` head with SGD
(momentum 0.9, learning rate 0.3); with Adam at 1e-3 it did not collapse in short CPU runs.
"""
from __future__ import annotations

import gzip
import os
import struct
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from . import angles
from .config import PROJECT_ROOT, display_path

__all__ = [
    "MNIST_ENV",
    "DigitImages",
    "read_idx",
    "load_mnist_idx",
    "load_sklearn_digits",
    "load_digit_images",
    "RotatedDigits",
    "make_rotated_splits",
    "RotationCNN",
    "cosine_proximity_loss",
    "cos_sin_mse_loss",
    "LOSSES",
    "train_rotation_cnn",
    "predict_outputs",
    "predict_angles_deg",
    "share_near_multiples_deg",
    "plot_predicted_angle_histogram",
]

#: Environment variable naming a folder with the MNIST IDX files.
MNIST_ENV = "ROTATION_COURSE_MNIST"

# IDX type codes (LeCun's format description): code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


class DigitImages(NamedTuple):
    """Digit images and where they came from.

    images: (N, 28, 28) float32 in [0, 1], white digit on black. labels: (N,) int64 digit classes.
    source: one line saying which source was used and why.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str


# --------------------------------------------------------------------------- loading

def read_idx(path) -> np.ndarray:
    """One IDX file (``.gz`` or plain) as a NumPy array, the format MNIST ships in.

    path: a file ``*-ubyte`` or ``*-ubyte.gz``.
    Returns an array of the file's shape, e.g. (N, 28, 28) uint8 for images, (N,) for labels.
    Raises FileNotFoundError if the file does not exist; ValueError if it is not a valid IDX
    file (bad magic number, unknown type code, truncated or over-long data, broken gzip).
    Source: the IDX format of LeCun, Cortes & Burges, "The MNIST database".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {display_path(path)}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path.name} is not a readable IDX file: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path.name} is not an IDX file: its first two bytes must be zero")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path.name}: unknown IDX type code 0x{type_code:02X}")
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_len:
        raise ValueError(f"{path.name}: IDX header is truncated or has no dimensions")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(raw) - header_len
    if got != expected:
        raise ValueError(f"{path.name}: header promises shape {shape} ({expected} bytes of data) "
                         f"but the file holds {got} bytes; is it truncated?")
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{display_path(folder)} has no {stem}.gz (or {stem}); "
                            "it should hold the MNIST IDX files")


def load_mnist_idx(folder, split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels from the IDX files in a folder.

    folder: holds ``{split}-images-idx3-ubyte.gz`` and ``{split}-labels-idx1-ubyte.gz``
    (uncompressed files are accepted too); split: ``"t10k"`` (test, 10,000) or ``"train"``.
    Returns images (N, 28, 28) uint8 and labels (N,) int64.
    Raises FileNotFoundError for a missing folder or file, ValueError for a malformed file or
    images and labels that do not match.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {display_path(folder)}")
    images = read_idx(_find_idx(folder, f"{split}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(folder, f"{split}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"expected images (N, H, W) and labels (N,), got {images.shape} and "
                         f"{labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return images.astype(np.uint8), labels.astype(np.int64)


def load_sklearn_digits(size: int = 28, box: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits, upsampled and centred the MNIST way (ships offline).

    size: side of the output, pixels; box: side of the digit's box inside it (MNIST: 20 in 28).
    Returns images (N, size, size) float32 in [0, 1] and labels (N,) int64.
    Source: UCI "Optical Recognition of Handwritten Digits" via ``sklearn.datasets.load_digits``.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    small = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    big = nnf.interpolate(small, size=(box, box), mode="bilinear", align_corners=False)
    pad = (size - box) // 2
    big = nnf.pad(big, (pad, size - box - pad, pad, size - box - pad))
    return big.squeeze(1).clamp(0, 1).numpy(), bunch.target.astype(np.int64)


def _resolve_folder(folder) -> Path:
    """A relative folder is looked up from the current folder, then from the project root
    (a notebook's kernel runs in ``notebooks/`` while the variable is often set from the root)."""
    path = Path(folder).expanduser()
    if path.is_absolute() or path.is_dir() or not (PROJECT_ROOT / path).is_dir():
        return path
    return PROJECT_ROOT / path


def load_digit_images(folder=None, digits=None, max_images: int | None = None,
                      verbose: bool = True) -> DigitImages:
    """Digit images from MNIST if a folder is given, else scikit-learn's digits; says which.

    folder: MNIST IDX folder; None reads ``ROTATION_COURSE_MNIST``; when both are missing the
    offline scikit-learn digits are used. A relative folder is looked up from the current
    folder, then from the project root. digits: keep only these classes, e.g. ``(3,)`` as in
    the original experiment (None: all). max_images: keep the first so many after filtering.
    Returns :class:`DigitImages` with images (N, 28, 28) float32 in [0, 1]; prints its source.
    Raises FileNotFoundError if a folder is named (argument or variable) but missing: a typo is
    never silently replaced by the fallback; ValueError if no image is left after filtering.
    """
    reason = "folder= argument"
    if folder is None and os.environ.get(MNIST_ENV, "").strip():
        folder, reason = os.environ[MNIST_ENV].strip(), f"{MNIST_ENV} is set"
    if folder is not None:
        folder = _resolve_folder(folder)
        try:
            images_u8, labels = load_mnist_idx(folder)
        except FileNotFoundError as err:
            hint = (f"Unset {MNIST_ENV}" if reason != "folder= argument" else "Pass folder=None")
            raise FileNotFoundError(f"{err} (from the {reason}). {hint} to use the offline "
                                    "scikit-learn digits instead.") from err
        images = images_u8.astype(np.float32) / 255.0
        source = f"MNIST test set ({len(images):,} images) from {display_path(folder)} ({reason})"
    else:
        images, labels = load_sklearn_digits()
        source = (f"scikit-learn 8x8 digits upsampled to 28x28 ({len(images):,} images), "
                  f"because {MNIST_ENV} is not set and no folder= was given")
    if digits is not None:
        keep = np.isin(labels, np.asarray(list(digits)))
        images, labels = images[keep], labels[keep]
        source += f"; kept digits {sorted(set(int(d) for d in digits))}: {len(images):,} images"
    if max_images is not None:
        images, labels = images[:max_images], labels[:max_images]
    if len(images) == 0:
        raise ValueError(f"no images left after filtering digits={digits}")
    if verbose:
        print(f"digits: {source}")
    return DigitImages(np.ascontiguousarray(images, dtype=np.float32), labels, source)


# --------------------------------------------------------------------------- dataset

class RotatedDigits(torch.utils.data.Dataset):
    """Copies of digit images rotated by random angles, with the angles as labels.

    images: (N, H, W) float in [0, 1]; copies_per_image: rotated copies of each image, each
    with its own angle drawn uniformly from [0, 360) degrees; seed fixes the angles.
    Items are ``(image (1, H, W) float32, angle_deg float32 scalar)``. Attributes: ``images``
    (M, 1, H, W), ``angles_deg`` (M,) degrees counter-clockwise, ``source_index`` (M,) the row
    of the original image. Rotation: ``torchvision.transforms.v2.functional.rotate``, bilinear,
    black corners (the digits sit in a 20-pixel box, so nothing is cut off).
    """

    def __init__(self, images, copies_per_image: int = 4, seed: int = 0):
        base = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        if base.ndim != 3:
            raise ValueError(f"images must be (N, H, W), got {tuple(base.shape)}")
        if copies_per_image < 1:
            raise ValueError("copies_per_image must be at least 1")
        from torchvision.transforms.v2 import functional as F

        generator = torch.Generator().manual_seed(seed)
        n = len(base)
        self.source_index = torch.arange(n).repeat_interleave(copies_per_image)
        self.angles_deg = torch.rand(len(self.source_index), generator=generator) * 360.0
        self.images = torch.stack([
            F.rotate(base[i].unsqueeze(0), float(a), interpolation=F.InterpolationMode.BILINEAR)
            for i, a in zip(self.source_index.tolist(), self.angles_deg.tolist())])

    def __len__(self) -> int:
        return len(self.angles_deg)

    def __getitem__(self, index):
        return self.images[index], self.angles_deg[index]


def make_rotated_splits(images, val_fraction: float = 0.2, copies_train: int = 4,
                        copies_val: int = 2, seed: int = 0):
    """Train and validation :class:`RotatedDigits`, split by source image.

    images: (N, H, W) in [0, 1]; val_fraction: share of source images held out. The same
    digit never appears in both splits, however many rotated copies are made of it.
    Returns (train, val). Raises ValueError if either split would be empty.
    """
    n = len(images)
    n_val = int(round(val_fraction * n))
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction={val_fraction} leaves an empty split of {n} images")
    order = np.random.default_rng(seed).permutation(n)
    images = np.asarray(images)
    train = RotatedDigits(images[order[n_val:]], copies_train, seed=seed)
    val = RotatedDigits(images[order[:n_val]], copies_val, seed=seed + 1)
    return train, val


# --------------------------------------------------------------------------- model and losses

class RotationCNN(nn.Module):
    """A small CNN for 28×28 digits with a 2-unit (x, y) output read as (cos θ, sin θ).

    head: ``"tanh"`` (the broken variant of the original experiment: outputs squashed into
    [−1, 1]²) or ``"linear"`` (the fix: no squashing). width: channels of the first
    convolution; hidden: units of the dense layer; seed: fixes the initial weights (None: use
    the global generator). Input (N, 1, 28, 28); output (N, 2); decode with
    :func:`rotation_utils.angles.decode_angle_deg`.
    Source: a scaled-down Keras ``mnist_cnn`` example (two 3×3 convolutions, max pooling, one
    dense layer), as in the r/MachineLearning experiment, with batch normalisation after each
    layer so that large learning rates do not kill the ReLU features.
    """

    def __init__(self, head: str = "linear", width: int = 16, hidden: int = 64,
                 seed: int | None = 0):
        super().__init__()
        if head not in ("tanh", "linear"):
            raise ValueError(f"head must be 'tanh' or 'linear', got {head!r}")
        if seed is not None:
            torch.manual_seed(seed)
        self.head_kind = head
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),                                                       # 14×14
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(), nn.MaxPool2d(2),                                            # 7×7
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
        )
        self.head = nn.Linear(hidden, 2)
        self.squash = nn.Tanh() if head == "tanh" else nn.Identity()

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output before ``tanh`` (N, 2): large values mean saturated units."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.squash(self.pre_activation(x))


def cosine_proximity_loss(outputs: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Keras' ``cosine_proximity``: minus the cosine between output and (cos θ, sin θ), averaged.

    outputs: (N, 2); angle_deg: (N,) degrees. Returns a scalar in [−1, 1].
    Scale-invariant: multiplying an output by any c > 0 leaves the loss unchanged, so nothing
    pulls the outputs onto the unit circle.
    """
    return -nnf.cosine_similarity(outputs, angles.encode_angle_deg(angle_deg), dim=1).mean()


def cos_sin_mse_loss(outputs: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """Mean squared error between outputs and the (cos θ, sin θ) targets.

    outputs: (N, 2); angle_deg: (N,) degrees. Returns a scalar ≥ 0 (sum over the two columns,
    mean over the batch). Source: Beyer et al., "Biternion Nets", GCPR 2015.
    """
    return ((outputs - angles.encode_angle_deg(angle_deg)) ** 2).sum(dim=1).mean()


LOSSES = {"cosine_proximity": cosine_proximity_loss, "mse": cos_sin_mse_loss}
"""The losses :func:`train_rotation_cnn` knows, by name."""


# --------------------------------------------------------------------------- training

def train_rotation_cnn(model: nn.Module, dataset, loss: str = "mse", epochs: int = 3,
                       lr: float = 1e-3, batch_size: int = 64, optimizer: str = "adam",
                       momentum: float = 0.9, seed: int = 0, progress: bool = True) -> dict:
    """Train a rotation CNN in a plain PyTorch loop; returns the loss history.

    dataset: yields (image (1, H, W), angle_deg in degrees); loss: a key of :data:`LOSSES`
    (``"mse"`` or ``"cosine_proximity"``); optimizer: ``"adam"`` or ``"sgd"`` (with
    ``momentum``); lr: learning rate per step; seed fixes the order of the batches.
    Shows a tqdm bar per epoch (``leave=False``) unless ``progress=False``.
    Returns ``{"loss": [mean loss per epoch], "seconds": wall time in seconds}``; the model is
    left in eval mode. Raises ValueError for an unknown loss or optimizer.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    from tqdm.auto import tqdm

    loss_fn = LOSSES[loss]
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))
    # Saturated tanh units give subnormal numbers, which slow CPUs down many times over.
    flushing = torch.set_flush_denormal(True)
    history, start = {"loss": []}, time.perf_counter()
    try:
        model.train()
        for epoch in range(epochs):
            total, count = 0.0, 0
            for images, angle_deg in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}",
                                          leave=False, disable=not progress):
                opt.zero_grad()
                batch_loss = loss_fn(model(images), angle_deg)
                batch_loss.backward()
                opt.step()
                total += batch_loss.item() * len(images)
                count += len(images)
            history["loss"].append(total / count)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        model.eval()
    history["seconds"] = time.perf_counter() - start
    return history


@torch.no_grad()
def predict_outputs(model: nn.Module, data, batch_size: int = 512) -> np.ndarray:
    """The model's raw 2-unit outputs, (N, 2) float32, for a dataset or an (N, 1, H, W) tensor."""
    model.eval()
    images = data.images if isinstance(data, RotatedDigits) else torch.as_tensor(data)
    return torch.cat([model(images[i:i + batch_size])
                      for i in range(0, len(images), batch_size)]).numpy()


def predict_angles_deg(model: nn.Module, data, batch_size: int = 512) -> np.ndarray:
    """Predicted angles in degrees in [0, 360), (N,), decoded from the outputs with atan2.

    data: a :class:`RotatedDigits` or an (N, 1, H, W) tensor.
    """
    return angles.decode_angle_deg(predict_outputs(model, data, batch_size))


def share_near_multiples_deg(angle_deg, step_deg: float = 45.0, tol_deg: float = 3.0) -> float:
    """Share in [0, 1] of angles within ``tol_deg`` of a multiple of ``step_deg`` (degrees).

    The collapse detector of notebook 02: uniform angles give ``2 * tol_deg / step_deg``
    (about 0.13 for 45° and 3°); a collapsed ``tanh`` head gives nearly 1.
    """
    a = np.asarray(angle_deg, dtype=np.float64)
    if a.size == 0:
        raise ValueError("share_near_multiples_deg needs at least one angle")
    off = np.mod(a, step_deg)
    return float(np.mean(np.minimum(off, step_deg - off) <= tol_deg))


def plot_predicted_angle_histogram(predicted_deg, ax=None, title: str = "Predicted angles",
                                   bins: int = 72, color: str = "C0"):
    """Histogram of predicted angles in degrees with the multiples of 45° marked.

    predicted_deg: (N,) degrees in [0, 360). Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.hist(np.asarray(predicted_deg), bins=bins, range=(0, 360), color=color)
    for m in range(0, 361, 45):
        ax.axvline(m, color="0.6", lw=0.6, ls=":", zorder=0)
    ax.set_xticks(range(0, 361, 45))
    ax.set_xlim(0, 360)
    ax.set_xlabel("predicted angle (degrees)")
    ax.set_ylabel("number of test images")
    ax.set_title(title)
    return ax
