"""Unit tests of rotation_utils.gradcam and rotation_utils.plots (random small models, Agg backend)."""
import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from PIL import Image

from rotation_utils import angles, plots
from rotation_utils.datasets import IMAGENET_MEAN, IMAGENET_STD
from rotation_utils.gradcam import AngleDirectionTarget, compute_gradcam, overlay_cam
from rotation_utils.models import build_resnet18_regressor

pytest.importorskip("pytorch_grad_cam")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    return model.eval()


def normalised_batch(n=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, 3, size, size, generator=g)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def axis_texts(ax):
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


# --------------------------------------------------------------------------- AngleDirectionTarget

@pytest.mark.parametrize("theta", [0.0, 30.0, 90.0, 200.0, 359.0])
def test_angle_direction_target_is_the_component_along_the_angle(theta):
    r = 0.7
    out = r * angles.encode_angle_deg(torch.tensor(theta))
    assert float(AngleDirectionTarget(theta)(out)) == pytest.approx(r, abs=1e-6)
    assert float(AngleDirectionTarget(theta + 90.0)(out)) == pytest.approx(0.0, abs=1e-6)
    assert float(AngleDirectionTarget(theta + 180.0)(out)) == pytest.approx(-r, abs=1e-6)
    assert float(AngleDirectionTarget(theta + 60.0)(out)) == pytest.approx(r * 0.5, abs=1e-6)
    assert float(AngleDirectionTarget(theta - 360.0)(out)) == pytest.approx(r, abs=1e-6)


def test_angle_direction_target_on_a_batch_is_a_dot_product():
    g = torch.Generator().manual_seed(1)
    outputs = torch.randn(5, 2, generator=g)
    phi = 37.0
    u = torch.tensor([math.cos(math.radians(phi)), math.sin(math.radians(phi))])
    got = AngleDirectionTarget(phi)(outputs)
    assert got.shape == (5,)
    assert torch.allclose(got, outputs @ u, atol=1e-6)
    assert "37.0" in repr(AngleDirectionTarget(phi))


# --------------------------------------------------------------------------- compute_gradcam

def test_compute_gradcam_maps_and_predicted_angles(random_model):
    images = normalised_batch(3, 64)
    cams, predicted = compute_gradcam(random_model, images)
    assert isinstance(cams, np.ndarray) and cams.shape == (3, 64, 64)
    assert np.all(np.isfinite(cams))
    assert cams.min() >= 0.0 and cams.max() <= 1.0 + 1e-6
    assert predicted.shape == (3,)
    assert np.all((predicted >= 0) & (predicted < 360))
    with torch.no_grad():
        expected = angles.decode_angle_deg(random_model(images)).numpy()
    assert np.allclose(predicted, expected, atol=1e-3)
    assert not random_model.training


def test_compute_gradcam_explains_the_asked_direction(random_model):
    images = normalised_batch(2, 64, seed=3)
    own, predicted = compute_gradcam(random_model, images)
    same, _ = compute_gradcam(random_model, images, target_angles_deg=predicted)
    assert np.allclose(own, same, atol=1e-5), "the default targets are the predicted angles"
    opposite, _ = compute_gradcam(random_model, images, target_angles_deg=predicted + 180.0)
    assert opposite.shape == own.shape
    assert opposite.min() >= 0.0 and opposite.max() <= 1.0 + 1e-6
    assert not np.allclose(own, opposite), "the opposite direction is explained by other evidence"


def test_compute_gradcam_other_layer_and_errors(random_model):
    images = normalised_batch(2, 64, seed=4)
    cams, _ = compute_gradcam(random_model, images, target_angles_deg=[10.0, 20.0],
                              target_layer=random_model.layer3[-1])
    assert cams.shape == (2, 64, 64)
    with pytest.raises(ValueError):
        compute_gradcam(random_model, images, target_angles_deg=[10.0, 20.0, 30.0])


def test_overlay_cam_colours_hot_and_cold_regions():
    image = normalised_batch(1, 32, seed=5)[0]
    cam = np.zeros((32, 32), dtype=np.float32)
    cam[:, :16] = 1.0
    overlay = overlay_cam(image, cam, image_weight=0.0)
    assert overlay.shape == (32, 32, 3) and overlay.dtype == np.uint8
    hot, cold = overlay[:, :16].reshape(-1, 3).mean(0), overlay[:, 16:].reshape(-1, 3).mean(0)
    assert hot[0] > hot[2] + 100, f"cam 1 should be red, got {hot}"
    assert cold[2] > cold[0] + 100, f"cam 0 should be blue, got {cold}"
    blended = overlay_cam(image, cam)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8


# --------------------------------------------------------------------------- plots

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_mae_deg": 80.0, "val_median_deg": 75.0},
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_mae_deg": 40.0, "val_median_deg": 30.0},
    {"epoch": 3, "train_loss": 0.3, "val_loss": 0.4, "val_mae_deg": 20.0, "val_median_deg": 12.0},
]


