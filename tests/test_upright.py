"""The safe rule of `straighten` (rotation_utils.upright): the quarter-turn posterior, the line tilt,
the decision, its fit, and `benchmarks/straighten_mix.py` on photos of known angle."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from rotation_utils import cli, rotation, upright
from rotation_utils.straighten import StraightenSettings, straighten_photos

META = {"head": "cos_sin_mse", "image_size": 32}


class BrightSideUp(torch.nn.Module):
    """A stand-in model that reads "up" as the side where the input is brightest: it answers
    (cos θ, sin θ) of the angle the photo is turned by, so its four turns agree."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        grey = x.mean(dim=1)
        n, h, w = grey.shape
        ys = torch.linspace(1, -1, h)[None, :, None]  # up is +y
        xs = torch.linspace(-1, 1, w)[None, None, :]
        weight = grey - grey.mean(dim=(1, 2), keepdim=True)
        up = torch.stack(((weight * xs).mean(dim=(1, 2)), (weight * ys).mean(dim=(1, 2))), dim=1)
        theta = torch.atan2(up[:, 1], up[:, 0]) - math.pi / 2  # an upright photo's up points to +y
        return torch.stack((torch.cos(theta), torch.sin(theta)), dim=1) + 0 * self.dummy


class FixedAngle(torch.nn.Module):
    """Always the same answer, whatever the turn: the four turns cannot agree."""

    def __init__(self, angle_deg):
        super().__init__()
        self.angle = math.radians(angle_deg)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.tensor([[math.cos(self.angle), math.sin(self.angle)]]).repeat(len(x), 1) + 0 * self.dummy


def band_photo(path: Path, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 40, size=(96, 128, 3), dtype=np.uint8)
    arr[:28] = 230
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def lines_photo(size=(480, 360)) -> Image.Image:
    """A facade: a grid of dark straight lines on a light ground."""
    image = Image.new("RGB", size, (210, 205, 200))
    draw = ImageDraw.Draw(image)
    for x in range(20, size[0], 40):
        draw.line([(x, 0), (x, size[1])], fill=(40, 40, 40), width=3)
    for y in range(15, size[1], 30):
        draw.line([(0, y), (size[0], y)], fill=(60, 50, 40), width=3)
    return image


def test_posterior_is_the_prior_without_evidence_and_sure_when_the_turns_agree():
    post = upright.quarter_turn_posterior(np.zeros((4, 2)))
    assert post == pytest.approx(np.array(upright.QUARTER_PRIOR))
    agree = np.tile([[0.0, 1.0]], (4, 1))  # every turn reads the photo at 90°
    post = upright.quarter_turn_posterior(agree, kappa=3.0)
    assert post.shape == (4,) and post.sum() == pytest.approx(1.0) and np.argmax(post) == 1 and post[1] > 0.99
    weak = upright.quarter_turn_posterior(agree * 0.2, kappa=3.0)
    assert weak[1] < post[1], "shorter vectors (a less sure head) must give a weaker posterior"
    many = upright.quarter_turn_posterior(np.stack([agree, np.zeros((4, 2))]))
    assert many.shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(N, 4, 2\)"):
        upright.quarter_turn_posterior(np.zeros((3, 2)))


@pytest.mark.parametrize("tilt", [0.0, 4.0, -7.5])
def test_line_tilt_reads_a_tilted_facade(tilt):
    image = lines_photo()
    turned = image if tilt == 0 else rotation.rotate_image(image, tilt, border="crop")
    found = upright.line_tilt(turned)
    assert found.tilt_deg == pytest.approx(tilt, abs=0.3)
    assert found.support > 2.0 and found.both_axes > 1.0 and found.segments > 10
    assert upright.line_tilt(turned.rotate(90, expand=True)).tilt_deg == pytest.approx(tilt, abs=0.3), \
        "a quarter turn does not change the line tilt"


def test_line_tilt_of_noise_has_little_support():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert upright.line_tilt(noise).both_axes < upright.SAFE_RULE.line_min_support


def test_decide_safe_turns_only_when_sure_and_corrects_tilt_only_with_lines():
    sure_90 = np.tile([[0.0, 1.0]], (4, 1))
    lines = upright.LineTilt(3.0, 5.0, 40, 2.0)
    evidence = upright.PhotoEvidence(sure_90, 90.0, 1.0, lines)
    correction, reason, details = upright.decide_safe(evidence)
    assert correction == pytest.approx(-93.0) and "turned by 90°" in reason and "tilted +3.0°" in reason
    assert details["quarter_deg"] == 90.0 and len(details["p_turn"]) == 4
    assert upright.decide_safe(evidence, snap_90=True)[0] == pytest.approx(-90.0)
    assert upright.decide_safe(evidence, max_angle_deg=2.0)[0] == pytest.approx(-90.0)
    assert upright.decide_safe(evidence, min_confidence=1.5)[0] == pytest.approx(-3.0)
    unsure = upright.PhotoEvidence(sure_90 * 0.3, 90.0, 0.3, upright.LineTilt(3.0, 0.1, 2, 0.05))
    correction, reason, _ = upright.decide_safe(unsure)
    assert correction == 0.0 and "not turned" in reason and "too few straight lines" in reason
    small_tilt = upright.PhotoEvidence(None, 5.0, 1.0, lines, quarter_turns=False)
    assert upright.decide_safe(small_tilt)[0] == pytest.approx(-3.0)
    no_confidence = upright.PhotoEvidence(sure_90 * 0.01, 90.0, 0.01, None, confidence_known=False)
    correction, reason, _ = upright.decide_safe(no_confidence)
    assert correction == pytest.approx(-90.0) and "no confidence" in reason


