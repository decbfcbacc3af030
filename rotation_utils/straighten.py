"""Straightening real photos with a trained model, safely (``rotation-course straighten``).

The anchor is RotNet's ``correct_rotation.py`` (d4nst/RotNet) and what its users ran into: with
no output folder it overwrote the input photos; users asked for a 0/90/180/270 mode (its issues
#7 and #50) and for fixing small tilts (#16). Here:

- the inputs are never written: the output folder may not be, hold or lie inside an input;
  every output is written to a temporary name and renamed, so an interrupted run leaves no
  half file, and a second run skips the files already written (``--overwrite`` to redo them);
- each photo is read with the course's bad-input rules (EXIF orientation first, strict JPEG
  decoding, :func:`rotation_utils.sources.load_image`); a bad file is reported with its
  reason and the others go on;
- the angle comes from the model's own preprocessing (the centred square at its input size),
  optionally averaged over the four 90° turns (``tta``); the photo is turned back by it and
  cropped to the largest upright rectangle (``crop``) or expanded (``expand``);
- by default (``rule="safe"``, :mod:`rotation_utils.upright`) a photo is turned only where the
  evidence is strong: a quarter turn when its posterior over the four turns, with a prior that
  real photos are mostly upright, reaches a threshold, and a small tilt when enough straight
  lines agree on it; everything else is left as it is, and the record says why. The old
  behaviour, a correction by every prediction, is ``rule="always"``;
- ``snap_90`` corrects by quarter turns only (lossless turns), ``max_angle_deg`` only corrects
  tilts within ±D°, ``min_confidence`` leaves unsure photos as they are.

Every decision is one :class:`StraightenRecord`: ``path``, ``angle_deg`` (predicted,
counter-clockwise), ``correction_deg`` (what was applied, counter-clockwise), ``confidence``,
``action`` (``straightened``, ``unchanged``, ``skipped``) and ``reason``.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import write_atomically
from .sources import IMAGE_EXTENSIONS, BadImageError, load_image
from .upright import SAFE_RULE, PhotoEvidence, SafeRule, decide_safe, line_tilt, turn_evidence

__all__ = ["RULES", "StraightenRecord", "StraightenSettings", "photo_evidence", "collect_photos", "check_output_folder",
           "predict_photo_angles", "straighten_image", "straighten_photos", "ACTIONS"]

ACTIONS = ("straightened", "unchanged", "skipped")
#: ``rule`` of :class:`StraightenSettings`: ``safe`` (the default; :mod:`rotation_utils.upright`) or
#: ``always`` (correct every photo by its predicted angle, as RotNet's ``correct_rotation.py``).
RULES = ("safe", "always")
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
            ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM"}


@dataclass
class StraightenRecord:
    """What ``straighten`` did with one file (one JSON line of ``--json``).

    path: the input as given (relative to its input folder when it came from one). angle_deg:
    the predicted angle in degrees, counter-clockwise, in (-180, 180], or None when the photo
    could not be read. correction_deg: the turn applied, counter-clockwise (0 when unchanged).
    confidence: the head's confidence (the output length for the (cos θ, sin θ) head). action:
    one of :data:`ACTIONS`. reason: why, in words. output: the file written, or None.
    details: the safe rule's numbers (:func:`rotation_utils.upright.decide_safe`), or None.
    """

    path: str
    angle_deg: float | None
    correction_deg: float
    confidence: float | None
    action: str
    reason: str
    output: str | None = None
    details: dict | None = None

    def as_json(self) -> dict:
        """The record as a dict for ``json.dumps`` (floats rounded to 0.01)."""
        out = asdict(self)
        if out["details"] is None:
            del out["details"]
        for key in ("angle_deg", "correction_deg", "confidence"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 2)
        return out


@dataclass
class StraightenSettings:
    """The choices of ``straighten``: rule (one of :data:`RULES`), border (``"crop"`` or
    ``"expand"``), snap_90, max_angle_deg (None: no limit), min_confidence (None: no limit), tta
    (rule ``always``; the safe rule always reads the four turns), overwrite, batch_size, and
    safe_rule (the safe rule's constants, :data:`rotation_utils.upright.SAFE_RULE`). Raises
    ValueError for a value out of range."""

    rule: str = "safe"
    border: str = "crop"
    snap_90: bool = False
    max_angle_deg: float | None = None
    min_confidence: float | None = None
    tta: bool = False
    overwrite: bool = False
    batch_size: int = 16
    safe_rule: SafeRule = SAFE_RULE

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.min_confidence is not None and not (self.min_confidence >= 0 and np.isfinite(self.min_confidence)):
            raise ValueError(f"min_confidence must be a number ≥ 0, got {self.min_confidence}")
        if self.border not in ("crop", "expand"):
            raise ValueError(f"border must be 'crop' or 'expand', got {self.border!r}")
        if self.max_angle_deg is not None and not 0 < self.max_angle_deg <= 180:
            raise ValueError(f"max_angle_deg must be in (0, 180], got {self.max_angle_deg}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


def collect_photos(inputs) -> tuple[list[tuple[Path, Path, str]], list[StraightenRecord]]:
    """The photos to straighten: files given directly, and every file with an image extension
    under the folders given (searched recursively; links to folders are not followed, so a
    symlink loop cannot trap the search). Returns ``(photos, problems)``: photos as
    ``(path, input root, relative name)``, and a skipped record for each link that is not followed.
    Raises FileNotFoundError for an input that does not exist.
    """
    photos, problems = [], []
    for given in inputs:
        given = Path(given)
        if not given.exists() and not given.is_symlink():
            raise FileNotFoundError(f"no such file or folder: {given}")
        if given.is_dir():
            for folder, dirs, files in os.walk(given, followlinks=False):
                folder = Path(folder)
                dirs.sort()
                for name in list(dirs):
                    if (folder / name).is_symlink():
                        problems.append(StraightenRecord(str((folder / name).relative_to(given)), None, 0.0, None,
                                                         "skipped", "a link to a folder, not followed"))
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                        path = folder / name
                        photos.append((path, given, str(path.relative_to(given))))
        else:
            photos.append((given, given.parent, given.name))
    return photos, problems


def check_output_folder(out, inputs) -> Path:
    """``out`` as a Path, after making sure that writing there can never touch an input:
    it may not be an input folder, lie inside one, or hold an input. Raises ValueError."""
    out = Path(out)
    target = out.resolve()
    for given in inputs:
        source = Path(given).resolve()
        folder = source if source.is_dir() else source.parent
        if target == folder or folder in target.parents:
            raise ValueError(f"--out {out} is {'an input folder' if target == folder else 'inside the input folder ' + str(given)}: "
                             "choose a folder outside the inputs, so that no photo can be overwritten")
        if target in source.parents:
            raise ValueError(f"--out {out} holds the input {given}: choose a folder outside the inputs")
    return out


def _wrap_180(angle_deg: float) -> float:
    """The angle in (-180, 180] degrees (the records' convention: a half turn is +180°)."""
    from .angles import signed_angle_difference_deg

    return float(-signed_angle_difference_deg(0.0, angle_deg)) + 0.0  # + 0.0: no -0.0


@torch.no_grad()
def predict_photo_angles(model, images, image_size: int, head: str = "cos_sin_mse", bins: int = 72,
                         tta: bool = False, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Angles (degrees, counter-clockwise, in [0, 360)) and confidences of upright-or-not photos.

    images: PIL RGB images; each becomes the model's input as in validation (the centred
    largest square resized to ``image_size``, :func:`rotation_utils.datasets.to_model_input`).
    tta: average over the four 90° turns (:func:`rotation_utils.evaluation.turn_average`); the
    confidence is then the length of the averaged vector. Returns two (N,) arrays.
    """
    from torchvision.transforms.functional import pil_to_tensor

    from . import angles, heads
    from .datasets import to_model_input
    from .evaluation import turn_average
    from .precision import for_inference, inference_input

    model = for_inference(model, device)
    batch = inference_input(torch.stack([to_model_input(pil_to_tensor(image), image_size) for image in images]), device)
    raw = model(batch)
    if tta:
        vector = turn_average(model, batch, head, bins, unturned=raw)
        return angles.decode_angle_deg(vector).cpu().numpy(), vector.norm(dim=1).cpu().numpy()
    decoded = heads.decode(head, raw, bins)
    return decoded["predicted_deg"].cpu().numpy(), decoded["confidence"].cpu().numpy()


@torch.no_grad()
def photo_evidence(model, images, image_size: int, head: str = "cos_sin_mse", bins: int = 72,
                   quarter_turns: bool = True, lines: bool = True, device="cpu") -> list[PhotoEvidence]:
    """What the safe rule reads about each photo (:class:`rotation_utils.upright.PhotoEvidence`).

    images: PIL RGB images, each read as the model's validation input (the centred largest
    square at ``image_size`` pixels). quarter_turns: read the four 90° turns (4 forward passes;
    False for a small-tilt model: 1 pass). lines: also read the line tilt of each full photo
    (:func:`rotation_utils.upright.line_tilt`). Returns one evidence per image, in order.
    """
    from torchvision.transforms.functional import pil_to_tensor

    from . import heads
    from .datasets import to_model_input
    from .precision import for_inference, inference_input

    model = for_inference(model, device)
    batch = inference_input(torch.stack([to_model_input(pil_to_tensor(image), image_size) for image in images]), device)
    if quarter_turns:
        turned_back, raw = turn_evidence(model, batch, head, bins)
    else:
        turned_back, raw = None, model(batch)
    decoded = heads.decode(head, raw, bins)
    known = head != "angular"  # its length is that of the output before normalising: no confidence
    return [PhotoEvidence(None if turned_back is None else turned_back[i], float(decoded["predicted_deg"][i]),
                          float(decoded["confidence"][i]), line_tilt(image) if lines else None, quarter_turns, known)
            for i, image in enumerate(images)]


def straighten_image(image: Image.Image, correction_deg: float, border: str = "crop") -> Image.Image:
    """The photo turned counter-clockwise by ``correction_deg`` degrees. A multiple of 90° is a
    lossless transpose; other angles are resampled (bicubic) and either cropped to the largest
    axis-aligned rectangle inside the turned photo (``crop``,
    :func:`rotation_utils.rotation.largest_inscribed_rectangle`) or expanded to hold all of it,
    corners black (``expand``)."""
    from .rotation import largest_inscribed_rectangle

    quarter = correction_deg / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        turns = int(round(quarter)) % 4
        return {0: image, 1: image.transpose(Image.ROTATE_90), 2: image.transpose(Image.ROTATE_180),
                3: image.transpose(Image.ROTATE_270)}[turns]
    turned = image.rotate(correction_deg, resample=Image.BICUBIC, expand=True)
    if border == "expand":
        return turned
    w, h = largest_inscribed_rectangle(image.width, image.height, correction_deg)
    w, h = int(np.floor(w)), int(np.floor(h))
    left, top = (turned.width - w) // 2, (turned.height - h) // 2
    return turned.crop((left, top, left + w, top + h))


def _save_atomically(image: Image.Image, source: Path, out: Path) -> None:
    """Write ``image`` to ``out`` in the format of its suffix, through a temporary file in the
    same folder renamed into place. EXIF is kept with its orientation reset to 1 (the pixels
    are upright now); the ICC profile is kept when the photo was RGB already."""
    fmt = _FORMATS.get(out.suffix.lower(), "PNG")
    options = {}
    with Image.open(source) as original:
        info, source_mode = original.info, original.mode
        try:
            exif = original.getexif()
        except Exception:  # noqa: BLE001 - a broken EXIF block is dropped, not fatal
            exif = None
    if exif is not None and len(exif) and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        exif[0x0112] = 1
        options["exif"] = exif.tobytes()
    # the output is RGB: a CMYK or greyscale photo's colour profile would describe other channels
    if info.get("icc_profile") and fmt in ("JPEG", "PNG", "WEBP", "TIFF") and source_mode in ("RGB", "RGBA"):
        options["icc_profile"] = info["icc_profile"]
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    write_atomically(out, lambda tmp: image.save(tmp, format=fmt, **options))


def _copy_atomically(source: Path, out: Path) -> None:
    write_atomically(out, lambda tmp: shutil.copyfile(source, tmp))


def _unreadable(path: Path, err: OSError) -> str:
    import errno

    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as link_err:
            return "a symlink loop" if link_err.errno == errno.ELOOP else "a broken link (its target does not exist)"
    return f"cannot be read ({err.strerror or err})"


def _decide(angle_deg: float, confidence: float, settings: StraightenSettings) -> tuple[float, str, str]:
    """(correction_deg, action, reason) for one predicted angle."""
    signed = _wrap_180(angle_deg)
    if settings.min_confidence is not None and confidence < settings.min_confidence:
        return 0.0, "unchanged", f"confidence {confidence:.2f} is below --min-confidence {settings.min_confidence:g}"
    if settings.max_angle_deg is not None and abs(signed) > settings.max_angle_deg:
        return 0.0, "unchanged", f"predicted {signed:+.1f}° is beyond --max-angle {settings.max_angle_deg:g}°"
    correction = -signed
    if settings.snap_90:
        correction = -90.0 * round(signed / 90.0)
        correction = 0.0 if correction == 0 else _wrap_180(correction)
        if correction == 0.0:
            return 0.0, "unchanged", f"predicted {signed:+.1f}°, nearest quarter turn 0°"
        return correction, "straightened", f"predicted {signed:+.1f}°, turned by the nearest quarter turn"
    if abs(correction) < 0.05:
        return 0.0, "unchanged", f"predicted {signed:+.2f}°: already upright"
    return correction, "straightened", f"predicted {signed:+.1f}°"


def straighten_photos(model, metadata: dict, inputs, out, settings: StraightenSettings | None = None,
                      device="cpu", progress: bool = True, on_record=None) -> list[StraightenRecord]:
    """Straighten every photo of ``inputs`` (files or folders) into ``out``, under the same
    relative paths, and return one :class:`StraightenRecord` per file, in input order (each is
    also passed to ``on_record`` as soon as it is decided, for a JSON line per file; photos are
    predicted in batches, so that order can differ).

    model, metadata: as :func:`rotation_utils.models.load_checkpoint` returns them (the head,
    its bins and the input size are read from the metadata). ``settings.rule`` decides which
    photos are turned: ``safe`` (default) only where the evidence is strong, ``always`` by every
    prediction (:data:`RULES`). Unchanged photos are copied as
    they are, byte for byte, so that ``out`` holds every good photo. Bad files, links to
    folders and outputs that exist already (unless ``settings.overwrite``) are skipped with
    their reason. Raises FileNotFoundError for a missing input and ValueError for an output
    folder that could touch an input (:func:`check_output_folder`) or for ``tta`` with a
    small-tilt model (trained within less than ±90°: the turns leave its range).
    """
    from tqdm.auto import tqdm

    settings = settings or StraightenSettings()
    trained_within = (metadata.get("profile") or {}).get("max_angle_deg")
    if settings.tta and trained_within is not None and trained_within < 90:
        raise ValueError(f"this model was trained on angles within ±{trained_within:g}° only: the four 90° turns "
                         "of --tta would show it photos it was never trained on (leave out --tta)")
    out = check_output_folder(out, inputs)
    photos, records = collect_photos(inputs)
    for record in records:
        if on_record:
            on_record(record)
    head = metadata.get("head", "cos_sin_mse")
    bins = int(metadata.get("bins", 72))
    image_size = int(metadata.get("image_size") or (metadata.get("profile") or {}).get("image_size") or 224)
    model = model.to(device).eval()
    quarter_turns = trained_within is None or trained_within >= 90

    def emit(record):
        records.append(record)
        if on_record:
            on_record(record)

    pending = []

    def flush():
        if not pending:
            return
        images = [image for _, _, _, image in pending]
        if settings.rule == "safe":
            evidence = photo_evidence(model, images, image_size, head, bins, quarter_turns=quarter_turns, device=device)
            predicted = [e.one_pass_deg for e in evidence]
            confidence = [e.one_pass_confidence for e in evidence]
        else:
            evidence = [None] * len(images)
            predicted, confidence = predict_photo_angles(model, images, image_size, head, bins, settings.tta, device)
        for (path, name, target, image), angle, conf, seen in zip(pending, predicted, confidence, evidence):
            details = None
            if seen is None:
                correction, action, reason = _decide(float(angle), float(conf), settings)
            else:
                correction, reason, details = decide_safe(seen, settings.safe_rule, settings.snap_90,
                                                          settings.max_angle_deg, settings.min_confidence)
                action = "straightened" if correction != 0.0 else "unchanged"
            try:
                if action == "straightened":
                    _save_atomically(straighten_image(image, correction, settings.border), path, target)
                else:
                    _copy_atomically(path, target)
            except OSError as err:
                emit(StraightenRecord(name, _wrap_180(float(angle)), 0.0, float(conf), "skipped",
                                      f"could not write the output: {err}"))
                continue
            emit(StraightenRecord(name, _wrap_180(float(angle)), correction, float(conf), action, reason, str(target),
                                  details))
        pending.clear()

    for path, root, name in tqdm(photos, desc="straighten", unit="photo", disable=not progress):
        target = out / name
        if target.exists() and not settings.overwrite:
            emit(StraightenRecord(name, None, 0.0, None, "skipped",
                                  "the output exists already (a run before this one); --overwrite to redo it",
                                  str(target)))
            continue
        try:
            image = load_image(path, strict_jpeg=True)
        except BadImageError as err:
            emit(StraightenRecord(name, None, 0.0, None, "skipped", str(err).split(": ", 1)[-1]))
            continue
        except OSError as err:  # a symlink loop, a broken link, a file that vanished, no permission
            emit(StraightenRecord(name, None, 0.0, None, "skipped", _unreadable(path, err)))
            continue
        pending.append((path, name, target, image))
        if len(pending) >= settings.batch_size:
            flush()
    flush()
    order = {name: i for i, (_, _, name) in enumerate(photos)}
    return sorted(records, key=lambda r: order.get(r.path, -1))  # input order (links to folders first)
