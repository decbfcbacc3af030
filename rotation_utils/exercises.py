"""Exercise checks that do not show the answer: the check cell holds a digest, not the value.

Used by the check cells of the notebooks. The author computes ``answer_digest(answer)`` once and
writes the digest into the check cell; ``check_answer`` then passes a learner's value whose digest
matches, optionally within a tolerance, and raises ``AssertionError`` with a hint otherwise. The
digest hides the answer from a reader; it does not stop someone who tries values. An answer that
depends on the run (the photos, a training) cannot be a digest: the ``check_*`` functions below
recompute it here, out of the notebook's sight. ``tests/test_exercise_checks.py`` runs every
check cell against a right and a wrong answer.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

import numpy as np

__all__ = ["answer_digest", "check_answer", "DIGEST_LENGTH", "MAX_CANDIDATES", "check_tanh_mse_predictions",
           "check_upside_down_view", "check_reflect_dataset", "check_transfer_gap", "check_most_helped_head",
           "check_coverage_mae", "check_hardest_photo", "check_paired_share", "check_min_confidence"]

DIGEST_LENGTH = 16  # hex characters of sha256 kept
MAX_CANDIDATES = 100_000  # most values check_answer tries within a tolerance


class _TooManyCandidates(ValueError):
    pass


def _number_text(x: float, decimals: int) -> str:
    rounded = round(float(x), decimals)
    if rounded == 0:
        rounded = 0.0  # -0.00 and 0.00 are the same answer
    return f"{rounded:.{decimals}f}"


def _text(value: Any, decimals: int) -> str:
    if isinstance(value, str):
        return value
    numbers = np.asarray(value, dtype=np.float64)
    if numbers.ndim == 0:
        return _number_text(numbers, decimals)
    return ",".join(_number_text(x, decimals) for x in numbers.ravel())


def answer_digest(value, decimals=2) -> str:
    """Short sha256 digest of an answer rounded to ``decimals`` decimal places.

    value: a number, a sequence or NumPy array of numbers (any shape; the rounded elements
    are joined by commas in the given, row-major order, so order matters), or a string
    (taken as it is). decimals: decimal places kept, >= 0; -0.00 counts as 0.00.
    Returns 16 hex characters. Raises ValueError for negative ``decimals`` and
    TypeError or ValueError for a value that is not numbers or a string.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    return hashlib.sha256(_text(value, decimals).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def _candidates(value: Any, decimals: int, tolerance: float):
    # Every value on the 10**-decimals grid within `tolerance` of `value`, element by element.
    numbers = np.asarray(value, dtype=np.float64)
    scale = 10**decimals
    per_element = []
    for x in numbers.ravel():
        if not math.isfinite(x):
            per_element.append([x])
            continue
        low = math.ceil((x - tolerance) * scale - 1e-6)
        high = math.floor((x + tolerance) * scale + 1e-6)
        per_element.append([k / scale for k in range(low, high + 1)] or [x])
    count = math.prod(len(c) for c in per_element)
    if count > MAX_CANDIDATES:
        raise _TooManyCandidates(f"{count} candidates within the tolerance (at most "
                                 f"{MAX_CANDIDATES}): use a smaller tolerance or fewer decimals")
    if numbers.ndim == 0:
        yield from per_element[0]
    else:
        yield from (list(c) for c in itertools.product(*per_element))


def check_answer(value, digest, decimals=2, tolerance=None, hint="") -> None:
    """Check an exercise's answer against the digest of the hidden right answer.

    value: the learner's answer, as for :func:`answer_digest`. digest: ``answer_digest`` of the
    right answer with the same ``decimals``. tolerance: None for an exact match after rounding,
    or a number >= 0 in the answer's units: then every value within ``tolerance`` of ``value``
    on the ``10**-decimals`` grid is tried (element by element for a sequence), so an answer
    within about ``tolerance`` of the right one passes. hint: what to look at, shown on failure.
    Returns None when the answer is right. Raises AssertionError "not yet: <hint>", which never
    contains the answer, when ``value`` is None, not numbers or a string, or wrong; ValueError
    for a negative ``decimals`` or ``tolerance``, or over MAX_CANDIDATES values to try.
    """
    if decimals < 0 or (tolerance is not None and tolerance < 0):
        raise ValueError(f"decimals and tolerance must be >= 0, got {decimals} and {tolerance}")
    message = f"not yet: {hint}" if hint else "not yet"
    if value is None:
        raise AssertionError(message)
    try:
        if tolerance is None or isinstance(value, str):
            candidates = [value]
        else:
            candidates = _candidates(value, decimals, float(tolerance))
        right = any(answer_digest(c, decimals) == digest for c in candidates)
    except _TooManyCandidates:
        raise
    except (TypeError, ValueError):  # not numbers: a wrong answer, not a broken check
        right = False
    if not right:
        raise AssertionError(message)


# --------------------------------------------------------------------------- checks of answers that
# depend on the run (the data, the photos, a training): they recompute the answer out of sight, in
# this module, so that a check cell shows neither the answer nor how to get it. Each returns None
# for a right answer and raises AssertionError "not yet: <hint>" otherwise.

def _fail(hint: str):
    raise AssertionError(f"not yet: {hint}")


def check_tanh_mse_predictions(predicted_deg, train_set, val_set, settings: dict) -> None:
    """Notebook 02, exercise 3: ``predicted_deg`` must be the validation predictions (degrees,
    one per sample of ``val_set``) of ``digits.RotationCNN(head="tanh", seed=0)`` trained on
    ``train_set`` with ``loss="mse"`` and ``settings`` (the notebook's ``SGD_SETTINGS``). The
    check trains that network again (seconds on a CPU) and compares: the mean circular
    difference must be under 1°. The true angles, or another network's answers, fail."""
    from . import angles, digits

    hint = ('train digits.RotationCNN(head="tanh", seed=0) with loss="mse" and **SGD_SETTINGS, then '
            "predict on val_set with digits.predict_angles_deg")
    if predicted_deg is None:
        _fail(hint)
    try:
        predicted_deg = np.asarray(predicted_deg, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        _fail(hint)
    if len(predicted_deg) != len(val_set):
        _fail(f"one prediction per validation digit ({len(val_set)}); {hint}")
    network = digits.RotationCNN(head="tanh", seed=0)
    digits.train_rotation_cnn(network, train_set, loss="mse", progress=False, **settings)
    expected = digits.predict_angles_deg(network, val_set)
    if not np.isfinite(predicted_deg).all() or angles.circular_absolute_error_deg(predicted_deg, expected).mean() >= 1.0:
        _fail(hint)


def check_upside_down_view(view, dataset) -> None:
    """Notebook 03, exercise 2: ``view`` must hold exactly the samples of ``dataset`` tagged
    ``val`` whose ``angle_deg`` is within 10° of 180° (circular absolute error < 10°)."""
    from .angles import circular_absolute_error_deg

    hint = "a view of the validation samples whose angle_deg is within 10° of 180°"
    if view is None or not hasattr(view, "values"):
        _fail(hint)
    val = dataset.match_tags("val")
    ids, angles_deg = val.values("id"), np.asarray(val.values("angle_deg"), dtype=np.float64)
    expected = {i for i, a in zip(ids, angles_deg) if circular_absolute_error_deg(a, 180.0) < 10}
    try:
        found = view.values("id")
    except Exception:  # noqa: BLE001 - not a FiftyOne view: a wrong answer
        _fail(hint)
    if len(found) != len(set(found)) or set(found) != expected:
        _fail(hint)


def check_reflect_dataset(candidate, course_dataset, photos) -> None:
    """Notebook 03, exercise 3: ``candidate`` must be a FiftyOne dataset other than
    ``course_dataset`` (another name) whose samples are rotated copies of exactly ``photos``
    (every one of them, no other), all with the ``reflect`` border, each photo's copies all
    tagged ``train`` or all ``val``."""
    hint = ("build it with datasets.build_rotated_dataset from source.paths[:5], border='reflect', "
            "under a name of its own")
    if candidate is None or not hasattr(candidate, "values") or not hasattr(candidate, "name"):
        _fail(hint)
    if candidate.name == course_dataset.name or len(candidate) == 0:
        _fail(hint)
    if set(candidate.values("border")) != {"reflect"}:
        _fail("every sample's border must be 'reflect'")
    sources = candidate.values("source_filepath")
    if {str(p) for p in sources} != {str(p) for p in photos}:
        _fail("the samples must come from the five photos source.paths[:5], each of them")
    split = {}
    for source, tags in zip(sources, candidate.values("tags")):
        split.setdefault(source, set()).update(t for t in tags if t in ("train", "val"))
    if any(len(tags) != 1 for tags in split.values()):
        _fail("every copy of a photo must carry its photo's tag, train or val")


def check_transfer_gap(cost_deg, is_firm, frozen_runs, every_layer_runs) -> None:
    """Notebook 04, exercise 2: ``cost_deg`` must be the mean validation MAE (degrees, the
    ``["val"]["mae_deg"]`` of each seed's training summary) of ``frozen_runs`` minus that of
    ``every_layer_runs``, within 0.05°; ``is_firm`` whether its size exceeds the spread
    (max − min over the seeds) of both arms."""
    frozen = [run["val"]["mae_deg"] for run in frozen_runs]
    every_layer = [run["val"]["mae_deg"] for run in every_layer_runs]
    right = float(np.mean(frozen) - np.mean(every_layer))
    if cost_deg is None or is_firm is None:
        _fail("store a number in frozen_cost_deg and True or False in frozen_cost_is_firm")
    try:
        close = abs(float(cost_deg) - right) <= 0.05
    except (TypeError, ValueError):
        close = False
    if not close:
        _fail("average each arm's validation MAE over its seeds, then subtract: frozen minus all layers")
    if not isinstance(is_firm, (bool, np.bool_)) or bool(is_firm) != (abs(right) > max(np.ptp(frozen), np.ptp(every_layer))):
        _fail("compare the size of the difference with the spread (max − min) of each arm's seeds")


def check_most_helped_head(answer, runs) -> None:
    """Notebook 07, exercise 3: ``answer`` must name the head whose MAE the four turns lower the
    most, as a mean over its seeds, in ``runs`` (one dict per head and seed, with ``"head"``
    and the summaries ``"one_pass"`` and ``"four_turns"``)."""
    hint = "for each head, average (MAE in one pass − MAE with the turns) over its seeds, and take the largest"
    gains = {}
    for run in runs:
        gains.setdefault(run["head"], []).append(run["one_pass"]["mae_deg"] - run["four_turns"]["mae_deg"])
    if answer not in gains:
        _fail(f"the name of a head, one of {', '.join(gains)}")
    best = max(gains, key=lambda name: np.mean(gains[name]))
    if answer != best:
        _fail(hint)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def check_coverage_mae(mae_deg, error_deg, confidence, coverage: float) -> None:
    """Notebook 05, exercise 2: ``mae_deg`` must be the MAE (degrees) of the share ``coverage``
    (0–1) of the samples with the largest ``confidence`` (the output vector lengths), as
    ``evaluation.coverage_curve`` keeps them (ceil(coverage × n) samples), within 0.01°.
    error_deg, confidence: arrays of shape (n,)."""
    from . import evaluation

    value = _number(mae_deg)
    if value is None:
        _fail("store a number of degrees in the answer variable")
    right = float(evaluation.coverage_curve(np.asarray(error_deg), np.asarray(confidence),
                                            coverages=[coverage])["mae_deg"][0])
    if abs(value - right) > 0.01:
        _fail("keep the samples with the longest output vectors, then average their errors "
              "(evaluation.coverage_curve does both)")


def check_hardest_photo(photo, mae_deg, photo_of_sample, error_deg) -> None:
    """Notebook 05, exercise 3: ``photo`` must be the photo (an entry of ``photo_of_sample``,
    one per sample) whose samples have the largest mean error, and ``mae_deg`` that mean
    (degrees) within 0.01°. error_deg: array of shape (n,) matching ``photo_of_sample``."""
    names = np.array([str(p) for p in photo_of_sample])
    errors = np.asarray(error_deg, dtype=float)
    if photo is None or str(photo) not in set(names):
        _fail("hardest_photo must be one of the entries of photo_of_sample")
    value = _number(mae_deg)
    if value is None or abs(value - errors[names == str(photo)].mean()) > 0.01:
        _fail("hardest_mae must be the mean error of that photo's samples")
    worst = max(errors[names == name].mean() for name in set(names))
    if errors[names == str(photo)].mean() < worst - 1e-9:
        _fail("another photo has a larger mean error: group the errors by photo first")


def check_paired_share(share, errors_a_deg, errors_b_deg) -> None:
    """Notebook 06, exercise 3: ``share`` (0–1) must be the share of samples whose error in
    ``errors_a_deg`` is strictly smaller than in ``errors_b_deg`` (two arrays of shape (n,),
    degrees, paired sample by sample), within 0.001."""
    value = _number(share)
    if value is None or not 0 <= value <= 1:
        _fail("a share between 0 and 1")
    right = float(np.mean(np.asarray(errors_a_deg) < np.asarray(errors_b_deg)))
    if abs(value - right) > 1e-3:
        _fail("compare the two errors of each sample (reflect input against crop input) and count "
              "the samples where reflect is strictly smaller")


def check_min_confidence(threshold, confidence, error_deg, max_mae_deg: float) -> None:
    """Notebook 09, exercise 3: ``threshold`` must be the smallest of the ``confidence`` values
    (shape (n,)) for which the samples at or above it have a mean ``error_deg`` (degrees) of at
    most ``max_mae_deg``; None where no such value exists (the right answer then)."""
    conf = np.asarray(confidence, dtype=float)
    err = np.asarray(error_deg, dtype=float)
    good = [c for c in np.sort(conf) if err[conf >= c].mean() <= max_mae_deg]
    if threshold is None:
        if good:
            _fail("there is such a threshold in this run: look among the confidences")
        return
    value = _number(threshold)
    if value is None:
        _fail("store a confidence (a number), or None if no threshold keeps the MAE low enough")
    kept = conf >= value
    if not kept.any():
        _fail("that threshold keeps no photo at all")
    if err[kept].mean() > max_mae_deg:
        _fail("the photos kept at that threshold have too large an MAE")
    if any(c < value for c in good):
        _fail("a lower threshold also keeps the MAE low enough: look for the smallest")