def test_safe_rule_rejects_nonsense():
    with pytest.raises(ValueError, match="turn_threshold"):
        upright.SafeRule(turn_threshold=0.0)
    with pytest.raises(ValueError, match="prior"):
        upright.SafeRule(prior=(0.5, 0.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="rule must be"):
        StraightenSettings(rule="maybe")
    with pytest.raises(ValueError, match="min_confidence"):
        StraightenSettings(min_confidence=float("nan"))


def test_fit_keeps_harm_under_the_limit():
    rng = np.random.default_rng(0)
    evidences, true = [], []
    for i in range(60):
        turned = 90.0 * (i % 3 == 0)
        length = 1.0 if i % 2 else 0.15  # half the photos give only weak evidence
        noise = rng.normal(0, 25, 4)
        if i % 5 == 1:
            turned, noise = 0.0, noise + 90.0  # an upright photo the model misreads as turned
        angle = np.radians(turned + noise)
        evidences.append(upright.PhotoEvidence(np.stack([np.cos(angle), np.sin(angle)], 1) * length, 0.0, length,
                                               upright.LineTilt(None, 0.0, 0)))
        true.append(90.0 * (i % 3 == 0))
    rule, scores = upright.fit_safe_rule(evidences, true, harm_limit=0.1)
    corrections = np.array([upright.decide_safe(e, rule)[0] for e in evidences])
    upright_photos = np.array(true) == 0
    assert (np.abs(corrections[upright_photos]) > 2).mean() <= 0.1
    assert scores["mean_error_after"] < 30.0, "the fit must fix some of the turned photos (alone: 30°)"
    with pytest.raises(ValueError, match="upright"):
        upright.fit_safe_rule(evidences[:1], [90.0])


def test_straighten_by_default_turns_a_sure_quarter_turn_and_leaves_the_rest(tmp_path):
    upright_path = band_photo(tmp_path / "in" / "up.png", 0)
    image = Image.open(band_photo(tmp_path / "scratch" / "x.png", 1))
    image.transpose(Image.ROTATE_90).save(tmp_path / "in" / "sideways.png")  # turned 90° counter-clockwise
    records = {r.path: r for r in straighten_photos(BrightSideUp(), META, [tmp_path / "in"], tmp_path / "out",
                                                    progress=False)}
    assert records["sideways.png"].action == "straightened"
    assert records["sideways.png"].correction_deg == pytest.approx(-90.0)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "sideways.png")), np.asarray(image))
    assert records["up.png"].action == "unchanged" and "upright" in records["up.png"].reason
    assert (tmp_path / "out" / "up.png").read_bytes() == upright_path.read_bytes()
    # a model whose turns disagree is never sure: the photos are left alone, and the record says why
    for record in straighten_photos(FixedAngle(90.0), META, [tmp_path / "in"], tmp_path / "out2", progress=False):
        assert record.action == "unchanged" and record.details["quarter_deg"] == 0.0, record


def test_the_command_says_why_in_its_json_lines(tmp_path, capsys, monkeypatch):
    import rotation_utils.models as models

    band_photo(tmp_path / "in" / "a.png")
    monkeypatch.setattr(models, "load_checkpoint", lambda *a, **k: (FixedAngle(40.0), META))
    assert cli.main(["straighten", str(tmp_path / "in"), "--checkpoint", "x.pt", "--out", str(tmp_path / "o"),
                     "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["action"] == "unchanged" and "P=" in line["reason"] and "p_turn" in line["details"]


def test_mix_has_the_promised_shares_and_refuses_too_few_photos(tmp_path, load_script):
    mix = load_script("benchmarks/straighten_mix.py")
    true, kinds = mix.mix_angles(100, seed=3)
    assert kinds.count("upright") == 55 and kinds.count("tilted") == 25 and kinds.count("turned") == 20
    tilted = true[np.array(kinds) == "tilted"]
    assert np.all(np.abs(tilted) <= 12) and np.all(tilted != 0)
    turned = true[np.array(kinds) == "turned"]
    assert np.all(np.abs(turned - 90 * np.round(turned / 90)) <= 3) and set(np.round(turned / 90)) <= {1, 2, 3}
    for i in range(3):
        band_photo(tmp_path / "few" / f"{i}.png", i)
    with pytest.raises(SystemExit, match="at least 20 photos.*has 3"):
        mix.main(["--photos", str(tmp_path / "few"), "--checkpoint", "x.pt", "--out", str(tmp_path / "r.json")])


def test_mix_benchmark_scores_every_setting_from_one_reading(tmp_path, monkeypatch, load_script):
    mix = load_script("benchmarks/straighten_mix.py")
    for i in range(24):
        band_photo(tmp_path / "photos" / f"{i}.png", i)
    monkeypatch.setattr(mix.models, "load_checkpoint", lambda *a, **k: (BrightSideUp(), META))
    assert mix.main(["--photos", str(tmp_path / "photos"), "--checkpoint", "x.pt",
                     "--out", str(tmp_path / "r.json")]) == 0
    stored = json.loads((tmp_path / "r.json").read_text())
    results = stored["results"]
    assert stored["quarter_turn_reading"]["turned_likeliest_right"] == 1.0
    alone, safe = results["leave alone"], results["--rule safe (the default)"]
    assert alone["after_over_alone"] == pytest.approx(1.0) and alone["upright_harmed"] == 0.0
    assert safe["turned_fixed_within_5"] >= 0.75, "a model that reads the band must fix the quarter turns"
    assert safe["upright_harmed"] == 0.0 and safe["after_over_alone"] < 0.5
