"""The training loop of the reference, short enough to read in notebook 04.

The reference's recipe: Adam (lr 1e-3, weight decay 1e-4), a step schedule, gradient clipping at
1.0, early stopping on validation MAE, batch size probed against GPU memory, mixed precision on a
GPU, tqdm progress, checkpoints (``best.pt``, ``last.pt``) and ``training_summary.json``. The
quick profile swaps in AdamW, a warm-up and a cosine decay to its time budget, and an EMA of the
weights (``profiles``). What the loop needs is one :class:`LoopState`; the learning rate is a
plain function of the step (:func:`lr_factor`, through ``LambdaLR``). The loaders live in
:mod:`rotation_utils.loaders`, devices and precision in :mod:`rotation_utils.precision`,
resuming in :mod:`rotation_utils.resume`, more than one process in
:mod:`rotation_utils.distributed`. Validation uses :func:`rotation_utils.evaluation.predict`;
evaluation imports nothing from here.
Source: the reference result's recipe (ResNet18, 30k COCO-2017 photos × 6 rotations:
validation MAE 4.57°, median 1.74°, 88.1% within 5°).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import angles, distributed, heads
from .backbones import BACKBONES
from .config import clock_scale
from .datasets import AUGMENTATIONS
from .evaluation import VAL_ROTATIONS, predict  # noqa: F401 - VAL_ROTATIONS also public here
from .loaders import (course_loaders, make_loaders, photo_cache_side, training_loader,  # noqa: F401
                      validation_loader)
from .models import CheckpointExistsError, _unwrap, save_checkpoint
from .precision import autocast_dtype, cpu_supports_bf16, default_device  # noqa: F401 - also public here
from .resume import LAST_CHECKPOINT, check_resumable, load_training_state, rng_state, set_rng_state

__all__ = ["default_device", "autocast_dtype", "probe_batch_size", "LoopState", "train_one_epoch", "fit",
           "make_optimizer", "lr_factor", "VAL_ROTATIONS", "make_loaders", "validation_loader",
           "training_loader", "train_on_photos", "course_loaders", "ensure_course_checkpoint",
           "photo_cache_side", "photos_digest"]


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


@dataclass
class LoopState:
    """What one training step needs, made once per run.

    model: the network being trained (wrapped in DDP under ``torchrun``), outputs (N, 2) read
    as (cos θ, sin θ). optimizer, scheduler (stepped after every optimiser step, see
    :func:`lr_factor`), scaler (``torch.amp.GradScaler``, enabled only for float16).
    amp_dtype: the autocast type, None for float32 (:func:`rotation_utils.precision.autocast_dtype`).
    ema: a ``torch.optim.swa_utils.AveragedModel`` updated after every step, or None.
    step: optimiser steps taken so far in the run. loss_fn: the loss of another head
    (:func:`rotation_utils.heads.loss`), or None for the reference's MSE on (cos θ, sin θ).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    grad_clip: float = 1.0
    channels_last: bool = False
    step: int = 0
    loss_fn: object = None  # (outputs, targets, angles in degrees) -> loss; None: MSE on (cos θ, sin θ)


def train_one_epoch(state: LoopState, loader, deadline: float | None = None, progress: bool = True,
                    desc: str = "train") -> dict:
    """One pass over ``loader`` of (images (N, 3, S, S), targets (N, 2) = (cos θ, sin θ), angles
    in degrees), minimising the MSE between the outputs and the targets (or ``state.loss_fn``).

    deadline: a ``time.monotonic()`` value after which the epoch stops early (under
    ``torchrun`` every process stops at the same step). The loss is summed on the device and
    read back only for the progress bar, so a GPU is never made to wait for the host.
    Returns {"loss": mean loss, "samples": images seen, "stopped_early": bool}.
    """
    model = state.model.train()
    total, seen, stopped = torch.zeros((), device=state.device), 0, False
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for images, targets, angles_deg in bar:
        images = images.to(state.device, non_blocking=True,
                           memory_format=torch.channels_last if state.channels_last else torch.preserve_format)
        targets = targets.to(state.device, non_blocking=True)
        with torch.autocast(state.device.type, dtype=state.amp_dtype or torch.float32,
                            enabled=state.amp_dtype is not None):
            outputs = model(images)
        loss = (nn.functional.mse_loss(outputs.float(), targets) if state.loss_fn is None
                else state.loss_fn(outputs, targets, angles_deg.to(state.device, non_blocking=True)))
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), state.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(_unwrap(model))
        state.step += 1
        total += loss.detach() * len(images)
        seen += len(images)
        if progress and state.step % 10 == 0:
            bar.set_postfix(loss=f"{total.item() / seen:.4f}")
        if deadline is not None and distributed.any_rank(time.monotonic() > deadline, state.device):
            stopped = True
            break
    return {"loss": total.item() / max(seen, 1), "samples": seen, "stopped_early": stopped}


