"""The five heads of notebook 07: losses minimal at the truth and continuous across 0/360,
exact decoding on bin centres, a positive concentration, the von Mises likelihood of SciPy,
finite gradients."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import stats

from rotation_utils import heads

HEADS = list(heads.HEADS)


def outputs_for(head: str, angle_deg: float, n: int = 1, sharp: float = 8.0, bins: int = 72) -> torch.Tensor:
    """Raw outputs with which ``head`` says ``angle_deg`` (a confident answer)."""
    theta = math.radians(angle_deg)
    if head in ("cos_sin_mse", "angular"):
        return torch.tensor([[math.cos(theta), math.sin(theta)]] * n)
    if head == "von_mises":
        return torch.tensor([[math.cos(theta), math.sin(theta), sharp]] * n)
    k = 360 if head == "classification_360" else bins
    centres = heads.bin_centres_deg(k)
    distance = torch.rad2deg(torch.atan2(torch.sin(torch.deg2rad(centres - angle_deg)),
                                         torch.cos(torch.deg2rad(centres - angle_deg)))).abs()
    logits = -sharp * (distance / (360 / k)) ** 2  # a bump of probability around the angle
    return logits.repeat(n, 1)


@pytest.mark.parametrize("head", HEADS)
def test_each_loss_is_smallest_at_the_true_angle(head):
    true = 123.0
    outputs = outputs_for(head, true)
    at_truth = heads.loss(head, outputs, torch.tensor([true]))
    for off in (5.0, 20.0, 90.0, 180.0, -45.0):
        assert heads.loss(head, outputs, torch.tensor([true + off])) > at_truth, (head, off)


@pytest.mark.parametrize("head", HEADS)
def test_each_loss_is_continuous_across_the_seam(head):
    outputs = outputs_for(head, 0.0)
    below = heads.loss(head, outputs, torch.tensor([359.99]))
    above = heads.loss(head, outputs, torch.tensor([0.01]))
    far = heads.loss(head, outputs, torch.tensor([180.0]))
    assert abs(float(below - above)) < 0.01 * float(far - min(below, above)) + 1e-6, head


@pytest.mark.parametrize("head", HEADS)
def test_decoding_gives_back_the_angle_and_wraps_into_0_360(head):
    for angle in (0.0, 5.0, 90.0, 180.0, 355.0):
        decoded = heads.decode(head, outputs_for(head, angle))
        assert float(decoded["predicted_deg"][0]) == pytest.approx(angle, abs=1e-3) or \
            float(decoded["predicted_deg"][0]) == pytest.approx(angle + 360.0, abs=1e-3), (head, angle)
        assert 0.0 <= float(decoded["predicted_deg"][0]) < 360.0


@pytest.mark.parametrize("head,bins", [("classification_360", 360), ("bins_expected", 72), ("bins_expected", 12)])
def test_argmax_decoding_is_exact_on_bin_centres(head, bins):
    centres = heads.bin_centres_deg(bins)
    logits = torch.full((bins, bins), -5.0)
    logits[torch.arange(bins), torch.arange(bins)] = 5.0
    decoded = heads.decode(head, logits, bins=bins, method="argmax")
    assert torch.equal(decoded["predicted_deg"], centres)
    assert torch.equal(heads.angle_to_class(centres, bins), torch.arange(bins))
    assert int(heads.angle_to_class(torch.tensor([359.9]), bins)) == 0  # nearest centre: 0°


def test_the_circular_mean_of_the_softmax_does_not_break_at_the_seam():
    logits = torch.full((1, 72), -20.0)
    logits[0, 0] = logits[0, 71] = 5.0  # half at 0°, half at 355°
    mean = float(heads.decode("bins_expected", logits)["predicted_deg"][0])
    assert mean == pytest.approx(357.5, abs=1e-3)  # a mean on a line would say 177.5°


def test_concentration_stays_positive_and_the_nll_matches_scipy():
    raw = torch.tensor([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
    kappa = heads.concentration(raw)
    assert bool((kappa > 0).all()) and bool(torch.isfinite(kappa).all())
    rng = np.random.default_rng(0)
    theta, mu = rng.uniform(-math.pi, math.pi, 20), rng.uniform(-math.pi, math.pi, 20)
    k = np.array([1e-3, 0.1, 0.5, 1, 2, 5, 10, 50, 200, 700] * 2)
    ours = heads.von_mises_log_likelihood(torch.tensor(theta), torch.tensor(mu), torch.tensor(k, dtype=torch.float64))
    np.testing.assert_allclose(ours.numpy(), stats.vonmises.logpdf(theta, k, loc=mu), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("raw_kappa", [-50.0, -5.0, 0.0, 5.0, 500.0, 1e4])
def test_von_mises_gradients_are_finite_for_small_and_large_concentrations(raw_kappa):
    outputs = torch.tensor([[0.3, -0.8, raw_kappa]], requires_grad=True)
    heads.loss("von_mises", outputs, torch.tensor([200.0])).backward()
    assert bool(torch.isfinite(outputs.grad).all())


@pytest.mark.parametrize("head", HEADS)
def test_gradients_are_finite_and_nonzero_for_every_head(head):
    torch.manual_seed(0)
    outputs = torch.randn(8, heads.num_outputs(head), requires_grad=True)
    heads.loss(head, outputs, torch.rand(8) * 360).backward()
    assert bool(torch.isfinite(outputs.grad).all()) and float(outputs.grad.abs().sum()) > 0


def test_von_mises_confidence_is_kappa_and_its_spread_shrinks_with_it():
    out = torch.tensor([[1.0, 0.0, -3.0], [1.0, 0.0, 3.0], [1.0, 0.0, 30.0]])
    decoded = heads.decode("von_mises", out)
    assert torch.allclose(decoded["confidence"], heads.concentration(out[:, 2]))
    spread = heads.circular_std_deg(decoded["confidence"])
    assert float(spread[0]) > float(spread[1]) > float(spread[2]) > 0
    # a κ of 30 spreads about 1/√κ radians: about 10.5°
    assert float(spread[2]) == pytest.approx(math.degrees(1 / math.sqrt(30)), rel=0.05)


def test_bins_expected_dual_loss_adds_the_circular_term():
    outputs = outputs_for("bins_expected", 10.0, sharp=0.5)  # a wide bump: the expected angle matters
    plain = heads.loss("bins_expected", outputs, torch.tensor([40.0]), alpha=0.0)
    dual = heads.loss("bins_expected", outputs, torch.tensor([40.0]), alpha=2.0)
    assert float(dual - plain) == pytest.approx(2.0 * math.radians(30.0) ** 2, rel=0.05)


def test_bad_heads_and_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown head"):
        heads.num_outputs("softmax_regression")
    with pytest.raises(ValueError, match="needs outputs"):
        heads.loss("von_mises", torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="method"):
        heads.decode("bins_expected", torch.zeros(1, 72), method="median")
    with pytest.raises(ValueError, match="bins"):
        heads.num_outputs("bins_expected", bins=1)


# --------------------------------------------------------------------------- the heads in training and evaluation

from torch import nn  # noqa: E402

from rotation_utils import cli, evaluation, gradcam, models, training  # noqa: E402
from rotation_utils.profiles import get_profile  # noqa: E402
from test_backbones import band_photos  # noqa: E402 - photos with a clear 'up'


class SmallCNN(nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(128, outputs)

    def forward(self, x):
        return self.fc(self.features(x))


@pytest.mark.parametrize("head", HEADS)
def test_every_head_learns_the_angle_through_fit(tmp_path, head):
    """A few seconds each, seeded: far better than guessing (90°) on photos it never saw.
    With the loss of another head (or none), the decoding would not match and it would not."""
    torch.set_num_threads(1)
    train = band_photos(tmp_path / "train", 12, seed=0)
    val = band_photos(tmp_path / "val", 4, seed=1)
    profile = get_profile("quick", image_size=32, epochs=10, time_budget_s=None, batch_size=16, train_repeats=8,
                          ema_decay=None, lr=3e-3, warmup_steps=0, min_scale=0.9, head=head, bins=36)
    torch.manual_seed(0)
    train_loader, val_loader = training.make_loaders(train, val, profile, val_rotations=8)
    summary = training.fit(SmallCNN(heads.num_outputs(head, 36)), train_loader, val_loader, profile,
                           tmp_path / "run", device="cpu", progress=False)
    assert summary["head"] == head and summary["num_outputs"] == heads.num_outputs(head, 36)
    assert summary["val"]["mae_deg"] < 45.0, (head, summary["val"])


@pytest.mark.parametrize("head", ["von_mises", "bins_expected"])
def test_a_checkpoint_keeps_its_head_for_evaluate_tta_and_gradcam(tmp_path, head, capsys):
    photos = band_photos(tmp_path / "photos", 6)
    profile = get_profile("quick", image_size=32, epochs=1, time_budget_s=None, batch_size=4, backbone="resnet18",
                          weights="random", width=8, head=head, warmup_steps=0, val_fraction=0.3)
    torch.manual_seed(0)
    summary = training.train_on_photos(photos, profile, tmp_path / "run", device="cpu", progress=False)
    model, metadata = models.load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    assert metadata["head"] == head and model.fc[-1].out_features == heads.num_outputs(head)
    result = evaluation.evaluate_folder(tmp_path / "run" / "best.pt", tmp_path / "photos", rotations=2, device="cpu")
    turned = evaluation.evaluate_folder(tmp_path / "run" / "best.pt", tmp_path / "photos", rotations=2, device="cpu",
                                        tta=True)
    assert result["head"] == head and result["n"] == turned["n"] == 12
    assert result["mae_deg"] != turned["mae_deg"]
    cams, predicted = gradcam.compute_gradcam(model, torch.randn(2, 3, 32, 32), head=head,
                                              target_layer=gradcam.default_target_layer(model))
    assert cams.shape == (2, 32, 32) and np.isfinite(cams).all() and predicted.shape == (2,)
    # the command line reads the head from the checkpoint, and refuses to call it another
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--images",
                     str(tmp_path / "photos"), "--rotations", "2", "--device", "cpu", "--head", head, "--json"]) == 0
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--images",
                     str(tmp_path / "photos"), "--head", "cos_sin_mse"]) == 2
    assert f"has the {head} head" in capsys.readouterr().err
    # and a resume under another head is refused, the difference named
    with pytest.raises(ValueError, match="head: saved"):
        training.train_on_photos(photos, dataclasses.replace(profile, head="angular", epochs=2), tmp_path / "run",
                                 device="cpu", progress=False, resume=True)
    assert summary["val"]["n"] > 0


def test_cli_train_takes_the_head(tmp_path):
    band_photos(tmp_path / "photos", 5)
    assert cli.main(["train", "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "run"), "--backbone",
                     "resnet18", "--weights", "random", "--epochs", "1", "--head", "classification_360",
                     "--device", "cpu", "--no-progress"]) == 0
    _, metadata = models.load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    assert metadata["head"] == "classification_360" and metadata["num_outputs"] == 360
