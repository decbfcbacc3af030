"""The training loop of the reference, short enough to read in notebook 04.

The reference's recipe: Adam (lr 1e-3, weight decay 1e-4), a step schedule, gradient clipping at
1.0, early stopping on validation MAE, batch size probed against GPU memory, mixed precision on a
GPU, tqdm progress, checkpoints (``best.pt``, ``last.pt``) and ``training_summary.json``. The
quick profile swaps in AdamW, a warm-up and a cosine decay to its time budget, and an EMA of the
weights (``profiles``). Validation uses :func:`rotation_utils.evaluation.evaluate_loader`;
evaluation imports nothing from here.
Source: the reference result's recipe (ResNet18, 30k COCO-2017 photos × 6 rotations:
validation MAE 4.57°, median 1.74°, 88.1% within 5°).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm


from .backbones import BACKBONES
from .evaluation import VAL_ROTATIONS, evaluate_loader  # noqa: F401 - VAL_ROTATIONS also public here
from .models import CheckpointExistsError, _unwrap, save_checkpoint
from .precision import autocast_dtype, cpu_supports_bf16, default_device  # noqa: F401 - also public here

__all__ = ["default_device", "autocast_dtype", "probe_batch_size", "train_one_epoch", "fit",
           "make_optimizer", "VAL_ROTATIONS", "make_loaders", "validation_loader", "train_on_photos",
           "course_loaders", "ensure_course_checkpoint", "photo_cache_side"]


def probe_batch_size(model: nn.Module, image_size: int, device=None, start: int = 512,
                     minimum: int = 8, cpu_default: int = 64) -> int:
    """Largest batch size (halving from ``start``) whose forward and backward pass fits in GPU
    memory, with a 25% margin for the optimiser; on a CPU returns ``cpu_default``.

    image_size: input side in pixels. Raises RuntimeError if even ``minimum`` does not fit.
    """
    device = torch.device(device) if device is not None else default_device()
    if device.type != "cuda":
        return cpu_default
    model = model.to(device).train()
    batch = start
    while batch >= minimum:
        try:
            x = torch.randn(batch, 3, image_size, image_size, device=device)
            with torch.autocast("cuda", dtype=autocast_dtype(device)):
                model(x).float().pow(2).mean().backward()
            model.zero_grad(set_to_none=True)
            del x
            torch.cuda.empty_cache()
            return max(minimum, int(batch * 0.75) // 8 * 8)
        except torch.cuda.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batch //= 2
    raise RuntimeError(f"not even a batch of {minimum} images of {image_size} px fits on {device}")


def train_one_epoch(model, loader, optimizer, device, grad_clip: float = 1.0,
                    deadline: float | None = None, progress: bool = True, desc: str = "train",
                    ema=None, cpu_bf16: bool = False, lr_at=None, channels_last: bool = False) -> dict:
    """One pass over ``loader`` minimising the MSE between outputs (N, 2) and (cos θ, sin θ).

    deadline: a ``time.monotonic()`` value after which the epoch stops early.
    ema: a ``torch.optim.swa_utils.AveragedModel`` updated after every step, or None.
    cpu_bf16: bfloat16 autocast on a CPU with native support (see :func:`autocast_dtype`).
    lr_at: a function of no argument giving the learning rate of the next step (a schedule
    per step), or None to leave the optimiser's rate alone.
    channels_last: feed the images in channels-last memory format (the model should be too).
    Returns {"loss": mean loss, "samples": images seen, "stopped_early": bool}.
    Mixed precision on CUDA (:func:`autocast_dtype`); on the CPU float32 unless ``cpu_bf16``.
    """
    model.train()
    amp_dtype = autocast_dtype(device, cpu_bf16)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    total, seen, stopped = 0.0, 0, False
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for images, targets, _ in bar:
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at() * group.get("lr_scale", 1.0)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs = model(images)
        loss = nn.functional.mse_loss(outputs.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update_parameters(model)
        total += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total / seen:.4f}")
        if deadline is not None and time.monotonic() > deadline:
            stopped = True
            break
    return {"loss": total / max(seen, 1), "samples": seen, "stopped_early": stopped}


def fit(model, train_loader, val_loader, profile, out_dir, device=None, overwrite: bool = False,
        progress: bool = True, extra_metadata: dict | None = None) -> dict:
    """Train with the profile's recipe, keep the best model by validation MAE, write files.

    model: outputs (N, 2) read as (cos θ, sin θ). train_loader / val_loader: yield
    (images, targets (N, 2), angles in degrees (N,)). profile: a
    :class:`rotation_utils.profiles.Profile` (epochs, lr, weight decay, step schedule,
    patience, gradient clipping, time budget in seconds). out_dir: gets ``best.pt`` (best
    validation MAE), ``last.pt`` and ``training_summary.json``.
    Returns the summary dict (also written as JSON): history per epoch, best epoch,
    validation metrics of the best model (degrees), training time in seconds.
    The learning rate follows the profile's ``lr_schedule``: ``"step"`` (StepLR, the
    reference's) or ``"cosine"`` (to zero at the end of the time budget, or of the epochs),
    the cosine one after a linear warm-up of ``warmup_steps`` steps; the backbone learns at
    ``lr × backbone_lr_factor``, the head at ``lr``. The time budget counts training only:
    the clock stops while the model is validated. With ``profile.tta`` the validation averages
    over the four 90° turns of each input (:func:`rotation_utils.evaluation.predict`).
    Raises :class:`rotation_utils.models.CheckpointExistsError` before training if
    ``out_dir/best.pt`` exists and ``overwrite`` is False, ValueError for an unknown schedule.
    """
    if profile.lr_schedule not in ("step", "cosine"):
        raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {profile.lr_schedule!r}")
    if profile.warmup_steps and profile.lr_schedule != "cosine":
        raise ValueError("warmup_steps needs lr_schedule='cosine'")
    out_dir = Path(out_dir)
    best_path = out_dir / "best.pt"
    if best_path.exists() and not overwrite:
        raise CheckpointExistsError(f"{best_path.name} already exists in that run folder; pass "
                                    "overwrite=True (or --overwrite) or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device) if device is not None else default_device()
    model = model.to(device)
    if profile.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, profile)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=profile.lr_step_epochs,
                                                 gamma=profile.lr_gamma)
                 if profile.lr_schedule == "step" else None)
    # An exponential moving average of the weights smooths the noise of short, small-batch
    # training (Polyak & Juditsky 1992); validation and checkpoints then use the average.
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(profile.ema_decay), use_buffers=True)
        if profile.ema_decay else None)
    evaluated = ema.module if ema is not None else model
    start = time.monotonic()
    paused = {"seconds": 0.0}  # time spent validating, not counted in the budget

    def training_seconds() -> float:
        return time.monotonic() - start - paused["seconds"]

    lr_at = (_cosine_lr(profile, start, len(train_loader), paused=lambda: paused["seconds"])
             if scheduler is None else None)
    history, best_mae, best_epoch, waited, best_val = [], math.inf, 0, 0, None
    metadata = {"image_size": profile.image_size, "num_outputs": 2, "profile": profile.to_dict(),
                "backbone": _backbone_or_none(model), "width": _resnet_width(model, profile.width),
                "train_border": getattr(train_loader.dataset, "border", None), **(extra_metadata or {})}

    for epoch in range(1, profile.epochs + 1):
        epoch_start = time.monotonic()
        deadline = (epoch_start + profile.time_budget_s - training_seconds()) if profile.time_budget_s else None
        stats = train_one_epoch(model, train_loader, optimizer, device, profile.grad_clip,
                                deadline, progress, desc=f"epoch {epoch}/{profile.epochs}", ema=ema,
                                cpu_bf16=profile.cpu_bf16, lr_at=lr_at, channels_last=profile.channels_last)
        val_start = time.monotonic()
        val = evaluate_loader(evaluated, val_loader, device, progress=False, cpu_bf16=profile.cpu_bf16,
                              tta=profile.tta)
        paused["seconds"] += time.monotonic() - val_start
        if scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "train_loss": stats["loss"], "val_loss": val["loss"],
               "val_mae_deg": val["summary"]["mae_deg"], "val_median_deg": val["summary"]["median_deg"],
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.monotonic() - epoch_start}
        history.append(row)
        if row["val_mae_deg"] < best_mae:
            best_mae, best_epoch, waited, best_val = row["val_mae_deg"], epoch, 0, val["summary"]
            save_checkpoint(best_path, evaluated, {**metadata, "epoch": epoch, "val_mae_deg": best_mae,
                                               "val": val["summary"]}, overwrite=True)
        else:
            waited += 1
        if progress:
            print(f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}"
                  f"  val MAE {row['val_mae_deg']:6.2f}°  median {row['val_median_deg']:6.2f}°"
                  f"  {row['seconds']:5.1f} s")
        if stats["stopped_early"] or (profile.time_budget_s and training_seconds() > profile.time_budget_s):
            stop_reason = f"time budget of {profile.time_budget_s:.0f} s reached"
            break
        if waited >= profile.patience:
            stop_reason = f"early stopping: no better validation MAE for {profile.patience} epochs"
            break
    else:
        stop_reason = f"all {profile.epochs} epochs done"

    save_checkpoint(out_dir / "last.pt", evaluated, {**metadata, "epoch": history[-1]["epoch"],
                                                 "val_mae_deg": history[-1]["val_mae_deg"]},
                    overwrite=True, optimizer_state=optimizer.state_dict())
    summary = {
        "best_epoch": best_epoch,
        "stop_reason": stop_reason,
        "train_seconds": training_seconds(),
        "val_seconds": paused["seconds"],
        "device": str(device),
        "batch_size": getattr(train_loader, "batch_size", None),
        "train_samples_per_epoch": len(train_loader.dataset),
        "val_samples": len(val_loader.dataset),
        "val": best_val,
        "history": history,
        **metadata,
    }
    (out_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))
    return summary




def make_optimizer(model: nn.Module, profile) -> torch.optim.Optimizer:
    """The profile's optimiser over the trainable parameters: ``"adam"`` (the reference: Adam,
    L2 weight decay) or ``"adamw"`` (decoupled weight decay, Loshchilov & Hutter 2019).

    Two parameter groups, the head and the rest of the network, so that the backbone can learn
    at ``lr × profile.backbone_lr_factor`` (each group's ``lr_scale``). Raises ValueError for
    another optimiser name.
    """
    if profile.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {profile.optimizer!r}")
    head_prefixes = tuple(spec.head_attr + "." for spec in BACKBONES.values())  # fc., classifier.
    head, body = [], []
    for name, param in _unwrap(model).named_parameters():
        if param.requires_grad:
            (head if name.startswith(head_prefixes) else body).append(param)
    groups = [{"params": g, "lr": profile.lr * scale, "lr_scale": scale}
              for g, scale in ((body, profile.backbone_lr_factor), (head, 1.0)) if g]
    optimizer_class = torch.optim.AdamW if profile.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=profile.lr, weight_decay=profile.weight_decay)


def _warmup_factor(profile, step: int) -> float:
    """Linear warm-up: (step + 1) / warmup_steps for the first ``warmup_steps`` steps, then 1."""
    warmup = profile.warmup_steps
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def _cosine_lr(profile, start: float, steps_per_epoch: int, paused=lambda: 0.0):
    """The learning rate of a cosine schedule (Loshchilov & Hutter 2017, SGDR, one cycle with
    no restart): ``lr · ½(1 + cos(π·p))`` where p is the share of the run already done: of
    the profile's epochs, counted in steps, or of the time budget when that share is larger
    (so the rate reaches zero when time is up, however fast or slow the machine). ``paused()``
    gives the seconds since ``start`` that do not count (validation). The first
    ``warmup_steps`` steps rise linearly to the rate instead."""
    steps = {"done": 0}
    total_steps = max(1, profile.epochs * steps_per_epoch)

    def lr_at() -> float:
        done = steps["done"] / total_steps
        if profile.time_budget_s:
            done = max(done, (time.monotonic() - start - paused()) / profile.time_budget_s)
        warm = _warmup_factor(profile, steps["done"])
        steps["done"] += 1
        return warm * profile.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, done))))

    return lr_at


def _backbone_or_none(model) -> str | None:
    """The backbone's name for :func:`models.load_checkpoint`, None for another kind of model."""
    from .models import backbone_name

    try:
        return backbone_name(model)
    except ValueError:
        return None


def _resnet_width(model, default: int) -> int:
    """Channels of a ResNet's first stage (what :func:`models.load_checkpoint` needs to
    rebuild it); ``default`` for another kind of model."""
    conv1 = getattr(_unwrap(model), "conv1", None)
    return int(conv1.out_channels) if isinstance(conv1, nn.Conv2d) else int(default)


def photo_cache_side(profile) -> int | None:
    """Short side, pixels, at which photos are cached in memory (None: no cache, workers read
    the files). 1.5× the input side keeps the network's full resolution in the largest square
    inside a photo rotated by 45°, at half the cost of rotating a 2× copy."""
    return int(round(1.5 * profile.image_size)) if profile.num_workers == 0 else None


def _train_loader(train_paths, profile, border: str = "crop", seed: int = 0):
    """Photos rotated on the fly with fresh angles each epoch; on a CPU with no workers the
    photos are decoded once and cached at 1.5× the input size."""
    from torch.utils.data import DataLoader

    from .datasets import OnTheFlyRotationDataset

    cache = photo_cache_side(profile)
    train_set = OnTheFlyRotationDataset(train_paths, profile.image_size, border=border,
                                        repeats=profile.train_repeats, hflip=profile.hflip,
                                        cache_short_side=cache, min_scale=profile.min_scale)
    batch_size = profile.batch_size or 64
    return DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                      num_workers=profile.num_workers, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=profile.num_workers > 0)