def lr_factor(step: int, profile, steps_per_epoch: int, elapsed_s: float | None = None) -> float:
    """The learning rate of step ``step`` (0-based) as a multiple of the profile's ``lr``.

    ``lr_schedule == "step"``: × ``lr_gamma`` every ``lr_step_epochs`` epochs (StepLR, the
    reference's). ``"cosine"``: ``½(1 + cos(π·p))`` (Loshchilov & Hutter 2017, one cycle with
    no restart) where p is the share of the run done: of the profile's epochs, counted in
    steps, or — when the profile has a time budget and ``elapsed_s`` (seconds of training so
    far) is given — of the budget when that share is larger, so the rate reaches zero when
    time is up, however fast the machine; the first ``warmup_steps`` steps rise linearly,
    ``(step + 1) / warmup_steps``. Without a time budget it is a plain function of the step,
    which is what makes a resumed run exact.
    """
    if profile.lr_schedule == "step":
        return profile.lr_gamma ** (step // max(1, profile.lr_step_epochs * steps_per_epoch))
    done = step / max(1, profile.epochs * steps_per_epoch)
    if profile.time_budget_s and elapsed_s is not None:
        done = max(done, elapsed_s / profile.time_budget_s)
    warm = min(1.0, (step + 1) / profile.warmup_steps) if profile.warmup_steps > 0 else 1.0
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, done))))


def _check_profile(profile) -> None:
    heads.num_outputs(profile.head, profile.bins)  # an unknown head or too few bins: ValueError
    if profile.lr_schedule not in ("step", "cosine"):
        raise ValueError(f"lr_schedule must be 'step' or 'cosine', got {profile.lr_schedule!r}")
    if profile.warmup_steps and profile.lr_schedule != "cosine":
        raise ValueError("warmup_steps needs lr_schedule='cosine'")
    if profile.augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {profile.augment!r}")
    if not isinstance(profile.epochs, int) or profile.epochs < 1:
        raise ValueError(f"epochs must be a whole number ≥ 1, got {profile.epochs!r}")
    if profile.time_budget_s is not None and not profile.time_budget_s > 0:
        raise ValueError(f"the time budget must be a positive number of seconds, got {profile.time_budget_s!r}")


def _validate(model, val_loader, device, profile) -> dict:
    """Validation metrics of ``model`` over ``val_loader``; under ``torchrun`` each process
    predicts every world_size-th batch and the errors of all are gathered, so every process
    gets the metrics of the whole validation set."""
    ctx = distributed.context()
    loader = val_loader
    if ctx.enabled:
        from torch.utils.data import DataLoader, Subset

        share = list(range(ctx.rank, len(val_loader.dataset), ctx.world_size))
        loader = DataLoader(Subset(val_loader.dataset, share), batch_size=val_loader.batch_size,
                            num_workers=val_loader.num_workers)
    result = predict(model, loader, device, progress=False, cpu_bf16=profile.cpu_bf16, tta=profile.tta,
                     head=profile.head, bins=profile.bins)
    parts = distributed.all_gather_objects((result["error_deg"], result["loss"] * len(result["error_deg"])))
    errors = np.concatenate([part[0] for part in parts])
    return {"loss": sum(part[1] for part in parts) / max(len(errors), 1),
            "summary": angles.summarize_errors(errors)}


