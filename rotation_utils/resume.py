"""Exact resume: everything a training run needs to go on as if it had never stopped.

``last.pt`` is written after every epoch (to a temporary name, then renamed, so a run killed
while saving keeps the previous one). Besides the evaluated weights that
:func:`rotation_utils.models.load_checkpoint` reads, it holds ``training_state``: the raw
model, the EMA of its weights, the optimiser, the learning-rate scheduler, the gradient
scaler, the random number generators of every process (Python, NumPy, PyTorch on the CPU and
the GPUs, the training loader's shuffle), the epoch, the step, the best validation MAE so far
and the early-stopping counter. ``rotation-course train --resume RUN_DIR`` continues it.
Source: torchvision's ``references/classification/train.py`` (``--resume``), which saves the
model, optimiser, scheduler, epoch and scaler.

Exact means: on the CPU with ``num_workers == 0`` (the course's CPU profiles), a run of 2 epochs
resumed to 4 ends with the same weights as 4 epochs straight (tested). A time budget is not a
function of the step (the clock of a resumed run counts on from where it stopped), and a loader
with worker processes reseeds them, so those resumes go on correctly but not bit for bit.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from .profiles import Profile

__all__ = ["LAST_CHECKPOINT", "RESUME_IGNORES", "rng_state", "set_rng_state", "load_training_state",
           "profile_differences", "check_resumable"]

#: The file of a run folder that holds the state to resume from.
LAST_CHECKPOINT = "last.pt"

#: Profile fields a resumed run may change: how long it goes on, not what it trains.
RESUME_IGNORES = ("epochs", "time_budget_s", "patience", "description", "compile")


def rng_state(loader_generator: torch.Generator | None = None) -> dict:
    """The random states of this process as tensors and plain values (``weights_only``-safe):
    Python's ``random``, NumPy's global generator, PyTorch's CPU and CUDA generators, and the
    training loader's own generator (its shuffle) when given."""
    version, keys, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [version, list(keys), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": loader_generator.get_state() if loader_generator is not None else None,
    }


def set_rng_state(state: dict, loader_generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved (the CUDA states only on a machine with as many GPUs)."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"])


def load_training_state(run_dir) -> dict:
    """The checkpoint ``run_dir/last.pt`` as a dict with its ``metadata`` and ``training_state``
    (read with ``weights_only=True``).

    Raises FileNotFoundError when the folder or its ``last.pt`` is missing, ValueError when the
    file is unreadable or was written before runs could be resumed (no ``training_state``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir} to resume")
    path = run_dir / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir.name} has no {LAST_CHECKPOINT} to resume from (a run writes it "
                                "after its first epoch)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors, truncated files, ...
        raise ValueError(f"{path.name} is not a readable checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("training_state"), dict):
        raise ValueError(f"{path.name} holds no training state to resume from (written by an older "
                         "version of the course, or not by rotation-course train)")
    if not isinstance(checkpoint.get("metadata"), dict):
        raise ValueError(f"{path.name}: its metadata is not a dict")
    return checkpoint


def profile_differences(saved: dict, asked: dict, ignore=RESUME_IGNORES) -> list[str]:
    """Fields on which two profiles (as dicts, :meth:`Profile.to_dict`) differ, each as
    ``"field: saved X, asked Y"``, leaving out ``ignore`` (what a resumed run may change). A field
    that a run saved before it existed counts as its default value."""
    defaults = {f.name: f.default for f in dataclasses.fields(Profile) if f.default is not dataclasses.MISSING}
    saved = {**{k: v for k, v in defaults.items() if k not in saved and k in asked}, **saved}
    keys = sorted((set(saved) | set(asked)) - set(ignore))
    return [f"{key}: saved {saved.get(key)!r}, asked {asked.get(key)!r}"
            for key in keys if saved.get(key) != asked.get(key)]


def check_resumable(metadata: dict, profile_dict: dict, expected: dict | None = None) -> None:
    """Refuse to resume a run under another recipe.

    metadata: the saved run's (``profile``, ``backbone``, ``head``, photos, …).
    profile_dict: the profile asked for now. expected: other metadata that must match
    (e.g. ``{"backbone": ..., "photos_digest": ...}``); a key the saved run lacks is not compared.
    Raises ValueError listing every difference.
    """
    saved_profile = metadata.get("profile")
    if not isinstance(saved_profile, dict):
        raise ValueError("the saved run records no profile: it cannot be resumed safely")
    differences = profile_differences(saved_profile, profile_dict)
    for key, value in (expected or {}).items():
        if key in metadata and metadata[key] != value:
            differences.append(f"{key}: saved {metadata[key]!r}, asked {value!r}")
    if differences:
        raise ValueError("cannot resume: the run was trained with another recipe or data — "
                         + "; ".join(differences))
