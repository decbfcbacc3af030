"""Tests of rotation_utils.widgets (notebook 01) and rotation_utils.digits (notebook 02)."""
import gzip
import struct

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rotation_utils import angles, digits, widgets  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- widgets

def test_plot_angle_pair_reports_errors_across_the_seam():
    pair = widgets.plot_angle_pair(350, 10)
    assert pair.true_deg == pytest.approx(350.0)
    assert pair.predicted_deg == pytest.approx(10.0)
    assert pair.naive_error_deg == pytest.approx(340.0)
    assert pair.circular_error_deg == pytest.approx(20.0)
    np.testing.assert_allclose(pair.cos_sin, [np.cos(np.deg2rad(350)), np.sin(np.deg2rad(350))])
    title = pair.ax.get_title()
    assert "naive 340°" in title and "circular 20°" in title
    assert pair.ax.get_xlabel() and pair.ax.get_ylabel()
    assert "circular error 20.0°" in repr(pair)


def test_plot_angle_pair_wraps_inputs_and_uses_given_axes():
    fig, ax = plt.subplots()
    pair = widgets.plot_angle_pair(-10, 370, ax=ax)
    assert pair.ax is ax
    assert (pair.true_deg, pair.predicted_deg) == pytest.approx((350.0, 10.0))
    assert pair.circular_error_deg == pytest.approx(20.0)
    assert len(ax.lines) > 5   # circle, arcs, rays, points, projections


def test_angle_error_explorer_has_two_sliders_and_redraws():
    box = widgets.angle_error_explorer(true_deg=30, predicted_deg=40)
    sliders = box.children[0].children
    assert [s.value for s in sliders] == [30, 40]
    assert all("(°)" in s.description for s in sliders)
    sliders[1].value = 200          # triggers a redraw; must not raise
    assert sliders[1].value == 200


def test_encoding_losses_values():
    out = widgets.encoding_losses(10, np.array([350.0, 10.0, 190.0]))
    np.testing.assert_allclose(out["degrees_mse"], [340.0 ** 2, 0.0, 180.0 ** 2])
    np.testing.assert_allclose(out["cos_sin_mse"], [2 - 2 * np.cos(np.deg2rad(20)), 0.0, 4.0],
                               atol=1e-12)
    np.testing.assert_allclose(out["circular_error_deg"], [20.0, 0.0, 180.0])


def test_plot_encoding_losses_and_explorer():
    axes = widgets.plot_encoding_losses(10, predicted_deg=350)
    assert len(axes) == 2
    assert all("degrees" in ax.get_xlabel() for ax in axes)
    assert "degrees²" in axes[0].get_ylabel()
    box = widgets.encoding_loss_explorer(true_deg=5)
    assert box.children[0].children[0].value == 5


# ---------------------------------------------------------------- IDX files

def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand (big-endian header), independent of the reader."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write_mnist(folder, images, labels, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if compress:
            with gzip.open(folder / f"{stem}.gz", "wb") as f:
                f.write(data)
        else:
            (folder / stem).write_bytes(data)


@pytest.fixture
def tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_mnist(tmp_path / "mnist", images, labels)
    return tmp_path / "mnist", images, labels


def test_idx_round_trip_gz(tiny_mnist):
    folder, images, labels = tiny_mnist
    got_images, got_labels = digits.load_mnist_idx(folder)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64


def test_idx_round_trip_uncompressed(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    _write_mnist(tmp_path, images, np.array([7, 9], dtype=np.uint8), compress=False)
    got_images, got_labels = digits.load_mnist_idx(tmp_path)
    np.testing.assert_array_equal(got_images, images)
    assert got_labels.tolist() == [7, 9]


def test_read_idx_other_dtype(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=">f4")
    data = bytes([0, 0, 0x0D, 2]) + struct.pack(">2I", 2, 2) + values.tobytes()
    (tmp_path / "floats-idx2").write_bytes(data)
    np.testing.assert_array_equal(digits.read_idx(tmp_path / "floats-idx2"), values)


def test_truncated_idx_raises(tmp_path):
    data = _idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    (tmp_path / "cut-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        digits.read_idx(tmp_path / "cut-idx3-ubyte")


def test_truncated_gzip_raises(tmp_path):
    blob = gzip.compress(_idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8)))
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz"):
        digits.read_idx(tmp_path / "cut-idx3-ubyte.gz")


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "first two bytes"),
    (b"\x00\x00\x42\x01" + struct.pack(">I", 1) + b"\x00", "type code"),
    (b"\x00\x00\x08\x03\x00", "header"),
])
def test_malformed_idx_raises(tmp_path, data, message):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(ValueError, match=message):
        digits.read_idx(tmp_path / "bad")