def test_plot_training_history_has_titles_units_and_the_data():
    fig = plots.plot_training_history(HISTORY, title="My run")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig._suptitle is not None and fig._suptitle.get_text() == "My run"
    ax_loss, ax_mae = fig.axes[:2]
    for ax in (ax_loss, ax_mae):
        title, xlabel, ylabel = axis_texts(ax)
        assert title and xlabel == "epoch" and ylabel
    assert "degrees" in ax_mae.get_ylabel()
    assert "(" in ax_loss.get_ylabel()  # a unit, even if "unitless"
    lines = {line.get_label(): line for line in ax_mae.get_lines()}
    assert list(lines["MAE"].get_ydata()) == [80.0, 40.0, 20.0]
    assert list(lines["median"].get_ydata()) == [75.0, 30.0, 12.0]
    assert list(lines["MAE"].get_xdata()) == [1, 2, 3]
    guessing = [line for line in ax_mae.get_lines() if "guess" in line.get_label()]
    assert guessing and set(guessing[0].get_ydata()) == {angles.RANDOM_GUESS_MAE_DEG}
    train = {line.get_label(): line for line in ax_loss.get_lines()}
    assert list(train["training"].get_ydata()) == [0.9, 0.5, 0.3]


def test_plot_error_analysis_panels_in_degrees():
    rng = np.random.default_rng(0)
    true_deg = rng.uniform(0, 360, 50)
    predicted = angles.wrap_angle_deg(true_deg + rng.normal(0, 10, 50))
    fig = plots.plot_error_analysis(true_deg, predicted, title="Check")
    axes = fig.axes
    assert len(axes) == 4
    for ax in axes:
        title, xlabel, ylabel = axis_texts(ax)
        assert title and xlabel and ylabel
        assert "degrees" in xlabel
    assert "degrees" in axes[0].get_ylabel() and "degrees" in axes[1].get_ylabel()
    scatter = [c for c in axes[0].collections if isinstance(c, PathCollection)][0]
    assert np.allclose(scatter.get_offsets(), np.column_stack([true_deg, predicted]))
    errors = angles.circular_absolute_error_deg(predicted, true_deg)
    heights = [patch.get_height() for patch in axes[2].patches]
    assert sum(heights) == 50
    summary = angles.summarize_errors(errors)
    suptitle = fig._suptitle.get_text()
    assert suptitle.startswith("Check") and f"MAE {summary['mae_deg']:.2f}°" in suptitle


def test_plot_error_analysis_uses_circular_errors():
    fig = plots.plot_error_analysis([359.0, 1.0], [1.0, 359.0])
    error_points = [c for c in fig.axes[1].collections if isinstance(c, PathCollection)][0]
    assert np.allclose(error_points.get_offsets()[:, 1], [2.0, 2.0]), "359° vs 1° is 2° apart"


def test_plot_gradcam_grid_titles_with_true_predicted_and_circular_error():
    overlays = [np.full((16, 16, 3), v, dtype=np.uint8) for v in (0, 120, 255)]
    fig = plots.plot_gradcam_grid(overlays, [350.0, 90.0, 10.0], [10.0, 100.0, 190.0], ncols=2, title="Where")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["true 350°, pred 10°\nerror 20°", "true 90°, pred 100°\nerror 10°",
                      "true 10°, pred 190°\nerror 180°"]
    assert fig._suptitle.get_text() == "Where"
    assert sum(1 for ax in fig.axes if ax.images) == 3


def test_show_images_accepts_tensors_pil_and_arrays():
    tensor = normalised_batch(1, 16)[0]
    pil = Image.new("RGB", (16, 16), (255, 0, 0))
    array = np.zeros((16, 16, 3), dtype=np.uint8)
    fig = plots.show_images([tensor, pil, array], titles=["a", "b", "c"], ncols=2, suptitle="grid")
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["a", "b", "c"]
    data = shown[0].images[0].get_array()
    assert data.shape == (16, 16, 3) and float(np.min(data)) >= 0.0 and float(np.max(data)) <= 1.0
    assert len(fig.axes) == 4  # a 2×2 grid, the last one empty


def test_save_figure_writes_a_png(tmp_path):
    fig = plots.plot_training_history(HISTORY)
    path = plots.save_figure(fig, tmp_path / "figures" / "history.png")
    assert path == tmp_path / "figures" / "history.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size[0] > 100 and image.size[1] > 100


def test_sample_reading_draws_the_prediction_the_error_and_both_maps(random_model, tmp_path):
    from PIL import Image

    from rotation_utils import datasets, widgets

    rng = np.random.default_rng(3)
    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    dataset = datasets.FixedRotationDataset(paths, 64, rotations=2, seed=0)
    reading = widgets.plot_sample_reading(random_model.eval(), dataset, 3)
    true_deg = dataset.samples[3][1]
    assert reading.true_deg == pytest.approx(true_deg, abs=1e-3)
    assert reading.error_deg == pytest.approx(float(angles.circular_absolute_error_deg(reading.predicted_deg, true_deg)))
    assert reading.confidence > 0 and len(reading.fig.axes) == 3
    assert f"error {reading.error_deg:.1f}°" in reading.fig.axes[0].get_title()
    assert "predicted direction" in reading.fig.axes[1].get_title() and "true" in reading.fig.axes[2].get_title()
    with pytest.raises(IndexError):
        widgets.plot_sample_reading(random_model, dataset, 4)
    explorer = widgets.sample_explorer(random_model, dataset, order=[3, 0, 1])
    assert explorer.children[0].max == 2
    with pytest.raises(ValueError, match="at least one sample"):
        widgets.sample_explorer(random_model, dataset, order=[])
