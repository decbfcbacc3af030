"""Tests of rotation_utils.exercises: digests, and checks that pass right answers only."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from rotation_utils import exercises

ANSWER = 22.5
DIGEST = exercises.answer_digest(ANSWER, decimals=2)


def raised_message(value, digest=DIGEST, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        exercises.check_answer(value, digest, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- answer_digest

def test_digest_is_sha256_of_the_rounded_text():
    assert DIGEST == hashlib.sha256(b"22.50").hexdigest()[:16]
    assert len(DIGEST) == 16 and all(c in "0123456789abcdef" for c in DIGEST)


def test_digest_rounds_to_decimals():
    assert exercises.answer_digest(22.499, decimals=2) == DIGEST
    assert exercises.answer_digest(22.51, decimals=2) != DIGEST
    assert exercises.answer_digest(22.51, decimals=1) == exercises.answer_digest(22.5, decimals=1)
    assert exercises.answer_digest(np.float32(22.5)) == DIGEST


def test_digest_negative_zero_is_zero():
    assert exercises.answer_digest(-0.001) == exercises.answer_digest(0.0)
    assert exercises.answer_digest([-0.0, 1.0]) == exercises.answer_digest([0.0, 1.0])


def test_digest_of_sequences_and_arrays():
    values = [0.0, 45.0, 90.0]
    digest = exercises.answer_digest(values, decimals=1)
    assert digest == hashlib.sha256(b"0.0,45.0,90.0").hexdigest()[:16]
    assert exercises.answer_digest(np.array(values), decimals=1) == digest
    assert exercises.answer_digest(tuple(values), decimals=1) == digest
    assert exercises.answer_digest(values[::-1], decimals=1) != digest  # order matters


def test_digest_of_strings_is_of_the_string():
    assert exercises.answer_digest("reflect") == hashlib.sha256(b"reflect").hexdigest()[:16]


def test_digest_rejects_negative_decimals():
    with pytest.raises(ValueError):
        exercises.answer_digest(1.0, decimals=-1)


# ---------------------------------------------------------------- check_answer

def test_right_answer_passes():
    assert exercises.check_answer(22.5, DIGEST) is None
    exercises.check_answer(22.504, DIGEST)  # rounds to the answer


def test_wrong_answer_raises():
    assert raised_message(22.6) == "not yet"
    raised_message(-22.5)
    raised_message(225.0)


def test_none_and_non_numbers_raise_assertion_error():
    assert raised_message(None, hint="store your answer") == "not yet: store your answer"
    raised_message("22.5 degrees")
    raised_message({"answer": 22.5})
    raised_message(None, tolerance=1.0)


def test_tolerance_inside_passes_outside_fails():
    for inside in (22.21, 22.5, 22.79, 22.8, 22.2):
        exercises.check_answer(inside, DIGEST, tolerance=0.3)
    for outside in (22.19, 22.81, 21.0, 24.0):
        raised_message(outside, tolerance=0.3)
    raised_message(22.6)  # without tolerance, a near miss fails


def test_tolerance_with_zero_decimals():
    digest = exercises.answer_digest(180.0, decimals=0)
    for inside in (160, 175.0, 185.4, 200):
        exercises.check_answer(inside, digest, decimals=0, tolerance=20)
    for outside in (155, 5.0, 359.0, 0.0):
        raised_message(outside, digest, decimals=0, tolerance=20)


def test_sequences_and_arrays():
    digest = exercises.answer_digest(np.arange(0, 360, 45), decimals=2)
    right = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
    exercises.check_answer(right, digest)
    exercises.check_answer(np.array(right) + 1e-9, digest)
    exercises.check_answer(tuple(right), digest)
    raised_message(right[::-1], digest)  # not sorted
    raised_message(right[:-1], digest)  # one missing
    raised_message(right + [360.0], digest)  # one too many


def test_sequence_tolerance_is_per_element():
    digest = exercises.answer_digest([5.0, 1.5], decimals=2)
    exercises.check_answer([4.99, 1.51], digest, tolerance=0.02)
    raised_message([4.99, 1.6], digest, tolerance=0.02)
    raised_message([1.5, 5.0], digest, tolerance=0.02)


def test_message_never_contains_the_answer():
    hint = "average the error to the nearest corner"
    for wrong in (22.0, 0.0, 45.0, None, [22.5, 22.5]):
        message = raised_message(wrong, hint=hint, tolerance=0.3)
        assert message == f"not yet: {hint}"
        assert "22.5" not in message and "22.50" not in message


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        exercises.check_answer(22.5, DIGEST, tolerance=-1.0)
    with pytest.raises(ValueError):
        exercises.check_answer(22.5, DIGEST, decimals=-1)
    with pytest.raises(ValueError, match="candidates"):
        exercises.check_answer(22.5, DIGEST, decimals=6, tolerance=1.0)


# ---------------------------------------------------------------- the notebooks' digests

NOTEBOOK_ANSWERS = [  # (notebook, answer, decimals): the answer each check cell hides
    ("01_angles_on_a_circle.ipynb", 15.0, 2),  # exercise 2, circular mean of 350°, 15°, 40°
    ("01_angles_on_a_circle.ipynb", 180.0, 0),  # exercise 3, the moved seam (tolerance 20°)
    ("01_angles_on_a_circle.ipynb", [5.0, 1.5], 2),  # exercise 4, half a bin of 10° and of 3°
    ("02_when_angle_regression_goes_wrong.ipynb", list(range(0, 360, 45)), 2),  # exercise 1
    ("02_when_angle_regression_goes_wrong.ipynb", 22.5, 2),  # exercise 2, nearest-corner MAE
    ("03_building_a_rotated_dataset.ipynb", 1 / (1 + np.sin(np.radians(60))), 3),  # exercise 1, crop of a square at 30°
    ("04_training_a_rotation_regressor.ipynb", 0.5, 3),  # exercise 1, the loss of an output (0, 0)
    ("04_training_a_rotation_regressor.ipynb", 459, 0),  # exercise 3, steps until the EMA's weight < 1%
    ("08_head_pose.ipynb", [-24.0, -8.5, -12.0], 1),  # exercise 1, the mirrored pose
]
# Answers that depend on the run (02 exercise 3, 03 exercises 2-3, 04 exercise 2, 07 exercise 3) are
# checked by functions of rotation_utils.exercises; tests/test_exercise_checks.py runs every check cell.


@pytest.mark.parametrize("notebook, answer, decimals", NOTEBOOK_ANSWERS)
def test_notebook_check_cells_hold_the_digest_of_the_answer(notebook, answer, decimals):
    text = (Path(__file__).resolve().parents[1] / "notebooks" / notebook).read_text(encoding="utf-8")
    assert f'\\"{exercises.answer_digest(answer, decimals)}\\", decimals={decimals}' in text
