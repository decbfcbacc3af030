"""A mix of photos as they come, and how each way of straightening them scores on it.

Taught in notebook 09 (section "Do no harm"); ``benchmarks/straighten_mix.py`` runs the same on
whole collections. From upright photos, :func:`mix_angles` draws a seeded mix as real photos
come: 55% left upright, 25% tilted uniformly within ±12°, 20% turned by a quarter or half turn
(90°, 180° or 270°, counter-clockwise) plus a tilt within ±3°. :func:`read_mix` turns each photo
(``rotation.rotate_image``, ``crop`` border, so no corner shows) and reads the model's evidence
once (:func:`rotation_utils.straighten.photo_evidence`: the four 90° turns and the straight
lines); :func:`corrections` then gives every setting of ``rotation-course straighten`` from that
same evidence, and :func:`score` the mean circular error after, the share of upright photos
harmed (turned by more than 2°) and the share of the others fixed (within 5° of upright).
Angles are degrees, counter-clockwise.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from . import angles, rotation, sources, upright
from .straighten import photo_evidence

__all__ = ["MIX", "TILT_DEG", "TURN_TILT_DEG", "MIN_PHOTOS", "mix_angles", "read_mix", "corrections", "score",
           "quarter_turn_reading"]

#: The mix: shares of upright, tilted (±12°) and quarter-turned (+ ±3°) photos.
MIX = {"upright": 0.55, "tilted": 0.25, "turned": 0.20}
TILT_DEG, TURN_TILT_DEG = 12.0, 3.0
#: A mix needs at least this many photos (so that each kind holds a few).
MIN_PHOTOS = 20


def mix_angles(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """The true angles (degrees counter-clockwise, (N,)) and kinds of a seeded mix of n photos:
    exactly round(share × n) of each kind (:data:`MIX`), in a shuffled order."""
    rng = np.random.default_rng(seed)
    n_tilted, n_turned = round(MIX["tilted"] * n), round(MIX["turned"] * n)
    kinds = ["tilted"] * n_tilted + ["turned"] * n_turned + ["upright"] * (n - n_tilted - n_turned)
    kinds = [kinds[i] for i in rng.permutation(n)]
    true = np.zeros(n)
    for i, kind in enumerate(kinds):
        if kind == "tilted":
            true[i] = rng.uniform(-TILT_DEG, TILT_DEG)
        elif kind == "turned":
            true[i] = 90.0 * int(rng.integers(1, 4)) + rng.uniform(-TURN_TILT_DEG, TURN_TILT_DEG)
    return true, kinds


def read_mix(model, metadata, paths, seed: int, batch_size: int = 16, label: str = "",
             progress: bool = True) -> tuple[list, np.ndarray, list]:
    """Build the mix of ``paths`` and read the model's evidence of each photo.

    model, metadata: as :func:`rotation_utils.models.load_checkpoint` returns them. paths: upright
    photos. Returns (evidences: :class:`rotation_utils.upright.PhotoEvidence` per photo, true
    angles (N,) degrees, kinds). Raises what :func:`rotation_utils.sources.load_image` raises
    for an unreadable photo.
    """

    true, kinds = mix_angles(len(paths), seed)
    head, bins = metadata.get("head", "cos_sin_mse"), int(metadata.get("bins", 72))
    size = int(metadata.get("image_size") or (metadata.get("profile") or {}).get("image_size") or 224)
    evidences = []
    start = time.perf_counter()
    for first in range(0, len(paths), batch_size):
        images = []
        for path, angle in zip(paths[first:first + batch_size], true[first:first + batch_size]):
            image = sources.load_image(path)
            images.append(image if angle == 0 else rotation.rotate_image(image, float(angle), border="crop"))
        evidences += photo_evidence(model, images, size, head, bins)
        if progress:
            print(f"  {label}: {len(evidences)}/{len(paths)} photos read ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    return evidences, true, kinds


def corrections(evidences, rules: dict) -> dict:
    """Every setting's corrections (degrees counter-clockwise, (N,)) from the same evidence:
    leave alone, ``--rule always`` (one pass, ``--tta``, ``--snap 90 --tta``), each rule of
    ``rules`` (name: :class:`rotation_utils.upright.SafeRule`) with and without ``--snap 90``,
    and the lines alone."""
    one_pass = angles.signed_angle_difference_deg(np.array([e.one_pass_deg for e in evidences]), 0.0)
    tta = angles.signed_angle_difference_deg(  # the direction of the four turns' mean vector (--tta)
        angles.decode_angle_deg(np.stack([e.turned_back.mean(axis=0) for e in evidences])), 0.0)
    out = {"leave alone": np.zeros(len(evidences)),
           "--rule always (the old default)": -one_pass,
           "--rule always --tta": -tta,
           "--rule always --snap 90 --tta": -90.0 * np.round(tta / 90.0)}
    for name, rule in rules.items():
        out[name] = np.array([upright.decide_safe(e, rule)[0] for e in evidences])
        out[name + " --snap 90"] = np.array([upright.decide_safe(e, rule, snap_90=True)[0] for e in evidences])
    lines_only = [replace(e, quarter_turns=False) for e in evidences]
    out["lines alone (no quarter turns)"] = np.array([upright.decide_safe(e, upright.SAFE_RULE)[0] for e in lines_only])
    return out


def score(true, kinds, correction) -> dict:
    """Mean error after (degrees), after / leave alone, the harmed share of upright photos (turned
    by more than 2°) and the fixed share (within 5°) of the others, of the turned and of the
    tilted ones. true, correction: (N,) degrees; kinds: (N,) strings of :data:`MIX`."""
    kinds = np.asarray(kinds)
    after = upright.mix_error_after(true, correction)
    alone = angles.circular_absolute_error_deg(np.asarray(true, dtype=np.float64), np.zeros(len(true)))
    moved = kinds != "upright"
    return {"mean_error_after_deg": float(after.mean()), "after_over_alone": float(after.mean() / alone.mean()),
            "upright_harmed": float((np.abs(correction[kinds == "upright"]) > 2.0).mean()),
            "others_fixed_within_5": float((after[moved] <= 5.0).mean()),
            "turned_fixed_within_5": float((after[kinds == "turned"] <= 5.0).mean()),
            "tilted_fixed_within_5": float((after[kinds == "tilted"] <= 5.0).mean())}


def quarter_turn_reading(evidences, true, kinds, rule=upright.SAFE_RULE) -> dict:
    """How often the likeliest quarter turn of the posterior is the right one, whatever its
    probability: for the turned photos and for the upright ones (the ceiling of any threshold)."""
    posterior = upright.quarter_turn_posterior(np.stack([e.turned_back for e in evidences]), rule.kappa, rule.prior)
    right = posterior.argmax(axis=1) == (np.round(np.asarray(true) / 90.0).astype(int) % 4)
    kinds = np.asarray(kinds)
    return {"turned_likeliest_right": float(right[kinds == "turned"].mean()),
            "upright_likeliest_right": float(right[kinds == "upright"].mean())}
