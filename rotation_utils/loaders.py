"""Loaders of the course: photos rotated on the fly for training, seeded rotations for validation.

Taught in notebook 04. The split is by photo, never by rotated copy; validation rotates each
held-out photo by :data:`rotation_utils.evaluation.VAL_ROTATIONS` seeded angles with the
``crop`` border, the protocol of ``rotation-course evaluate``. Under ``torchrun`` the training
loader gives each process its own share of every epoch (``DistributedSampler``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .evaluation import VAL_ROTATIONS

__all__ = ["photo_cache_side", "training_loader", "make_loaders", "validation_loader", "course_loaders"]


def photo_cache_side(profile) -> int | None:
    """Short side, pixels, at which photos are cached in memory (None: no cache, workers read
    the files). 1.5× the input side keeps the network's full resolution in the largest square
    inside a photo rotated by 45°, at half the cost of rotating a 2× copy."""
    return int(round(1.5 * profile.image_size)) if profile.num_workers == 0 else None


def training_loader(train_paths, profile, border: str = "crop", seed: int = 0, device=None):
    """Photos rotated on the fly with fresh angles each epoch, batches of ``profile.batch_size``
    per process; items (images (N, 3, S, S), targets (N, 2) = (cos θ, sin θ), θ in degrees).

    Two pipelines. By default a DataLoader of
    :class:`rotation_utils.datasets.OnTheFlyRotationDataset`, which rotates each photo in the
    loader (on a CPU with no workers the photos are decoded once and cached at 1.5× the input
    size). With ``profile.batched_rotation`` (the GPU profiles) the workers only decode the
    upright photos at reduced size and ``device`` (default: the training device) rotates,
    crops and flips the whole batch at once
    (:class:`rotation_utils.batched_rotation.BatchedRotationLoader`). Workers are kept alive
    between epochs and batches go to pinned memory when a GPU is there. Under ``torchrun`` a
    ``DistributedSampler`` (shuffled from ``seed``, ``set_epoch`` each epoch) gives each
    process its own share; else a shuffle drawn from the loader's own ``generator`` (seeded
    with ``seed``), whose state a resumed run restores.
    Raises ValueError for a border the pipeline cannot draw.
    """
    from torch.utils.data import DataLoader, WeightedRandomSampler
    from torch.utils.data.distributed import DistributedSampler

    from . import distributed
    from .datasets import OnTheFlyRotationDataset, collection_balancing_weights
    from .precision import default_device

    if profile.batched_rotation:
        from .batched_rotation import UprightPhotoCanvas

        train_set = UprightPhotoCanvas(train_paths, int(round(1.5 * profile.image_size)), repeats=profile.train_repeats,
                                       augment=profile.augment)
    else:
        cache = photo_cache_side(profile)
        train_set = OnTheFlyRotationDataset(train_paths, profile.image_size, border=border,
                                            repeats=profile.train_repeats, hflip=profile.hflip,
                                            cache_short_side=cache, min_scale=profile.min_scale,
                                            max_angle_deg=profile.max_angle_deg, augment=profile.augment)
    batch_size = profile.batch_size or 64
    ctx = distributed.context()
    generator = torch.Generator().manual_seed(seed)
    if profile.balance_collections and ctx.enabled:
        raise ValueError("balance_collections is not available under torchrun (DistributedSampler draws "
                         "every photo equally often)")
    if ctx.enabled:
        sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=seed, drop_last=len(train_set) >= 2 * ctx.world_size)
    elif profile.balance_collections:  # as many draws per epoch as photos, each collection equally often
        weights = collection_balancing_weights(train_paths).repeat(profile.train_repeats)
        sampler = WeightedRandomSampler(weights, num_samples=len(train_set), replacement=True, generator=generator)
    else:
        sampler = None
    per_process = len(train_set) // ctx.world_size
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=per_process > batch_size, num_workers=profile.num_workers,
                        generator=generator,
                        persistent_workers=profile.num_workers > 0,
                        pin_memory=profile.num_workers > 0 and torch.cuda.is_available())
    if not profile.batched_rotation:
        return loader
    from .batched_rotation import BatchedRotationLoader

    if device is None:
        device = default_device()
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
    return BatchedRotationLoader(loader, profile.image_size, device, border=border, min_scale=profile.min_scale,
                                 max_angle_deg=profile.max_angle_deg,
                                 hflip=profile.hflip)


def make_loaders(train_paths, val_paths, profile, val_rotations: int = VAL_ROTATIONS, seed: int = 0,
                 border: str = "crop", device=None):
    """DataLoaders of the course: photos rotated on the fly with fresh angles each epoch for
    training, and each validation photo rotated by ``val_rotations`` seeded angles with the
    ``crop`` border (no border pixels remain) for validation — the protocol of
    ``rotation-course evaluate`` (:func:`rotation_utils.evaluation.evaluate_folder`).

    train_paths / val_paths: photo files (split by photo, never by rotated copy).
    profile: image size, batch size, repeats, flips and workers come from it; on a CPU with
    ``num_workers == 0`` the photos are decoded once and cached at 1.5× the input size.
    border: the training border strategy (validation always uses ``crop``). device: where a
    batched pipeline rotates (see :func:`training_loader`).
    Returns (train_loader, val_loader). Raises ValueError if a photo is on both sides.
    """
    overlap = {str(Path(p).resolve()) for p in train_paths} & {str(Path(p).resolve()) for p in val_paths}
    if overlap:
        raise ValueError(f"{len(overlap)} photo(s) are in both training and validation, "
                         f"e.g. {sorted(overlap)[0]}: split by photo")
    return (training_loader(train_paths, profile, border, seed, device),
            validation_loader(val_paths, profile, val_rotations, seed))


def validation_loader(val_paths, profile, val_rotations: int = VAL_ROTATIONS, seed: int = 0,
                      image_size: int | None = None):
    """The validation loader of :func:`make_loaders` alone: each photo of ``val_paths`` rotated by
    ``val_rotations`` angles drawn from ``seed`` (degrees), border ``crop``, the centred square
    resized to ``image_size`` pixels (default: the profile's; pass a checkpoint's own size).

    Notebooks 05 and 06 measure a saved model with it. Its dataset is a
    :class:`rotation_utils.datasets.FixedRotationDataset` (``paths``, ``samples``).
    Raises ValueError for no photos or fewer than one rotation.
    """
    from torch.utils.data import DataLoader

    from .datasets import FixedRotationDataset

    size = image_size or profile.image_size
    cache = photo_cache_side(dataclasses.replace(profile, image_size=size))
    val_set = FixedRotationDataset(val_paths, size, rotations=val_rotations, seed=seed, border="crop",
                                   cache_short_side=cache, max_angle_deg=profile.max_angle_deg)
    return DataLoader(val_set, batch_size=2 * (profile.batch_size or 64), shuffle=False,
                      num_workers=profile.num_workers, persistent_workers=profile.num_workers > 0,
                      pin_memory=profile.num_workers > 0 and torch.cuda.is_available())


def course_loaders(profile, dataset, seed: int = 0):
    """The loaders of notebook 04 from the course's FiftyOne dataset: the *photos* tagged
    ``train`` rotated on the fly (fresh angles each epoch, the profile's border), and the
    photos tagged ``val``, each rotated by :data:`VAL_ROTATIONS` seeded angles with the
    ``crop`` border — the same protocol as ``rotation-course evaluate`` on those photos.

    Returns (train_loader, val_loader, train_photo_paths). The validation dataset's
    ``paths`` are the validation photos, sorted.
    """
    train_paths = sorted(set(dataset.match_tags("train").values("source_filepath")))
    val_paths = sorted(set(dataset.match_tags("val").values("source_filepath")))
    border = profile.border if profile.border != "alpha_mask" else "crop"
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, seed=seed, border=border)
    return train_loader, val_loader, train_paths
