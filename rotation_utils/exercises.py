"""Exercise checks that do not show the answer: the check cell holds a digest, not the value.

Used by the check cells of notebooks 01, 02 and 03. The author computes ``answer_digest(answer)``
once and writes the digest into the check cell; ``check_answer`` then passes a learner's value
whose digest matches, optionally within a tolerance, and raises ``AssertionError`` with a hint
otherwise. The digest hides the answer from a reader; it does not stop someone who tries values.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

import numpy as np

__all__ = ["answer_digest", "check_answer", "DIGEST_LENGTH", "MAX_CANDIDATES"]

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