def photos_digest(paths) -> str:
    """A short fingerprint of a list of photos (their file names, sorted), so that a resumed
    run can check it trains on the same photos; moving the folder does not change it."""
    import hashlib

    names = "\n".join(sorted(Path(p).name for p in paths))
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def fit(model, train_loader, val_loader, profile, out_dir, device=None, overwrite: bool = False,
        progress: bool = True, extra_metadata: dict | None = None, resume: bool = False) -> dict:
    """Train with the profile's recipe, keep the best model by validation MAE, write files.

    model: outputs (N, 2) read as (cos θ, sin θ), or as many as ``profile.head`` needs
    (:func:`rotation_utils.heads.num_outputs`; its loss and decoding). train_loader / val_loader: yield
    (images, targets (N, 2), angles in degrees (N,)). profile: a
    :class:`rotation_utils.profiles.Profile` (epochs, lr, weight decay, schedule, patience,
    gradient clipping, time budget in seconds). out_dir: gets ``best.pt`` (best validation
    MAE), ``last.pt`` (after every epoch: the state to resume from, see
    :mod:`rotation_utils.resume`) and ``training_summary.json``.
    resume: go on from ``out_dir/last.pt`` (same recipe and photos; more epochs allowed).
    Returns the summary dict (also written as JSON): history per epoch, best epoch,
    validation metrics of the best model (degrees), training time in seconds, world size.
    The time budget is multiplied by :func:`rotation_utils.config.clock_scale` (1 except under
    the test suite). The learning rate follows :func:`lr_factor` step by step; the backbone learns at
    ``lr × backbone_lr_factor``, the head at ``lr``. The time budget counts training only:
    the clock stops while the model is validated. With ``profile.tta`` the validation averages
    over the four 90° turns of each input (:func:`rotation_utils.evaluation.predict`). Under
    ``torchrun`` (:mod:`rotation_utils.distributed`) the model is wrapped in
    ``DistributedDataParallel``, and only rank 0 prints and writes files.
    Raises :class:`rotation_utils.models.CheckpointExistsError` before training if
    ``out_dir/best.pt`` exists, ``overwrite`` is False and this is not a resume; ValueError for
    an unknown schedule, ``epochs`` < 1, or a resume under another recipe (the differences
    listed); FileNotFoundError for a resume with no ``last.pt``.
    """
    _check_profile(profile)
    if profile.time_budget_s and clock_scale() != 1.0:  # the test suite's shorter clock (config.clock_scale)
        profile = replace(profile, time_budget_s=profile.time_budget_s * clock_scale())
    out_dir = Path(out_dir)
    best_path = out_dir / "best.pt"
    metadata = {"image_size": profile.image_size, "num_outputs": heads.num_outputs(profile.head, profile.bins),
                "head": profile.head, "bins": profile.bins, "profile": profile.to_dict(),
                "max_angle_deg": profile.max_angle_deg,
                "backbone": _backbone_or_none(model), "width": _resnet_width(model, profile.width),
                "train_border": getattr(train_loader, "border", getattr(train_loader.dataset, "border", None)), **(extra_metadata or {})}
    saved = None
    if resume:
        saved = load_training_state(out_dir)
        check_resumable(saved["metadata"], profile.to_dict(),
                        {k: metadata[k] for k in ("backbone", "num_outputs", "width", "photos_digest",
                                                  "split_seed", "head") if k in metadata})
    elif best_path.exists() and not overwrite:
        raise CheckpointExistsError(f"{best_path.name} already exists in that run folder; pass "
                                    "overwrite=True (or --overwrite), resume it, or choose another folder")
    ctx = distributed.init(device)
    is_main = ctx.is_main
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = model.to(device)
    if profile.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, profile)
    steps_per_epoch = len(train_loader)
    start = time.monotonic()
    clock = {"paused": 0.0, "before": 0.0}  # validation time (not counted) and a resumed run's past

    def training_seconds() -> float:
        return clock["before"] + time.monotonic() - start - clock["paused"]

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, profile, steps_per_epoch, training_seconds()))
    amp_dtype = autocast_dtype(device, profile.cpu_bf16)
    # An exponential moving average of the weights smooths the noise of short, small-batch
    # training (Polyak & Juditsky 1992); validation and checkpoints then use the average.
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(profile.ema_decay), use_buffers=True)
        if profile.ema_decay else None)
    loss_fn = (None if profile.head == "cos_sin_mse" else
               lambda outputs, targets, angles_deg: heads.loss(profile.head, outputs, angles_deg, profile.bins,
                                                               profile.head_alpha))
    state = LoopState(model, optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
                      device, amp_dtype, ema, profile.grad_clip, profile.channels_last, loss_fn=loss_fn)
    evaluated = ema.module if ema is not None else model
    history, best_mae, best_epoch, waited, best_val, first_epoch = [], math.inf, 0, 0, None, 1
    if saved is not None:
        first_epoch, best_mae, best_epoch, waited, best_val, history = _restore(
            saved["training_state"], state, train_loader, ctx, clock)
        if is_main and progress:
            print(f"resuming {out_dir.name} after epoch {first_epoch - 1} (step {state.step}, best validation "
                  f"MAE {best_mae:.2f}° at epoch {best_epoch})")
    if ctx.enabled:
        state.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if profile.compile:  # the training step only; validation and checkpoints use the plain module
        state.model = torch.compile(state.model)
    sampler = getattr(train_loader, "sampler", None)
    stop_reason = f"all {profile.epochs} epochs done"
    for epoch in range(first_epoch, profile.epochs + 1):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        epoch_start = time.monotonic()
        deadline = (epoch_start + profile.time_budget_s - training_seconds()) if profile.time_budget_s else None
        stats = train_one_epoch(state, train_loader, deadline, progress and is_main,
                                desc=f"epoch {epoch}/{profile.epochs}")
        trained_s, val_start = training_seconds(), time.monotonic()
        distributed.broadcast_buffers(evaluated)  # one model for all: rank 0's running statistics
        val = _validate(evaluated, val_loader, device, profile)
        loss = distributed.all_reduce_sum(torch.tensor([stats["loss"] * stats["samples"], stats["samples"]],
                                                       dtype=torch.float64, device=device))
        row = {"epoch": epoch, "train_loss": float(loss[0] / max(float(loss[1]), 1.0)), "val_loss": val["loss"],
               "val_mae_deg": val["summary"]["mae_deg"], "val_median_deg": val["summary"]["median_deg"],
               "lr": optimizer.param_groups[-1]["lr"], "seconds": time.monotonic() - epoch_start}
        history.append(row)
        if row["val_mae_deg"] < best_mae:
            best_mae, best_epoch, waited, best_val = row["val_mae_deg"], epoch, 0, val["summary"]
            if is_main:
                save_checkpoint(best_path, evaluated, {**metadata, "epoch": epoch, "val_mae_deg": best_mae,
                                                       "val": val["summary"]}, overwrite=True)
        else:
            waited += 1
        rngs = distributed.all_gather_objects(rng_state(getattr(train_loader, "generator", None)))
        if is_main:
            save_checkpoint(out_dir / LAST_CHECKPOINT, evaluated,
                            {**metadata, "epoch": epoch, "val_mae_deg": row["val_mae_deg"]}, overwrite=True,
                            training_state=_loop_snapshot(state, epoch, best_mae, best_epoch, waited, best_val,
                                                          history, trained_s,
                                                          clock["paused"] + clock.get("paused_before", 0.0) + time.monotonic() - val_start,
                                                          rngs, ctx))
        clock["paused"] += time.monotonic() - val_start  # validating and saving do not count as training
        if progress and is_main:
            print(f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}"
                  f"  val MAE {row['val_mae_deg']:6.2f}°  median {row['val_median_deg']:6.2f}°"
                  f"  {row['seconds']:5.1f} s")
        if stats["stopped_early"] or (profile.time_budget_s and training_seconds() > profile.time_budget_s):
            stop_reason = f"time budget of {profile.time_budget_s:.0f} s reached"
            break
        if waited >= profile.patience:
            stop_reason = f"early stopping: no better validation MAE for {profile.patience} epochs"
            break
    summary = {
        "best_epoch": best_epoch,
        "stop_reason": stop_reason,
        "train_seconds": training_seconds(),
        "val_seconds": clock["paused"] + clock.get("paused_before", 0.0),
        "device": str(device),
        "world_size": ctx.world_size,
        "batch_size": getattr(train_loader, "batch_size", None),
        "train_samples_per_epoch": len(train_loader.dataset),
        "val_samples": len(val_loader.dataset),
        "val": best_val,
        "history": history,
        "resumed": saved is not None,
        **metadata,
    }
    if is_main:
        from .config import write_bytes_atomically  # a full disk: an OSError, the old summary kept whole

        write_bytes_atomically(out_dir / "training_summary.json", json.dumps(summary, indent=2).encode())
    distributed.barrier()
    return summary


