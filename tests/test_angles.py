"""Tests of rotation_utils.angles: wrapping, (cos, sin) encoding, circular error, summaries."""
import numpy as np
import pytest
import torch

from rotation_utils import angles


# ---------------------------------------------------------------- wrap

@pytest.mark.parametrize("raw, wrapped", [
    (0.0, 0.0), (360.0, 0.0), (-10.0, 350.0), (370.0, 10.0), (720.5, 0.5), (-725.0, 355.0),
])
def test_wrap_scalar(raw, wrapped):
    out = angles.wrap_angle_deg(raw)
    assert isinstance(out, float)
    assert out == pytest.approx(wrapped)


def test_wrap_tiny_negative_stays_below_360():
    # np.mod(-1e-14, 360) rounds to 360.0 in float64; the result must still be in [0, 360)
    out = angles.wrap_angle_deg(np.array([-1e-14, -1e-13, 359.999999]))
    assert np.all(out >= 0.0) and np.all(out < 360.0)


def test_wrap_array_and_tensor_agree():
    raw = np.array([-370.0, -1.0, 0.0, 59.5, 360.0, 1000.0])
    expected = np.array([350.0, 359.0, 0.0, 59.5, 0.0, 280.0])
    np.testing.assert_allclose(angles.wrap_angle_deg(raw), expected)
    out = angles.wrap_angle_deg(torch.tensor(raw, dtype=torch.float32))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


# ---------------------------------------------------------------- encode / decode

def test_encode_known_values():
    enc = angles.encode_angle_deg(np.array([0.0, 90.0, 180.0, 270.0, 370.0]))
    assert enc.shape == (5, 2)
    np.testing.assert_allclose(enc, [[1, 0], [0, 1], [-1, 0], [0, -1],
                                     [np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(enc, axis=1), 1.0)


def test_round_trip_numpy():
    a = np.array([0.0, 0.5, 45.0, 179.9, 180.0, 270.0, 359.5])
    back = angles.decode_angle_deg(angles.encode_angle_deg(a))
    assert isinstance(back, np.ndarray)
    assert np.max(angles.circular_absolute_error_deg(back, a)) < 1e-9


def test_round_trip_torch():
    a = torch.tensor([0.0, 1.0, 90.0, 200.0, 359.0])
    enc = angles.encode_angle_deg(a)
    assert isinstance(enc, torch.Tensor) and enc.dtype == torch.float32 and enc.shape == (5, 2)
    back = angles.decode_angle_deg(enc)
    assert isinstance(back, torch.Tensor)
    assert float(angles.circular_absolute_error_deg(back, a).max()) < 1e-3


def test_decode_ignores_length_and_finds_quadrant():
    # atan2 keeps the quadrant that atan(y / x) loses, and ignores the vector's length
    cos_sin = np.array([[2.0, 2.0], [-3.0, 3.0], [-0.1, -0.1], [5.0, -5.0]])
    np.testing.assert_allclose(angles.decode_angle_deg(cos_sin), [45.0, 135.0, 225.0, 315.0])


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError):
        angles.decode_angle_deg(np.zeros((4, 3)))
    with pytest.raises(ValueError):
        angles.decode_angle_deg(torch.zeros(4, 1))


# ---------------------------------------------------------------- errors

def test_circular_error_across_the_seam():
    assert angles.circular_absolute_error_deg(359.0, 1.0) == pytest.approx(2.0)
    assert angles.circular_absolute_error_deg(1.0, 359.0) == pytest.approx(2.0)
    assert angles.naive_absolute_error_deg(359.0, 1.0) == pytest.approx(358.0)
    assert angles.circular_absolute_error_deg(720.0, 0.0) == pytest.approx(0.0)
    assert angles.circular_absolute_error_deg(-90.0, 90.0) == pytest.approx(180.0)


def test_circular_error_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-720, 720, 1000), rng.uniform(-720, 720, 1000)
    ab, ba = angles.circular_absolute_error_deg(a, b), angles.circular_absolute_error_deg(b, a)
    np.testing.assert_allclose(ab, ba)
    assert ab.min() >= 0.0 and ab.max() <= 180.0
    # it never exceeds the naive error of the wrapped angles
    naive = angles.naive_absolute_error_deg(angles.wrap_angle_deg(a), angles.wrap_angle_deg(b))
    assert np.all(ab <= naive + 1e-9)


def test_circular_error_torch_matches_numpy():
    a, b = np.array([10.0, 350.0, 180.0]), np.array([350.0, 10.0, 0.0])
    out = angles.circular_absolute_error_deg(torch.tensor(a), torch.tensor(b))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), [20.0, 20.0, 180.0], atol=1e-6)


def test_signed_difference():
    assert angles.signed_angle_difference_deg(10.0, 350.0) == pytest.approx(20.0)
    assert angles.signed_angle_difference_deg(350.0, 10.0) == pytest.approx(-20.0)
    out = angles.signed_angle_difference_deg(np.array([0.0, 90.0]), np.array([180.0, 0.0]))
    np.testing.assert_allclose(out, [-180.0, 90.0])


def test_circular_mean_wraps():
    assert angles.circular_absolute_error_deg(angles.circular_mean_deg([350.0, 10.0]), 0.0) < 1e-9
    assert angles.circular_mean_deg([80.0, 100.0]) == pytest.approx(90.0)
    # weights pull the mean towards the heavier angle
    assert angles.circular_mean_deg([0.0, 90.0], weights=[3.0, 1.0]) < 45.0


def test_random_guess_level_is_90_degrees():
    rng = np.random.default_rng(1)
    err = angles.circular_absolute_error_deg(rng.uniform(0, 360, 200_000), rng.uniform(0, 360, 200_000))
    assert err.mean() == pytest.approx(angles.RANDOM_GUESS_MAE_DEG, abs=0.5)


# ---------------------------------------------------------------- summaries

def test_summarize_errors_hand_computed():
    s = angles.summarize_errors([1.0, 2.0, 4.0, 8.0, 20.0])
    assert s["n"] == 5
    assert s["mae_deg"] == pytest.approx(7.0)
    assert s["median_deg"] == pytest.approx(4.0)
    # 90th percentile, linear interpolation: position 0.9 * 4 = 3.6 -> 8 + 0.6 * (20 - 8)
    assert s["p90_deg"] == pytest.approx(15.2)
    assert s["within_5"] == pytest.approx(0.6)
    assert s["within_10"] == pytest.approx(0.8)
    assert s["within_15"] == pytest.approx(0.8)


def test_summarize_errors_accepts_tensor_and_boundaries():
    s = angles.summarize_errors(torch.tensor([0.0, 5.0, 10.0, 15.0, 180.0]))
    assert s["within_5"] == pytest.approx(0.4)   # 5.0 counts as within 5°
    assert s["within_15"] == pytest.approx(0.8)
    assert s["mae_deg"] == pytest.approx(42.0)


@pytest.mark.parametrize("bad", [[], [-1.0, 2.0], [181.0], [np.nan], [np.inf]])
def test_summarize_errors_rejects(bad):
    with pytest.raises(ValueError):
        angles.summarize_errors(np.array(bad, dtype=float))


def test_format_summary():
    line = angles.format_summary(angles.summarize_errors([1.0, 2.0, 4.0, 8.0, 20.0]))
    assert "n=5" in line and "MAE 7.00°" in line and "within 5° 60.0%" in line
