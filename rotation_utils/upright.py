"""Whether to turn a photo at all: the evidence and the decision rule behind ``straighten``'s default.

A straightener that corrects every photo by the network's one-pass angle makes a folder of real
photos *worse* than leaving it alone: most real photos are upright already, and a model that is
30-50° off on average turns each of them by a wrong angle. The safe rule (``rule="safe"``, the
default of ``rotation-course straighten``) acts only where the evidence is strong, and leaves the
photo as it is otherwise. It answers two questions apart, as real photos go wrong in two ways:

1. **A quarter turn?** (a camera held sideways or upside down: the EXIF-fix problem.) The model
   reads the photo in its four 90° turns (:func:`turn_evidence`); each answer, turned back, is a
   vector on the circle. With a prior over how real photos are turned (:data:`QUARTER_PRIOR`:
   mostly upright), the posterior over the four quarter turns is (:func:`quarter_turn_posterior`)

       P(q | x) ∝ P(q) · exp(κ Σₖ ⟨vₖ, u_q⟩),        q ∈ {0°, 90°, 180°, 270°}

   a von Mises likelihood of each turned-back answer vₖ (its length capped at 1, so a head's
   confidence weighs its vote) around the unit vector u_q. The photo is turned by −q only when
   q ≠ 0 and P(q | x) ≥ ``turn_threshold``. A turn by 90° is lossless.
2. **A small tilt?** The network is far too rough for a few degrees, so the tilt comes from a
   classical estimate: the dominant direction of the photo's line segments near the horizontal
   and vertical (OpenCV's line-segment detector, :func:`line_tilt`), which is exact on photos
   with straight edges and says how much line length supports it. The tilt is corrected only
   when lines running both ways (horizontal and vertical: walls, windows, frames) agree on it
   with at least ``line_min_support`` diagonals each: one family alone (a horizon in
   perspective, tree trunks, converging verticals) tilted upright photos too often. A line direction does not change under a
   quarter turn, so both corrections compose.

The constants of :data:`SAFE_RULE` were fitted by ``benchmarks/straighten_mix.py --fit-on`` on
photos of collections the model never trained on, and scored on yet other collections (see
``benchmarks/README.md``); :func:`fit_safe_rule` is that fit.

Angles are degrees, counter-clockwise: a photo "at 90°" shows its content turned a quarter turn
counter-clockwise, and is straightened by a correction of −90°.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["QUARTER_TURNS_DEG", "QUARTER_PRIOR", "SafeRule", "SAFE_RULE", "PhotoEvidence", "turn_evidence",
           "quarter_turn_posterior", "line_tilt", "LineTilt", "decide_safe", "fit_safe_rule"]

#: The four quarter turns, degrees counter-clockwise, in the order of every (…, 4) array here.
QUARTER_TURNS_DEG = (0.0, 90.0, 180.0, 270.0)
#: How real photos are turned before straightening (a prior, summing to 1): upright or nearly
#: (80%); a quarter turn either way (a camera held sideways) more often than upside down.
QUARTER_PRIOR = (0.80, 0.075, 0.05, 0.075)


@dataclass(frozen=True)
class SafeRule:
    """The safe rule's constants.

    kappa: concentration of the von Mises likelihood of each turned-back answer (per unit of
    vector length). turn_threshold: the posterior a quarter turn needs, in (0, 1]. prior: P(q)
    for the four quarter turns (:data:`QUARTER_PRIOR`). line_min_support: the line length, in
    image diagonals, that must agree within ±1° on a tilt, *both* among the near-horizontal and
    among the near-vertical segments (``LineTilt.both_axes``), before it is corrected. max_tilt_deg:
    the largest tilt the lines may correct, degrees. min_tilt_deg: smaller tilts are left alone.
    Raises ValueError for values outside those ranges.
    """

    kappa: float = 2.0
    turn_threshold: float = 0.99
    prior: tuple = QUARTER_PRIOR
    line_min_support: float = 1.0
    max_tilt_deg: float = 15.0
    min_tilt_deg: float = 0.3

    def __post_init__(self):
        if not (self.kappa > 0 and math.isfinite(self.kappa)):
            raise ValueError(f"kappa must be a positive number, got {self.kappa}")
        if not 0 < self.turn_threshold <= 1:
            raise ValueError(f"turn_threshold must be in (0, 1], got {self.turn_threshold}")
        prior = np.asarray(self.prior, dtype=np.float64)
        if prior.shape != (4,) or not np.all(prior > 0) or not np.isclose(prior.sum(), 1.0):
            raise ValueError(f"prior must be 4 positive probabilities summing to 1, got {self.prior}")
        if not self.line_min_support >= 0:
            raise ValueError(f"line_min_support must be ≥ 0, got {self.line_min_support}")
        if not 0 < self.max_tilt_deg <= 45:
            raise ValueError(f"max_tilt_deg must be in (0, 45], got {self.max_tilt_deg}")
        if not 0 <= self.min_tilt_deg < self.max_tilt_deg:
            raise ValueError(f"min_tilt_deg must be in [0, max_tilt_deg), got {self.min_tilt_deg}")


#: The default rule: :func:`fit_safe_rule` (harm ≤ 2%) on the mixes of 669 photos of four collections
#: that the laptop recipe, trained on the three others, never saw (BSDS500, SUN80, CamVid,
#: McMaster; ``benchmarks/README.md``, "Does straighten do harm?").
SAFE_RULE = SafeRule(kappa=2.0, turn_threshold=0.99, line_min_support=1.0)


@dataclass
class LineTilt:
    """The dominant line direction of a photo: ``tilt_deg`` (degrees counter-clockwise that the
    photo's content is turned from the axes, in (−45, 45]; None when no line is near an axis),
    ``support`` (the length of the segments within ±1° of it, in image diagonals) and
    ``segments`` (how many segments were found near the axes); ``both_axes``: the smaller of
    the supports of the near-horizontal and the near-vertical segments at that tilt (straight
    edges of buildings and rooms run both ways; a horizon or tree trunks one way only)."""

    tilt_deg: float | None
    support: float
    segments: int
    both_axes: float = 0.0


@dataclass
class PhotoEvidence:
    """What the safe rule reads about one photo.

    turned_back: (4, 2) the model's answers for the photo turned by 0°, 90°, 180°, 270°
    counter-clockwise, each turned back by its own turn (vectors on the circle; direction = the
    photo's angle as that turn reads it). one_pass_deg, one_pass_confidence: the unturned answer
    (degrees counter-clockwise in [0, 360), and the head's confidence). lines: :class:`LineTilt`,
    or None when lines were not looked for. quarter_turns: False for a small-tilt model (trained
    within less than ±90°), whose turned answers mean nothing. confidence_known: False for a
    head whose vector length is no confidence (the turns' agreement alone then counts).
    """

    turned_back: np.ndarray | None
    one_pass_deg: float
    one_pass_confidence: float
    lines: LineTilt | None
    quarter_turns: bool = True
    confidence_known: bool = True


def turn_evidence(model, batch, head: str = "cos_sin_mse", bins: int = 72):
    """The model's answers to the four 90° turns of a batch, each turned back.

    batch: (N, 3, S, S) model inputs. Returns (turned_back (N, 4, 2) float32 NumPy array,
    :func:`rotation_utils.evaluation.turn_back`; raw outputs of the unturned batch). Source:
    RotNet-style turns (:func:`rotation_utils.evaluation.turn_average` averages the same four).
    """
    import torch

    from .evaluation import turn_back
    from .heads import resultant

    raws = [model(torch.rot90(batch, k, dims=(-2, -1))) for k in range(4)]
    answers = turn_back([resultant(head, raw.float(), bins) for raw in raws])
    return answers.cpu().numpy().astype(np.float32), raws[0]


def _capped(vectors: np.ndarray, confidence_known: bool = True) -> np.ndarray:
    """Vectors (…, 2) with their length capped at 1 (or set to 1 when the length means nothing)."""
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    scale = np.where(length > 0, (np.minimum(length, 1.0) if confidence_known else 1.0) / np.maximum(length, 1e-12), 0.0)
    return vectors * scale


def quarter_turn_posterior(turned_back, kappa: float = SAFE_RULE.kappa, prior=QUARTER_PRIOR,
                           confidence_known: bool = True) -> np.ndarray:
    """P(q | x) over the four quarter turns q = 0°, 90°, 180°, 270° (counter-clockwise).

    turned_back: (4, 2) or (N, 4, 2) turned-back answers (:func:`turn_evidence`); their
    lengths are capped at 1 (set to 1 when ``confidence_known`` is False). kappa: the von Mises
    concentration per unit length; prior: (4,) probabilities. Returns (4,) or (N, 4), rows
    summing to 1. Raises ValueError for a wrong shape.
    """
    turned_back = np.asarray(turned_back, dtype=np.float64)
    single = turned_back.ndim == 2
    if single:
        turned_back = turned_back[None]
    if turned_back.ndim != 3 or turned_back.shape[1:] != (4, 2):
        raise ValueError(f"turned_back must be (4, 2) or (N, 4, 2), got {turned_back.shape}")
    total = _capped(turned_back, confidence_known).sum(axis=1)  # (N, 2)
    q = np.radians(QUARTER_TURNS_DEG)
    log_like = kappa * (total[:, :1] * np.cos(q)[None] + total[:, 1:] * np.sin(q)[None])  # (N, 4)
    log_post = log_like + np.log(np.asarray(prior, dtype=np.float64))[None]
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    post /= post.sum(axis=1, keepdims=True)
    return post[0] if single else post


def line_tilt(image, max_tilt_deg: float = 15.0, max_side: int = 640, min_length: float = 0.03) -> LineTilt:
    """The tilt of a photo read from its straight lines (OpenCV's line-segment detector, LSD:
    von Gioi et al. 2010, ``cv2.createLineSegmentDetector``).

    image: a PIL image (any mode; read as greyscale, scaled so its longer side is at most
    ``max_side`` pixels). Segments shorter than ``min_length`` image diagonals are ignored;
    each other one's direction, reduced modulo 90° to (−45°, 45°], votes with its length when
    it lies within ±``max_tilt_deg`` of an axis. The tilt is the length-weighted mean of the
    votes within ±1° of the strongest 0.25° bin (a histogram smoothed over ±0.5°), so a few
    converging verticals do not pull it. Returns :class:`LineTilt` (degrees counter-clockwise:
    the correction is −tilt). Raises ImportError with an install hint when OpenCV is missing.
    """
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - opencv is in the course's extra
        raise ImportError("line_tilt needs OpenCV: pip install opencv-python-headless") from err
    grey = image.convert("L")
    scale = min(1.0, max_side / max(grey.size))
    if scale < 1.0:
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))))
    pixels = np.asarray(grey, dtype=np.uint8)
    diagonal = math.hypot(*pixels.shape)
    found = cv2.createLineSegmentDetector().detect(pixels)[0]
    if found is None:
        return LineTilt(None, 0.0, 0)
    x1, y1, x2, y2 = found.reshape(-1, 4).astype(np.float64).T
    length = np.hypot(x2 - x1, y2 - y1) / diagonal
    direction = np.degrees(np.arctan2(-(y2 - y1), x2 - x1))  # image y points down: negate for counter-clockwise
    reduced = (direction + 45.0) % 90.0 - 45.0
    keep = (length >= min_length) & (np.abs(reduced) <= max_tilt_deg)
    if not keep.any():
        return LineTilt(None, 0.0, 0)
    reduced, length = reduced[keep], length[keep]
    vertical = (np.abs((direction[keep] % 180.0) - 90.0) < 45.0)
    edges = np.arange(-max_tilt_deg, max_tilt_deg + 0.25, 0.25)
    hist, _ = np.histogram(reduced, bins=edges, weights=length)
    smooth = np.convolve(hist, np.ones(5), mode="same")  # ±0.5°
    peak = 0.5 * (edges[np.argmax(smooth)] + edges[np.argmax(smooth) + 1])
    near = np.abs(reduced - peak) <= 1.0
    tilt = float(np.average(reduced[near], weights=length[near]))
    both = min(float(length[near & vertical].sum()), float(length[near & ~vertical].sum()))
    return LineTilt(tilt, float(length[near].sum()), int(keep.sum()), both)


def _wrap(angle_deg: float) -> float:
    """The angle in (−180, 180] degrees."""
    from .angles import signed_angle_difference_deg

    return float(-signed_angle_difference_deg(0.0, angle_deg)) + 0.0  # + 0.0: no -0.0


def decide_safe(evidence: PhotoEvidence, rule: SafeRule = SAFE_RULE, snap_90: bool = False,
                max_angle_deg: float | None = None, min_confidence: float | None = None) -> tuple[float, str, dict]:
    """The safe rule's decision for one photo: ``(correction_deg, reason, details)``.

    correction_deg: the turn to apply, degrees counter-clockwise in (−180, 180] (0: leave the
    photo alone). reason: in words, what was decided and why. details: the numbers behind it
    (``p_turn``: the posterior of the four quarter turns, ``quarter_deg``, ``line_tilt_deg``,
    ``line_support``). snap_90: quarter turns only, no tilt; max_angle_deg: no tilt correction
    beyond ±D°; min_confidence: a quarter turn also needs the turns' mean vector length ≥ C.
    Source: the module's docstring (a von Mises likelihood with a prior, and LSD lines).
    """
    details: dict = {}
    reasons = []
    quarter = 0.0
    if evidence.quarter_turns and evidence.turned_back is not None:
        post = quarter_turn_posterior(evidence.turned_back, rule.kappa, rule.prior, evidence.confidence_known)
        details["p_turn"] = [round(float(p), 3) for p in post]
        best = int(np.argmax(post))
        mean_length = float(np.linalg.norm(_capped(evidence.turned_back, evidence.confidence_known).mean(axis=0)))
        if best == 0:
            reasons.append(f"upright at P={post[0]:.2f}")
        elif post[best] < rule.turn_threshold:
            reasons.append(f"a turn by {QUARTER_TURNS_DEG[best]:g}° is likeliest but only at P={post[best]:.2f} "
                           f"< {rule.turn_threshold:g}: not turned")
        elif min_confidence is not None and mean_length < min_confidence:
            reasons.append(f"a turn by {QUARTER_TURNS_DEG[best]:g}° at P={post[best]:.2f}, but the turns' vector "
                           f"length {mean_length:.2f} is below --min-confidence {min_confidence:g}: not turned")
        else:
            quarter = QUARTER_TURNS_DEG[best]
            reasons.append(f"turned by {quarter:g}° at P={post[best]:.2f}")
        if not evidence.confidence_known:
            reasons.append("this head gives no confidence: the four turns' agreement alone")
    else:
        reasons.append("no quarter-turn decision (the model was trained on small tilts only)")
    details["quarter_deg"] = quarter
    tilt = 0.0
    lines = evidence.lines
    if lines is not None:
        details["line_tilt_deg"] = None if lines.tilt_deg is None else round(lines.tilt_deg, 2)
        details["line_support"] = round(lines.support, 2)
        details["line_support_both_axes"] = round(lines.both_axes, 2)
    if snap_90:
        reasons.append("no tilt correction (--snap 90)")
    elif lines is None:
        reasons.append("lines not read")
    elif lines.tilt_deg is None or lines.both_axes < rule.line_min_support:
        reasons.append(f"too few straight lines both ways to read a tilt ({lines.both_axes:.2f} < "
                       f"{rule.line_min_support:g} diagonals)")
    elif abs(lines.tilt_deg) < rule.min_tilt_deg:
        reasons.append(f"lines level ({lines.tilt_deg:+.2f}°)")
    elif abs(lines.tilt_deg) > min(rule.max_tilt_deg, max_angle_deg or 180.0):
        reasons.append(f"lines at {lines.tilt_deg:+.1f}°, beyond the tilts corrected")
    else:
        tilt = lines.tilt_deg
        reasons.append(f"lines tilted {tilt:+.1f}° ({lines.both_axes:.1f} diagonals both ways agree)")
    return _wrap(-quarter - tilt), "; ".join(reasons), details


def mix_error_after(true_deg, correction_deg) -> np.ndarray:
    """Circular absolute error (degrees, in [0, 180]) of photos at ``true_deg`` (counter-
    clockwise) after turning each by ``correction_deg``: |wrap(true + correction)|. (N,) arrays."""
    from .angles import circular_absolute_error_deg

    residual = np.asarray(true_deg, dtype=np.float64) + np.asarray(correction_deg, dtype=np.float64)
    return circular_absolute_error_deg(residual, np.zeros_like(residual))


def fit_safe_rule(evidences, true_deg, harm_limit: float = 0.02, kappas=(0.5, 1, 2, 3, 4, 6),
                  thresholds=(0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99), supports=(0.25, 0.5, 1.0, 2.0),
                  base: SafeRule = SAFE_RULE) -> tuple[SafeRule, dict]:
    """Fit κ, the turn threshold and the line support on photos of known angle.

    evidences: :class:`PhotoEvidence` per photo; true_deg: (N,) their true angles (degrees
    counter-clockwise). Of every combination, keep those that harm at most ``harm_limit`` of the
    upright photos (|true| < 0.5°; turned by more than 2°) and take the one with the lowest mean
    error after. Fit on collections the rule will not be scored on. Returns (rule, scores of the
    choice: mean_error_after, harmed; when no combination is safe enough, a rule that never acts
    and None scores). Raises ValueError for no photos or no upright photo.
    """
    true_deg = np.asarray(true_deg, dtype=np.float64)
    if len(evidences) == 0 or len(evidences) != len(true_deg):
        raise ValueError("fit_safe_rule needs one true angle per evidence, and at least one photo")
    upright = np.abs(np.array([_wrap(t) for t in true_deg])) < 0.5
    if not upright.any():
        raise ValueError("fit_safe_rule needs upright photos among its photos, to measure harm")
    best = None
    for kappa in kappas:
        for threshold in thresholds:
            for support in supports:
                rule = replace(base, kappa=float(kappa), turn_threshold=float(threshold), line_min_support=float(support))
                corrections = np.array([decide_safe(e, rule)[0] for e in evidences])
                errors = mix_error_after(true_deg, corrections)
                harmed = float((np.abs(corrections[upright]) > 2.0).mean())
                if harmed > harm_limit:
                    continue
                score = (float(errors.mean()), harmed)
                if best is None or score < best[1]:
                    best = (rule, score)
    if best is None:  # nothing is safe enough: never act
        return replace(base, turn_threshold=1.0, line_min_support=float("inf")), {"mean_error_after": None,
                                                                                 "harmed": None}
    return best[0], {"mean_error_after": best[1][0], "harmed": best[1][1]}