def make_loaders(train_paths, val_paths, profile, val_rotations: int = VAL_ROTATIONS, seed: int = 0,
                 border: str = "crop"):
    """DataLoaders of the course: photos rotated on the fly with fresh angles each epoch for
    training, and each validation photo rotated by ``val_rotations`` seeded angles with the
    ``crop`` border (no border pixels remain) for validation — the protocol of
    ``rotation-course evaluate`` (:func:`rotation_utils.evaluation.evaluate_folder`).

    train_paths / val_paths: photo files (split by photo, never by rotated copy).
    profile: image size, batch size, repeats, flips and workers come from it; on a CPU with
    ``num_workers == 0`` the photos are decoded once and cached at 1.5× the input size.
    border: the training border strategy (validation always uses ``crop``).
    Returns (train_loader, val_loader). Raises ValueError if a photo is on both sides.
    """
    overlap = {str(Path(p).resolve()) for p in train_paths} & {str(Path(p).resolve()) for p in val_paths}
    if overlap:
        raise ValueError(f"{len(overlap)} photo(s) are in both training and validation, "
                         f"e.g. {sorted(overlap)[0]}: split by photo")
    return _train_loader(train_paths, profile, border, seed), validation_loader(val_paths, profile,
                                                                                val_rotations, seed)


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
                                   cache_short_side=cache)
    return DataLoader(val_set, batch_size=2 * (profile.batch_size or 64), shuffle=False,
                      num_workers=profile.num_workers)


