"""Heads trained on fixed features (notebook 07): turns undone on the circle, mix-ups counted,
features extracted from a course model, and each head able to read an angle it is given."""
import math

import numpy as np
import pytest
import torch

from rotation_utils import angles, evaluation, heads, models, readouts


def _vectors(angle_deg):
    theta = torch.deg2rad(torch.as_tensor(angle_deg, dtype=torch.float32))
    return torch.stack((torch.cos(theta), torch.sin(theta)), dim=1)


def test_undo_turns_brings_answers_for_turned_inputs_back_to_the_unturned_angle():
    truth = torch.tensor([0.0, 10.0, 200.0, 359.0])
    # the answer for the input turned by 90°·k is the true angle + 90°·k
    turned = [_vectors(truth + 90.0 * k) for k in range(4)]
    averaged = evaluation.undo_turns(turned)
    assert torch.allclose(averaged.norm(dim=1), torch.ones(4), atol=1e-5)
    error = angles.circular_absolute_error_deg(angles.decode_angle_deg(averaged), truth)
    assert float(torch.as_tensor(error).max()) < 1e-3


def test_undo_turns_averages_on_the_circle_and_refuses_a_wrong_count():
    # two answers right, two upside down: the average cancels to a short vector
    truth = torch.tensor([30.0])
    turned = [_vectors(truth + 90.0 * k + (180.0 if k % 2 else 0.0)) for k in range(4)]
    assert float(evaluation.undo_turns(turned).norm()) < 1e-5
    with pytest.raises(ValueError, match="4 answers"):
        evaluation.undo_turns(turned[:3])


def test_turn_average_of_a_model_matches_undo_turns_of_its_answers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    images = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        expected = evaluation.undo_turns([model(torch.rot90(images, k, dims=(-2, -1))) for k in range(4)])
        assert torch.allclose(evaluation.turn_average(model, images), expected, atol=1e-6)


def test_turn_mix_ups_count_quarter_turns_and_upside_down_and_match_guessing():
    shares = evaluation.turn_mix_ups([0.0, 80.0, 100.0, 101.0, 170.0, 170.5, 180.0, 45.0])
    assert shares == {"quarter_turn": 2 / 8, "upside_down": 2 / 8}
    uniform = np.random.default_rng(0).uniform(0, 180, 200_000)
    guessing = evaluation.turn_mix_ups(uniform)
    assert guessing["quarter_turn"] == pytest.approx(20 / 180, abs=0.005)
    assert guessing["upside_down"] == pytest.approx(10 / 180, abs=0.005)
    with pytest.raises(ValueError):
        evaluation.turn_mix_ups([])


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return models.build_regressor("efficientnet_lite0", "random", verbose=False).eval()


def test_feature_extractor_drops_the_head_and_leaves_the_model_alone(lite0):
    extractor = readouts.feature_extractor(lite0)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = extractor(images)
        assert features.shape == (2, 1280)
        assert lite0(images).shape == (2, 2)  # the model still has its head
        head = models.backbones.head_of(lite0, "efficientnet_lite0")
        assert torch.allclose(head[1](features), lite0(images), atol=1e-4)


def test_extract_features_of_the_turns_are_the_features_of_turned_inputs(lite0):
    images = torch.randn(6, 3, 64, 64)
    loader = [(images[:4], None, torch.tensor([1.0, 2.0, 3.0, 4.0])), (images[4:], None, torch.tensor([5.0, 6.0]))]
    found = readouts.extract_features(lite0, loader, turns=True)
    assert found["features"].shape == (4, 6, 1280)
    assert found["angle_deg"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    extractor = readouts.feature_extractor(lite0)
    with torch.no_grad():
        assert torch.allclose(found["features"][3], extractor(torch.rot90(images, 3, dims=(-2, -1))), atol=1e-4)
    twice = readouts.extract_features(extractor, loader, passes=2)  # an extractor is used as it is
    assert twice["features"].shape == (1, 12, 1280)
    with pytest.raises(ValueError, match="passes"):
        readouts.extract_features(lite0, loader, passes=0)
    with pytest.raises(ValueError, match="no inputs"):
        readouts.extract_features(lite0, [])


def _synthetic_features(n, seed, turns=False):
    """Features that carry the angle: (cos θ, sin θ) mixed into 16 dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    angle_deg = torch.tensor(rng.uniform(0, 360, n), dtype=torch.float32)
    mixing = torch.tensor(np.random.default_rng(99).normal(size=(2, 16)), dtype=torch.float32)

    def encode(a):
        return 3.0 * _vectors(a) @ mixing + 0.05 * torch.tensor(rng.normal(size=(n, 16)), dtype=torch.float32)

    features = torch.stack([encode(angle_deg + 90.0 * k) for k in range(4 if turns else 1)])
    return {"features": features, "angle_deg": angle_deg}


@pytest.mark.parametrize("head", list(heads.HEADS))
def test_every_head_learns_to_read_an_angle_from_features_that_carry_it(head):
    train = _synthetic_features(1200, seed=0)
    test = _synthetic_features(400, seed=1, turns=True)
    readout, seconds = readouts.train_readout(train, head, bins=36, epochs=30, lr=3e-3, seed=0)
    assert seconds > 0
    one_pass = readouts.readout_predict(readout, test)
    turned = readouts.readout_predict(readout, test, turns=True)
    # guessing: 90°; the classifiers' circular mean is not quantised to their bins
    assert one_pass["error_deg"].mean() < 6.0, head
    assert turned["error_deg"].mean() < 6.0, head
    assert one_pass["error_deg"].shape == one_pass["confidence"].shape == (400,)
    assert np.all(one_pass["confidence"] > 0)
    if head == "von_mises":
        assert np.all(one_pass["kappa"] > 0)
        assert np.allclose(one_pass["circular_std_deg"],
                           heads.circular_std_deg(torch.tensor(one_pass["kappa"])).numpy(), atol=1e-6)


def test_readouts_are_reproducible_from_their_seed_and_seeds_differ():
    train = _synthetic_features(300, seed=0)
    a, _ = readouts.train_readout(train, "bins_expected", bins=12, epochs=3, seed=5)
    b, _ = readouts.train_readout(train, "bins_expected", bins=12, epochs=3, seed=5)
    c, _ = readouts.train_readout(train, "bins_expected", bins=12, epochs=3, seed=6)
    x = train["features"][0]
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


def test_argmax_decoding_lands_on_bin_centres_and_bad_requests_are_refused():
    train = _synthetic_features(500, seed=0)
    readout, _ = readouts.train_readout(train, "bins_expected", bins=8, epochs=5, seed=0)
    argmax = readouts.readout_predict(readout, train, method="argmax")
    assert set(np.round(argmax["predicted_deg"], 6)) <= {45.0 * k for k in range(8)}
    with pytest.raises(ValueError, match="four turns"):
        readouts.readout_predict(readout, train, turns=True)
    with pytest.raises(ValueError, match="method='mean'"):
        readouts.readout_predict(readout, _synthetic_features(10, 1, turns=True), turns=True, method="argmax")
    with pytest.raises(ValueError, match="epochs"):
        readouts.train_readout(train, "angular", epochs=0)
    broken = {"features": train["features"].clone(), "angle_deg": train["angle_deg"]}
    broken["features"][0, 3, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        readouts.train_readout(broken, "angular", epochs=1)
    with pytest.raises(ValueError, match="unknown head"):
        readouts.train_readout(train, "regression", epochs=1)
