"""Measuring circular error: predictions, summaries and the evaluation protocol.

Taught in notebook 05. The protocol of :func:`evaluate_folder`: each photo rotated by
``rotations`` seeded angles, border ``crop`` (the largest inscribed rectangle, so no border
pixels remain to give the angle away), the centred square resized to the model's input size.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import angles
from .precision import cpu_supports_bf16, for_inference, inference_input

__all__ = [
    "VAL_ROTATIONS",
    "undo_turns",
    "turn_average",
    "turn_mix_ups",
    "head_comparison_table",
    "predict",
    "evaluate_loader",
    "evaluate_folder",
    "REFERENCE_SUMMARY",
    "chance_summary",
    "format_comparison",
    "error_by_true_angle",
    "coverage_curve",
    "link_photos",
]


def undo_turns(turned) -> torch.Tensor:
    """Average answers given to the four 90° turns of the same inputs, each turned back first.

    turned: a sequence of 4 tensors (N, 2), vectors on the circle (any length); item k is the
    answer for the input turned by 90°·k counter-clockwise (``torch.rot90(images, k, dims=(-2,
    -1))``), whose true angle is therefore 90°·k larger. Each is rotated by −90°·k and the four
    are averaged: returns (N, 2). Raises ValueError unless there are exactly 4 of the same shape.
    """
    return turn_back(turned).mean(dim=1)


def turn_back(turned) -> torch.Tensor:
    """The answers to the four 90° turns of the same inputs, each turned back by its own turn.

    turned: as for :func:`undo_turns`. Returns (N, 4, 2): item [:, k] is the answer for the turn
    by 90°·k rotated by −90°·k, so all four estimate the same angle (the safe rule of
    :mod:`rotation_utils.upright` reads them one by one). Raises ValueError unless there are
    exactly 4 of the same shape.
    """
    turned = list(turned)
    if len(turned) != 4 or any(t.shape != turned[0].shape or t.shape[-1] != 2 for t in turned):
        raise ValueError("undo_turns needs the 4 answers (N, 2) for the turns by 0°, 90°, 180° and 270°")
    backs = []
    for k, out in enumerate(turned):
        c, s = math.cos(math.radians(-90.0 * k)), math.sin(math.radians(-90.0 * k))
        backs.append(torch.stack((out[:, 0] * c - out[:, 1] * s, out[:, 0] * s + out[:, 1] * c), dim=1))
    return torch.stack(backs, dim=1)


def turn_average(model, images: torch.Tensor, head: str = "cos_sin_mse", bins: int = 72,
                 unturned: torch.Tensor | None = None) -> torch.Tensor:
    """Test-time augmentation over the four 90° turns: the head's answers as vectors on the
    circle (:func:`rotation_utils.heads.resultant`; for the reference's head the (cos θ, sin θ)
    outputs themselves) for the input turned by 0°, 90°, 180° and 270° counter-clockwise, each
    turned back by its own angle and averaged (:func:`undo_turns`).

    images: (N, 3, S, S) square inputs. unturned: the model's raw outputs for ``images`` when
    the caller has them already (they are not computed again). Returns (N, 2). A turn by 90°
    adds exactly 90° to the true angle and needs no interpolation, so averaging cancels errors
    that depend on how the photo sits in the frame (RotNet-style turns; a circular mean of four
    answers).
    """
    from .heads import resultant

    turned = []
    for k in range(4):
        raw = unturned if k == 0 and unturned is not None else model(torch.rot90(images, k, dims=(-2, -1)))
        turned.append(resultant(head, raw.float().to(images.device), bins))
    return undo_turns(turned)


def turn_mix_ups(error_deg) -> dict:
    """Shares of the errors that look like a mistaken turn of the photo.

    error_deg: (N,) circular absolute errors, degrees in [0, 180]. Returns ``quarter_turn``:
    the share within 80–100° (the photo read a quarter turn off) and ``upside_down``: the share
    above 170° (read upside down). Guessing gives 11.1% and 5.6%. Raises ValueError for an
    empty input.
    """
    error_deg = np.asarray(error_deg, dtype=np.float64).ravel()
    if error_deg.size == 0:
        raise ValueError("turn_mix_ups needs at least one error")
    return {"quarter_turn": float(np.mean((error_deg >= 80) & (error_deg <= 100))),
            "upside_down": float(np.mean(error_deg > 170))}


@torch.no_grad()
def predict(model, loader, device=None, progress: bool = False, cpu_bf16: bool = False,
            tta: bool = False, head: str = "cos_sin_mse", bins: int = 72) -> dict:
    """Run the model over a loader of (images, targets, angles in degrees).

    cpu_bf16: bfloat16 autocast on a CPU with native bfloat16 instructions, as in training
    (:func:`rotation_utils.precision.autocast_dtype`); on a GPU mixed precision is not used here.
    tta: average over the four 90° turns of each input (:func:`turn_average`; 4× the time).
    head, bins: how the outputs are read (:mod:`rotation_utils.heads`; default the reference's
    (cos θ, sin θ)); a checkpoint records its own.

    Returns NumPy arrays: ``predicted_deg`` (N,) in [0, 360), ``true_deg`` (N,),
    ``error_deg`` (N,) circular absolute errors in [0, 180], ``vector_norm`` (N,) length of the
    predicted (cos θ, sin θ) vector — for other heads, of their resultant vector — (short
    vectors mean an unsure network), ``confidence`` (N,) the head's own confidence (the
    length, κ, or the largest probability; with ``tta`` the averaged vector's length),
    ``outputs`` (N, 2) the vectors, and ``loss``: the mean loss against the targets (the MSE
    for the reference's head, :func:`rotation_utils.heads.loss` for the others).
    """
    from . import heads as head_module

    head_module.num_outputs(head, bins)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = for_inference(model, device)
    bf16 = cpu_bf16 and device.type == "cpu" and cpu_supports_bf16()
    outputs, truths, confidences, losses, count = [], [], [], 0.0, 0
    for images, targets, angle_deg in tqdm(loader, desc="predict", leave=False, disable=not progress):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            images = inference_input(images, device)
            if head == "cos_sin_mse":
                out = (turn_average(model, images) if tta else model(images)).float().cpu()
                confidence = out.norm(dim=1)
            else:
                raw = model(images).float().cpu()
                losses += head_module.loss(head, raw, angle_deg, bins).item() * len(images)
                out = (turn_average(model, images, head, bins, unturned=raw).float().cpu() if tta
                       else head_module.resultant(head, raw, bins))
                confidence = out.norm(dim=1) if tta else head_module.decode(head, raw, bins)["confidence"]
        if head == "cos_sin_mse":
            losses += nn.functional.mse_loss(out, targets, reduction="sum").item() / 2
        count += len(images)
        outputs.append(out)
        truths.append(angle_deg)
        confidences.append(confidence)
    out = torch.cat(outputs).numpy().astype(np.float64)
    true_deg = torch.cat(truths).numpy().astype(np.float64)
    predicted_deg = angles.decode_angle_deg(out)
    return {
        "predicted_deg": predicted_deg,
        "true_deg": true_deg,
        "error_deg": angles.circular_absolute_error_deg(predicted_deg, true_deg),
        "vector_norm": np.linalg.norm(out, axis=1),
        "confidence": torch.cat(confidences).numpy().astype(np.float64),
        "outputs": out,
        "loss": losses / max(count, 1),
    }


def evaluate_loader(model, loader, device=None, progress: bool = False, cpu_bf16: bool = False,
                    tta: bool = False, head: str = "cos_sin_mse", bins: int = 72) -> dict:
    """:func:`predict` plus the summary metrics (:func:`rotation_utils.angles.summarize_errors`)."""
    result = predict(model, loader, device, progress, cpu_bf16=cpu_bf16, tta=tta, head=head, bins=bins)
    result["summary"] = angles.summarize_errors(result["error_deg"])
    return result


def head_comparison_table(rows, key: str) -> str:
    """A text table of heads compared over seeds: one line per head, in the order first seen.

    rows: dicts with ``head``, ``train_seconds`` and, under ``key``, a
    :func:`rotation_utils.angles.summarize_errors` dict merged with :func:`turn_mix_ups`
    (as written by ``benchmarks/heads.py`` and notebook 07). Each figure is the mean over the
    head's rows (its seeds); the column after the MAE (``±``) is the MAE's spread, max − min.
    Degrees for the errors, percent for the shares, seconds for the training time.
    Raises KeyError when a row lacks a field.
    """
    import statistics

    fields = ("mae_deg", "median_deg", "p90_deg", "within_5", "within_10", "within_15", "quarter_turn", "upside_down")
    lines = [f"{'head':<20}{'seeds':>6}{'MAE':>8}{'±':>6}{'median':>8}{'p90':>8}{'≤5°':>7}{'≤10°':>7}{'≤15°':>7}"
             f"{'~90°':>7}{'~180°':>7}{'train s':>9}"]
    rows = list(rows)
    for head in dict.fromkeys(r["head"] for r in rows):
        mine = [r for r in rows if r["head"] == head]
        mean = {k: statistics.fmean(r[key][k] for r in mine) for k in fields}
        spread = max(r[key]["mae_deg"] for r in mine) - min(r[key]["mae_deg"] for r in mine)
        lines.append(f"{head:<20}{len(mine):>6}{mean['mae_deg']:>7.1f}°{spread:>5.1f}°{mean['median_deg']:>7.1f}°"
                     f"{mean['p90_deg']:>7.1f}°{100 * mean['within_5']:>6.1f}%{100 * mean['within_10']:>6.1f}%"
                     f"{100 * mean['within_15']:>6.1f}%{100 * mean['quarter_turn']:>6.1f}%"
                     f"{100 * mean['upside_down']:>6.1f}%{statistics.fmean(r['train_seconds'] for r in mine):>9.1f}")
    return "\n".join(lines)


#: Seeded rotations per validation photo, in training (``training.make_loaders``) and in
#: ``rotation-course evaluate``: the reference's 6 rotations per photo.
VAL_ROTATIONS = 6


def evaluate_folder(checkpoint, images, rotations: int = VAL_ROTATIONS, seed: int = 0, border: str = "crop",
                    batch_size: int = 64, device=None, progress: bool = False,
                    max_photos: int | None = None, tta: bool = False, max_angle_deg: float | None = None) -> dict:
    """Evaluate a saved model on a folder of photos with the course's protocol.

    The protocol, the same as the validation of training (:func:`rotation_utils.training.make_loaders`):
    each photo rotated by ``rotations`` angles drawn from ``seed`` (degrees uniform in
    [0, 360)), border ``crop`` (the largest inscribed rectangle, so no fill pixels remain), the
    centred square resized to the checkpoint's input size.
    checkpoint: path of a ``best.pt``. images: a folder (searched recursively) or a list of
    folders. border: ``crop`` or ``reflect``. device: default a GPU when there is one.
    tta: average over the four 90° turns (:func:`turn_average`). max_angle_deg: draw the angles
    in ±D degrees instead (small tilts; default: the checkpoint's own ``max_angle_deg``, else the
    whole circle).
    The checkpoint's head (``metadata["head"]``, default the reference's) reads the outputs.
    Returns the summary dict: ``n``, ``mae_deg``, ``median_deg``, ``p90_deg``, ``within_5``,
    ``within_10``, ``within_15``, plus ``skipped`` (unusable files) and ``head``.
    Raises FileNotFoundError (missing checkpoint or folder), ValueError (bad checkpoint or one
    whose metadata contradict its weights, :func:`rotation_utils.models.prediction_settings`;
    no usable photo; ``tta`` with a model trained within less than ±90°).
    """
    from .datasets import FixedRotationDataset
    from .models import load_checkpoint, prediction_settings
    from .precision import default_device
    from .sources import resolve_photos

    model, metadata = load_checkpoint(checkpoint, verbose=False)
    head, bins, image_size = prediction_settings(metadata, Path(checkpoint).name)
    trained_within = (metadata.get("profile") or {}).get("max_angle_deg")
    if tta and trained_within is not None and trained_within < 90:
        raise ValueError(f"{Path(checkpoint).name} was trained on angles within ±{trained_within:g}° only: the "
                         "four 90° turns would show it photos it was never trained on (leave out --tta)")
    source = resolve_photos(images, max_photos=max_photos, verbose=False)
    if max_angle_deg is None:
        max_angle_deg = trained_within
    dataset = FixedRotationDataset(source.paths, image_size, rotations=rotations,
                                   seed=seed, border=border, max_angle_deg=max_angle_deg)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    result = evaluate_loader(model, loader, device if device is not None else default_device(), progress,
                             tta=tta, head=head, bins=bins)
    return {**result["summary"], "skipped": len(source.skipped), "head": head,
            "max_angle_deg": max_angle_deg}


#: The reference result's validation metrics (ResNet18 from ImageNet weights, 30k COCO-2017
#: photos × 6 rotations, trained on a GPU), as published; degrees and shares.
REFERENCE_SUMMARY = {"mae_deg": 4.57, "median_deg": 1.74, "p90_deg": 5.63, "within_5": 0.881, "within_10": 0.948,
                     "within_15": 0.961}


def chance_summary() -> dict:
    """The metrics of guessing: what a uniformly random angle scores, in expectation.

    The circular absolute error of a uniform guess is uniform on [0, 180] degrees, so the MAE
    and median are 90°, the 90th percentile 162° and the share within t degrees is t / 180.
    Returns a dict with the keys of :func:`rotation_utils.angles.summarize_errors` except ``n``.
    """
    return {"mae_deg": angles.RANDOM_GUESS_MAE_DEG, "median_deg": 90.0, "p90_deg": 162.0,
            "within_5": 5 / 180, "within_10": 10 / 180, "within_15": 15 / 180}


_COLUMNS = [("n", "n", "{:d}"), ("mae_deg", "MAE", "{:.2f}°"), ("median_deg", "median", "{:.2f}°"),
            ("p90_deg", "p90", "{:.2f}°"), ("within_5", "within 5°", "{:.1%}"),
            ("within_10", "within 10°", "{:.1%}"), ("within_15", "within 15°", "{:.1%}")]


def format_comparison(named_summaries: dict) -> str:
    """A fixed-width text table comparing summaries, one row per name.

    named_summaries: {row name: dict with any of the keys of
    :func:`rotation_utils.angles.summarize_errors`} (degrees; shares in [0, 1], shown as %).
    A missing metric is shown as ``–`` (e.g. ``n`` of the reference result).
    Returns the table as a string (no trailing newline). Raises ValueError for no rows.
    """
    if not named_summaries:
        raise ValueError("format_comparison needs at least one summary")
    width = max(12, *(len(str(name)) for name in named_summaries)) + 2
    lines = [" " * width + "".join(f"{header:>12}" for _, header, _ in _COLUMNS)]
    for name, summary in named_summaries.items():
        cells = [fmt.format(summary[key]) if summary.get(key) is not None else "–"
                 for key, _, fmt in _COLUMNS]
        lines.append(f"{str(name):<{width}}" + "".join(f"{cell:>12}" for cell in cells))
    return "\n".join(lines)


def error_by_true_angle(true_deg, error_deg, bin_width_deg: float = 30.0) -> dict:
    """Mean circular error per bin of the true angle: is the network worse at some angles?

    true_deg: (N,) true angles in degrees (wrapped into [0, 360) here). error_deg: (N,)
    circular absolute errors in degrees. bin_width_deg: must divide 360 (e.g. 30 → 12 bins).
    Returns NumPy arrays ``bin_start_deg`` (B,), ``bin_center_deg`` (B,), ``mae_deg`` (B,)
    (NaN for an empty bin) and ``count`` (B,) ints.
    Raises ValueError for shapes that differ or a width that does not divide 360.
    """
    true_deg = angles.wrap_angle_deg(np.asarray(true_deg, dtype=np.float64).ravel())
    error_deg = np.asarray(error_deg, dtype=np.float64).ravel()
    if true_deg.shape != error_deg.shape:
        raise ValueError(f"true_deg and error_deg differ in shape: {true_deg.shape} vs {error_deg.shape}")
    if not bin_width_deg > 0:
        raise ValueError(f"bin_width_deg must divide 360, got {bin_width_deg}")
    n_bins = 360.0 / bin_width_deg
    if abs(n_bins - round(n_bins)) > 1e-9:
        raise ValueError(f"bin_width_deg must divide 360, got {bin_width_deg}")
    n_bins = int(round(n_bins))
    index = np.minimum((true_deg // bin_width_deg).astype(int), n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    total = np.bincount(index, weights=error_deg, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    start = np.arange(n_bins) * float(bin_width_deg)
    return {"bin_start_deg": start, "bin_center_deg": start + bin_width_deg / 2,
            "mae_deg": mae, "count": count}


def coverage_curve(error_deg, confidence, coverages=None) -> dict:
    """Error of the samples kept when the network abstains on its least confident ones.

    error_deg: (N,) circular absolute errors in degrees. confidence: (N,) larger means surer,
    e.g. ``vector_norm`` from :func:`predict` (a short (cos θ, sin θ) vector is an unsure one).
    coverages: (K,) shares in (0, 1] of samples to keep (default: k / N for k = 1 … N); keeping
    a share c keeps the ceil(c · N) most confident samples (ties: the earlier sample first).
    Returns NumPy arrays ``coverage`` (K,), ``kept`` (K,) ints, ``mae_deg`` (K,) and
    ``within_5`` (K,) (share ≤ 5° among the kept). At coverage 1 the MAE is the overall MAE; a
    confidence that carries no information gives a curve that stays flat around it.
    Raises ValueError for an empty input, shapes that differ or a coverage outside (0, 1].
    Source: risk–coverage curves of selective prediction (Geifman & El-Yaniv, NeurIPS 2017).
    """
    error_deg = np.asarray(error_deg, dtype=np.float64).ravel()
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    if error_deg.size == 0:
        raise ValueError("coverage_curve needs at least one sample")
    if error_deg.shape != confidence.shape:
        raise ValueError(f"error_deg and confidence differ in shape: {error_deg.shape} vs {confidence.shape}")
    n = error_deg.size
    if coverages is None:
        kept = np.arange(1, n + 1)
        coverages = kept / n
    else:
        coverages = np.asarray(coverages, dtype=np.float64).ravel()
        if np.any(~(coverages > 0) | (coverages > 1)):
            raise ValueError("coverages must be shares in (0, 1]")
        kept = np.clip(np.ceil(coverages * n - 1e-9).astype(int), 1, n)
    order = np.argsort(-confidence, kind="stable")
    sorted_errors = error_deg[order]
    cumulative = np.cumsum(sorted_errors)
    cumulative_within = np.cumsum(sorted_errors <= 5.0)
    return {"coverage": coverages, "kept": kept, "mae_deg": cumulative[kept - 1] / kept,
            "within_5": cumulative_within[kept - 1] / kept}


def link_photos(paths, folder) -> Path:
    """A folder holding exactly ``paths`` (as links), for commands that read whole folders.

    paths: photo files. folder: created if missing; entries are named ``0000_<name>`` … so
    that photos with the same file name do not clash. Symbolic links are used, or copies where
    the system refuses links. Running it again with the same photos reuses the folder.
    Returns the folder's path. Raises FileNotFoundError for a missing photo and
    FileExistsError when the folder already holds anything else (nothing is ever deleted).
    """
    import shutil

    paths = [Path(p).resolve() for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} photo(s) do not exist, e.g. {missing[0]}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{k:04d}_{p.name}": p for k, p in enumerate(paths)}
    for entry in folder.iterdir():
        same = entry.name in wanted and (
            (entry.is_symlink() and entry.resolve() == wanted[entry.name])
            or (not entry.is_symlink() and entry.is_file()
                and entry.stat().st_size == wanted[entry.name].stat().st_size))
        if not same:
            raise FileExistsError(f"{folder.name} already holds {entry.name}, which is not one of "
                                  "the photos asked for; choose an empty or a new folder")
    for name, target in wanted.items():
        link = folder / name
        if link.exists() or link.is_symlink():
            continue
        try:
            link.symlink_to(target)
        except OSError:  # e.g. Windows without the right to create links
            shutil.copy2(target, link)
    return folder