def _loop_snapshot(state: LoopState, epoch, best_mae, best_epoch, waited, best_val, history, seconds,
                   val_seconds, rngs, ctx) -> dict:
    """The ``training_state`` of ``last.pt`` (see :mod:`rotation_utils.resume`)."""
    def cpu(tree):
        if isinstance(tree, torch.Tensor):
            return tree.detach().cpu()
        if isinstance(tree, dict):
            return {k: cpu(v) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)):
            return type(tree)(cpu(v) for v in tree)
        return tree

    return {
        "model": cpu(_unwrap(state.model).state_dict()),
        "ema": cpu(state.ema.state_dict()) if state.ema is not None else None,
        "optimizer": cpu(state.optimizer.state_dict()),
        "scheduler": {k: v for k, v in state.scheduler.state_dict().items() if k != "lr_lambdas"},
        "scaler": state.scaler.state_dict(),
        "rng": rngs, "world_size": ctx.world_size,
        "epoch": epoch, "step": state.step, "best_mae_deg": best_mae, "best_epoch": best_epoch,
        "epochs_without_improvement": waited, "best_val": best_val, "history": history,
        "train_seconds": seconds, "val_seconds": val_seconds,
    }


def _restore(saved: dict, state: LoopState, train_loader, ctx, clock):
    """Put a :func:`_loop_snapshot` back into ``state``; returns the loop's counters."""
    _unwrap(state.model).load_state_dict(saved["model"])
    if state.ema is not None:
        if saved.get("ema") is None:
            raise ValueError("cannot resume: the saved run kept no EMA of its weights")
        state.ema.load_state_dict(saved["ema"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict({**saved["scheduler"], "lr_lambdas": [None] * len(state.optimizer.param_groups)})
    state.scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    rngs = saved.get("rng") or []
    if len(rngs) == ctx.world_size:
        set_rng_state(rngs[ctx.rank], getattr(train_loader, "generator", None))
    elif ctx.is_main:
        print(f"the run was saved by {len(rngs)} process(es), resumed by {ctx.world_size}: it goes on "
              "with fresh random numbers")
    clock["before"] = float(saved.get("train_seconds", 0.0))
    clock["paused_before"] = float(saved.get("val_seconds", 0.0))  # of the runs before this one
    best = saved.get("best_mae_deg")
    return (int(saved["epoch"]) + 1, math.inf if best is None else float(best), int(saved["best_epoch"]),
            int(saved["epochs_without_improvement"]), saved.get("best_val"), list(saved.get("history", [])))


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


def train_on_photos(paths, profile, out_dir, val_fraction: float | None = None, seed: int = 0,
                    overwrite: bool = False, device=None, progress: bool = True, resume: bool = False,
                    border: str = "crop") -> dict:
    """Split photos by photo, build the model and loaders, and :func:`fit` — the command
    line's ``rotation-course train`` in one call, with or without ``torchrun``. The split is
    the course dataset's (:func:`rotation_utils.datasets.split_photos`): the notebooks hold out
    the same photos.

    paths: photo files. val_fraction: share of photos held out (default: the profile's).
    resume: go on from ``out_dir/last.pt`` (see :func:`fit`). border: how the training photos'
    corners are filled once rotated (``crop``, the default, leaves none; ``reflect`` mirrors).
    Returns the training summary (see :func:`fit`), with ``weights`` ("imagenet" or "random").
    Raises CheckpointExistsError (``best.pt`` exists, no overwrite, no resume), ValueError (too
    few photos, a resume under another recipe or other photos).
    """
    from .datasets import split_photos
    from .models import regressor_for_profile

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError("training needs at least 2 photos (one for validation)")
    _check_profile(profile)
    if (Path(out_dir) / "best.pt").exists() and not (overwrite or resume):
        raise CheckpointExistsError(f"{Path(out_dir).name}/best.pt already exists; pass --overwrite, "
                                    "--resume, or choose another --out folder")
    saved = load_training_state(out_dir)["metadata"] if resume else None  # a bad last.pt fails first
    ctx = distributed.init(device)
    train_paths, val_paths = split_photos(paths, val_fraction or profile.val_fraction, seed)
    device = torch.device(device) if device is not None else default_device()
    if saved is None:
        model, weights = regressor_for_profile(profile, verbose=ctx.is_main)  # always says which weights
    else:  # the saved weights replace the start ones: no need to fetch ImageNet weights again
        model, _ = regressor_for_profile(replace(profile, weights="random"), verbose=False)
        weights = {k: saved.get(k) for k in ("weights", "weights_source")}
    if profile.batch_size is None:
        profile = replace(profile, batch_size=probe_batch_size(model, profile.image_size, device))
    train_loader, val_loader = make_loaders(train_paths, val_paths, profile, seed=seed, device=device, border=border)
    if progress and ctx.is_main:
        processes = f", {ctx.world_size} processes ({ctx.backend})" if ctx.enabled else ""
        print(f"training on {len(train_paths)} photos, validating on {len(val_paths)} "
              f"({len(val_loader.dataset)} rotated samples), {device}, batch {profile.batch_size}{processes}")
    return fit(model, train_loader, val_loader, profile, out_dir, device=device, overwrite=overwrite,
               progress=progress, resume=resume,
               extra_metadata={**weights, "n_train_photos": len(train_paths), "n_val_photos": len(val_paths),
                               "split_seed": seed, "photos_digest": photos_digest(train_paths)})


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