def train_on_photos(paths, profile, out_dir, val_fraction: float | None = None, seed: int = 0,
                    overwrite: bool = False, device=None, progress: bool = True) -> dict:
    """Split photos by photo, build the model and loaders, and :func:`fit` — the command
    line's ``rotation-course train`` in one call. The split is the course dataset's
    (:func:`rotation_utils.datasets.split_photos`): the notebooks hold out the same photos.

    paths: photo files. val_fraction: share of photos held out (default: the profile's).
    Returns the training summary (see :func:`fit`), with ``weights`` ("imagenet" or "random").
    Raises CheckpointExistsError (``best.pt`` exists, no overwrite), ValueError (too few photos).
    """
    from .datasets import split_photos
    from .models import regressor_for_profile

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("training needs at least 2 photos (one for validation)")
    if (Path(out_dir) / "best.pt").exists() and not overwrite:
        raise CheckpointExistsError(f"{Path(out_dir).name}/best.pt already exists; pass --overwrite "
                                    "or choose another --out folder")
    train_paths, val_paths = split_photos(paths, val_fraction or profile.val_fraction, seed)
    device = torch.device(device) if device is not None else default_device()
    model, weights = regressor_for_profile(profile)  # always says which weights it starts from
    if profile.batch_size is None:
        from dataclasses import replace
        profile = replace(profile, batch_size=probe_batch_size(model, profile.image_size, device))
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, seed=seed)
    if progress:
        print(f"training on {len(train_paths)} photos, validating on {len(val_paths)} "
              f"({len(val_loader.dataset)} rotated samples), {device}, batch {profile.batch_size}")
    return fit(model, train_loader, val_loader, profile, out_dir, device=device, overwrite=overwrite,
               progress=progress, extra_metadata={**weights, "n_train_photos": len(train_paths),
                                                  "n_val_photos": len(val_paths), "split_seed": seed})


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


def ensure_course_checkpoint(profile, photos=None, out_dir=None, progress: bool = False) -> Path:
    """``best.pt`` of the course's model in ``out_dir`` (default: the run folder); when it is
    missing, train it exactly as notebook 04 does (quick profile: a few minutes on a CPU).

    Lets notebooks 05 and 06 run on their own. Returns the checkpoint's path. An existing
    checkpoint is used as it is, never overwritten.
    """
    from . import config, datasets, sources
    from .models import regressor_for_profile

    out_dir = Path(out_dir) if out_dir is not None else config.run_dir()
    best = out_dir / "best.pt"
    if best.exists():
        return best
    print(f"no checkpoint in {config.display_path(out_dir)}: training one with the {profile.name} "
          "profile, as notebook 04 does")
    photos = photos or sources.resolve_photos(profile=profile, verbose=progress)
    dataset = datasets.course_dataset(profile, photos, progress=progress)
    config.seed_everything(0)
    model, weights = regressor_for_profile(profile, verbose=progress)
    train_loader, val_loader, train_paths = course_loaders(profile, dataset)
    fit(model, train_loader, val_loader, profile, out_dir, progress=progress,
        extra_metadata={**weights, "n_train_photos": len(train_paths), "dataset_name": dataset.name})
    return best
