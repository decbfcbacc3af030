"""The course's reference checkpoint: a model trained longer than a notebook can, shipped in the repository.

``reference/`` holds EfficientNet-Lite0 trained for 20 minutes on two CPU cores with the
``laptop`` profile (``reference/README.md`` gives the exact command and its figures), in half
precision. Notebooks 05 and 06 analyse it beside the learner's own quick model, always on photos
it never trained on: ``reference/trained_on.txt`` lists a digest of the bytes of every training
photo, so any folder of photos can be checked against it, wherever it lies and whatever the
files are called.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .config import PROJECT_ROOT

__all__ = ["REFERENCE_DIR", "REFERENCE_NAME", "photo_digest", "reference_checkpoint", "reference_figures",
           "trained_on", "unseen_by_reference", "out_of_collection"]

#: Where the reference lives in a clone of the course.
REFERENCE_DIR = PROJECT_ROOT / "reference"
#: Its checkpoint's file name (without ``.pt``).
REFERENCE_NAME = "efficientnet_lite0_laptop"


def photo_digest(path) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes: the same photo under any name.
    Raises FileNotFoundError for a missing file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def reference_checkpoint(folder=None) -> Path | None:
    """Path of the reference checkpoint in ``folder`` (default :data:`REFERENCE_DIR`), or None
    when it is not there (an installed package without the repository)."""
    path = Path(folder or REFERENCE_DIR) / f"{REFERENCE_NAME}.pt"
    return path if path.is_file() else None


def reference_figures(folder=None) -> dict:
    """``held_out.json``: the reference's figures on its own held-out photos (degrees).
    Raises FileNotFoundError when the reference is not there."""
    return json.loads((Path(folder or REFERENCE_DIR) / "held_out.json").read_text())


def trained_on(folder=None) -> set[str]:
    """Digests (:func:`photo_digest`) of the photos the reference trained on.
    Raises FileNotFoundError when the reference is not there."""
    lines = (Path(folder or REFERENCE_DIR) / "trained_on.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def unseen_by_reference(paths, folder=None) -> list[Path]:
    """The photos of ``paths`` the reference never trained on, in order (compared by content)."""
    seen = trained_on(folder)
    return [Path(p) for p in paths if photo_digest(p) not in seen]


def out_of_collection(paths, folder=None) -> list[Path]:
    """The photos of ``paths`` from collections the shipped model never trained on, in order: a
    collection (:func:`rotation_utils.datasets.photo_collections`, the first folder under the
    photos' common folder) counts when none of its photos is a training photo. These are the
    photos whose errors a user meets on photos of their own (issue 19); the shipped model's own
    held-out photos of its training collections are :func:`unseen_by_reference` but not these.
    Pass every photo of the folder, not only held-out ones: a training collection is recognised
    by its training photos among ``paths`` (of held-out photos alone, every collection would
    look unseen). Raises FileNotFoundError when the reference is not there.
    """
    from .datasets import photo_collections

    paths = [Path(p) for p in paths]
    if not paths:
        return []
    seen = trained_on(folder)
    names = photo_collections(paths)
    trained = {name for name, p in zip(names, paths) if photo_digest(p) in seen}
    return [p for name, p in zip(names, paths) if name not in trained]