def test_missing_folder_and_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST folder not found"):
        digits.load_mnist_idx(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        digits.load_mnist_idx(tmp_path / "empty")


def test_mismatched_images_and_labels_raise(tmp_path):
    _write_mnist(tmp_path, np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        digits.load_mnist_idx(tmp_path)


# ---------------------------------------------------------------- choosing the source

def test_load_digit_images_from_variable(tiny_mnist, monkeypatch, capsys):
    folder, images, labels = tiny_mnist
    monkeypatch.setenv(digits.MNIST_ENV, str(folder))
    d = digits.load_digit_images(digits=(1,))
    assert d.images.shape == (2, 28, 28) and d.images.dtype == np.float32
    np.testing.assert_allclose(d.images, images[labels == 1] / 255.0, atol=1e-6)
    assert d.labels.tolist() == [1, 1]
    printed = capsys.readouterr().out
    assert "MNIST" in printed and f"{digits.MNIST_ENV} is set" in printed


def test_load_digit_images_falls_back_to_sklearn(monkeypatch, capsys):
    monkeypatch.delenv(digits.MNIST_ENV, raising=False)
    d = digits.load_digit_images(digits=(3,))
    assert d.images.shape[1:] == (28, 28) and 150 < len(d.images) < 200
    assert set(d.labels.tolist()) == {3}
    assert 0.0 <= d.images.min() and d.images.max() <= 1.0
    # MNIST-style framing: the 20-pixel box is centred, the 4-pixel border is black
    assert d.images[:, :4, :].max() == 0.0 and d.images[:, -4:, :].max() == 0.0
    assert "scikit-learn" in capsys.readouterr().out


def test_named_but_missing_folder_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(digits.MNIST_ENV, str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match=digits.MNIST_ENV):
        digits.load_digit_images()


def test_relative_folder_is_also_looked_up_from_the_project_root(tiny_mnist, monkeypatch):
    folder = tiny_mnist[0]
    monkeypatch.setattr(digits, "PROJECT_ROOT", folder.parent)
    monkeypatch.chdir(folder)          # "mnist" is not a sub-folder of the current folder
    d = digits.load_digit_images(folder="mnist", verbose=False)
    assert len(d.images) == 5 and "MNIST" in d.source


# ---------------------------------------------------------------- dataset

def test_labels_match_counter_clockwise_rotation():
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 13:15, 17:26] = 1.0          # a bar pointing right (towards 0°) from the centre
    ds = digits.RotatedDigits(img, copies_per_image=12, seed=3)
    rows, cols = np.mgrid[:28, :28]
    for image, angle_deg in zip(ds.images[:, 0].numpy(), ds.angles_deg.numpy()):
        # direction of the bar's mass seen from the centre; image rows grow downwards
        x = np.sum(image * (cols - 13.5))
        y = np.sum(image * (13.5 - rows))
        bar_deg = np.rad2deg(np.arctan2(y, x))
        assert angles.circular_absolute_error_deg(bar_deg, angle_deg) < 5.0


def test_rotated_digits_shapes_and_angles():
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    ds = digits.RotatedDigits(images, copies_per_image=3, seed=1)
    assert len(ds) == 12
    image, angle = ds[5]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= float(angle) < 360.0
    assert ds.source_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    again = digits.RotatedDigits(images, copies_per_image=3, seed=1)
    assert torch.equal(ds.angles_deg, again.angles_deg)
    with pytest.raises(ValueError):
        digits.RotatedDigits(images[0])


def test_splits_never_share_a_source_digit():
    n = 20
    # each source image is a constant disc; its value survives rotation at the centre pixel
    yy, xx = np.mgrid[:28, :28]
    disc = ((yy - 13.5) ** 2 + (xx - 13.5) ** 2 < 8 ** 2).astype(np.float32)
    images = np.stack([disc * (i + 1) / n for i in range(n)])
    train, val = digits.make_rotated_splits(images, val_fraction=0.25, copies_train=3, copies_val=2)
    assert (len(train), len(val)) == (15 * 3, 5 * 2)
    ids = lambda ds: set(np.round(ds.images[:, 0, 14, 14].numpy() * n).astype(int).tolist())
    assert ids(train).isdisjoint(ids(val))
    assert len(ids(train) | ids(val)) == n
    with pytest.raises(ValueError):
        digits.make_rotated_splits(images[:2], val_fraction=0.1)


# ---------------------------------------------------------------- model and losses

def test_model_heads():
    x = torch.rand(5, 1, 28, 28)
    tanh_model, linear_model = digits.RotationCNN("tanh").eval(), digits.RotationCNN("linear").eval()
    assert tanh_model(x).shape == (5, 2) and linear_model(x).shape == (5, 2)
    big = tanh_model.squash(torch.tensor([[50.0, -50.0]]))
    assert big.abs().min() == 1.0            # float32 tanh saturates exactly
    with pytest.raises(ValueError):
        digits.RotationCNN("sigmoid")


def test_cosine_proximity_is_scale_invariant_and_its_gradient_shrinks_with_length():
    angle = torch.tensor([30.0, 200.0])
    v = torch.tensor([[0.3, 0.1], [-0.2, 0.05]])
    assert digits.cosine_proximity_loss(v, angle) == pytest.approx(
        float(digits.cosine_proximity_loss(10 * v, angle)), abs=1e-6)
    grads = []
    for scale in (1.0, 10.0):
        out = (scale * v).requires_grad_()
        digits.cosine_proximity_loss(out, angle).backward()
        # no component along the output: the loss never asks for a longer or shorter vector
        assert torch.allclose((out.grad * out).sum(dim=1), torch.zeros(2), atol=1e-6)
        grads.append(out.grad.norm())
    assert float(grads[0] / grads[1]) == pytest.approx(10.0, rel=1e-4)


def test_mse_loss_is_zero_on_target_and_pulls_to_the_circle():
    angle = torch.tensor([0.0, 90.0, 225.0])
    target = angles.encode_angle_deg(angle)
    assert float(digits.cos_sin_mse_loss(target, angle)) == pytest.approx(0.0, abs=1e-7)
    assert float(digits.cos_sin_mse_loss(3 * target, angle)) == pytest.approx(4.0, rel=1e-5)


def test_share_near_multiples():
    assert digits.share_near_multiples_deg([0, 44, 46, 90, 100], tol_deg=3) == pytest.approx(0.8)
    assert digits.share_near_multiples_deg([359.0, 181.0], tol_deg=3) == 1.0
    with pytest.raises(ValueError):
        digits.share_near_multiples_deg([])


def test_train_rejects_unknown_names():
    ds = digits.RotatedDigits(np.zeros((2, 28, 28), np.float32), copies_per_image=1)
    with pytest.raises(ValueError, match="loss"):
        digits.train_rotation_cnn(digits.RotationCNN(), ds, loss="l1")
    with pytest.raises(ValueError, match="optimizer"):
        digits.train_rotation_cnn(digits.RotationCNN(), ds, optimizer="lbfgs")


# ---------------------------------------------------------------- the experiment, small

@pytest.fixture(scope="module")
def threes():
    """Rotated scikit-learn 3s (offline, whatever the environment says): about 820 training
    and 280 validation images, split by source digit."""
    images, labels = digits.load_sklearn_digits()
    return digits.make_rotated_splits(images[labels == 3], val_fraction=0.25, copies_train=6,
                                      copies_val=6)


def _evaluate(model, val):
    predicted = digits.predict_angles_deg(model, val)
    assert predicted.shape == (len(val),)
    assert predicted.min() >= 0.0 and predicted.max() < 360.0
    mae = float(np.mean(angles.circular_absolute_error_deg(predicted, val.angles_deg.numpy())))
    return predicted, mae


def test_fixed_head_learns(threes):
    train, val = threes
    model = digits.RotationCNN("linear", seed=0)
    history = digits.train_rotation_cnn(model, train, loss="mse", optimizer="adam", lr=1e-3,
                                        epochs=3, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    predicted, mae = _evaluate(model, val)
    assert mae < 30.0, f"fixed head MAE {mae:.1f}° is not well below the 90° chance level"
    assert digits.share_near_multiples_deg(predicted) < 0.3


def test_broken_head_collapses_to_multiples_of_45(threes):
    train, val = threes
    model = digits.RotationCNN("tanh", seed=0)
    digits.train_rotation_cnn(model, train, loss="cosine_proximity", optimizer="sgd", lr=0.3,
                              epochs=3, progress=False)
    predicted, _ = _evaluate(model, val)
    outputs = digits.predict_outputs(model, val)
    # uniform angles would give about 0.13; the collapsed head piles up at 0°, 45°, 90°, ...
    assert digits.share_near_multiples_deg(predicted, tol_deg=3) > 0.5
    # the mechanism: most tanh outputs sit at ±1 (saturated)
    assert np.mean(np.abs(outputs) > 0.99) > 0.5


class _FixedAngleModel(torch.nn.Module):
    """Answers (cos θ, sin θ) of a fixed angle for every input: a stand-in with a known prediction."""

    def __init__(self, angle_deg: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.angle = np.deg2rad(angle_deg)

    def forward(self, x):
        out = torch.tensor([[np.cos(self.angle), np.sin(self.angle)]], dtype=torch.float32)
        return self.scale * out.expand(x.shape[0], 2)


def test_plot_straightening_reads_the_prediction_as_a_correction():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    metadata = {"image_size": 32, "head": "cos_sin_mse"}
    result = widgets.plot_straightening(_FixedAngleModel(350.0), metadata, image, turned_deg=-5.0)
    assert result.predicted_deg == pytest.approx(-10.0, abs=1e-4)
    assert result.correction_deg == pytest.approx(10.0, abs=1e-4)
    assert result.error_deg == pytest.approx(5.0, abs=1e-4)  # predicted −10° for a turn of −5°
    assert result.confidence == pytest.approx(1.0, abs=1e-5)
    assert len(result.fig.axes) == 3 and "turned back by +10.0°" in result.fig.axes[2].get_title()
    plt.close(result.fig)
    explorer = widgets.straighten_explorer(_FixedAngleModel(20.0), metadata, [image, image])
    photo, angle, tta = explorer.children[0].children
    assert (photo.max, angle.value, tta.value) == (1, 30.0, False)
    with pytest.raises(ValueError, match="at least one photo"):
        widgets.straighten_explorer(_FixedAngleModel(0.0), metadata, [])
    plt.close("all")
