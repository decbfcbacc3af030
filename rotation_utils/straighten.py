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
           "plan_outputs", "metadata_options",
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


def _real(path) -> Path:
    """The path with every link followed, as far as it exists (a symlink loop is left as it is,
    never an error: ``os.path.realpath``)."""
    return Path(os.path.realpath(path))


def check_output_folder(out, inputs) -> Path:
    """``out`` as a Path, after making sure that writing there cannot touch an input: every
    input must exist; ``out`` (links followed) may not be a file, an input folder, lie inside
    one, or hold one; and a photo given by itself may not be where its own output would go
    (``out`` / its name). A photo's own folder is no input: ``straighten a.jpg --out upright`` is safe. The outputs
    one by one, through any link inside ``out``, are checked by :func:`plan_outputs`.
    Raises FileNotFoundError for a missing input and ValueError for an unsafe ``out``."""
    out = Path(out)
    for given in inputs:
        if not Path(given).exists() and not Path(given).is_symlink():
            raise FileNotFoundError(f"no such file or folder: {given}")
    target = _real(out)
    if target.exists() and not target.is_dir():
        raise ValueError(f"--out {out} is a file; name a folder for the upright photos")
    for given in inputs:
        source = _real(given)
        if source.is_dir():
            if target == source or source in target.parents:
                raise ValueError(f"--out {out} is {'an input folder' if target == source else 'inside the input folder ' + str(given)}: "
                                 "choose a folder outside the inputs, so that no photo can be overwritten")
            if target in source.parents:
                raise ValueError(f"--out {out} holds the input {given}: choose a folder outside the inputs")
        elif _real(target / Path(given).name) == source:
            raise ValueError(f"--out {out} would put the upright copy of {given} on the photo itself: "
                             "choose another folder")
    return out


def _first_link(out: Path, target: Path) -> Path | None:
    """The first symbolic link on the way from ``out`` down to ``target`` (``out`` itself included)."""
    for part in [out, *reversed([p for p in target.parents if out in p.parents]), target]:
        if part.is_symlink():
            return part
    return None


def plan_outputs(photos, out, inputs, protect=()) -> list[tuple[Path, str, Path, str | None]]:
    """Where each photo of :func:`collect_photos` goes, decided before anything is written.

    Each output is ``out`` / its relative name, resolved with every link followed (a link
    inside ``out`` may lead anywhere). An output that would land on or inside an input (a photo,
    an input folder) or on one of ``protect`` (e.g. the checkpoint) stops the run: ValueError,
    naming the link. Two different photos with the same output (``a/x.jpg`` and ``b/x.jpg``
    into one ``out``; names compared without case, as some disks do) are kept apart: the first
    keeps its name, each later one gets ``x-2.jpg``, ``x-3.jpg``, … (a name no other output
    has), and its note says so. The same photo given twice (a folder and a file in it) is
    straightened once. Returns ``(path, name, target, note)`` per photo, in input order, with
    note None or the renaming in words.
    """
    out = Path(out)
    folders, files = [], set()
    for given in inputs:
        resolved = _real(given)
        (folders.append((resolved, given)) if resolved.is_dir() else files.add(resolved))
    files |= {_real(path) for path, _, _ in photos}
    guarded = {_real(p): p for p in protect}

    def check(target: Path, name: str) -> Path:
        resolved = _real(target)
        danger = None
        if resolved in files:
            danger = "an input photo"
        elif resolved in guarded:
            danger = f"{guarded[resolved]}"
        else:
            danger = next((f"inside the input folder {given}" for folder, given in folders
                           if resolved == folder or folder in resolved.parents), None)
        if danger is not None:
            link = _first_link(out, target)
            how = (f"{link} is a link to {os.readlink(link)}, so " if link is not None else "")
            raise ValueError(f"--out {out}: {how}the output of {name} would be {resolved}, {danger}; "
                             "nothing was written: remove the link or choose another --out")
        return resolved

    planned, taken = [], {}
    keys = [str(check(out / name, name)).casefold() for _, _, name in photos]
    every = set(keys)
    for (path, _root, name), key in zip(photos, keys):
        source = _real(path)
        if key in taken and taken[key][0] == source:
            continue  # the same photo twice, to the same place
        target, note = out / name, None
        if key in taken:
            stem, suffix = Path(name).stem, Path(name).suffix
            for n in range(2, 10 ** 6):
                renamed = str(Path(name).with_name(f"{stem}-{n}{suffix}"))
                new_key = str(check(out / renamed, renamed)).casefold()
                if new_key not in every and new_key not in taken:
                    break
            note = (f"written as {renamed}: {out / name} is the output of {taken[key][1]}, which has the same "
                    "relative name")
            target, key = out / renamed, new_key
        taken[key] = (source, path)
        planned.append((path, name, target, note))
    return planned


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


#: Tags of a photo's first EXIF / TIFF directory that describe it (who, when, where, its
#: resolution, rights, XMP) rather than how its pixels are stored: the only ones an output keeps.
#: A TIFF's own layout tags (size, strips, compression, bits per sample, …) describe the source
#: file's pixels; copied into another file they make it unreadable.
_DESCRIPTIVE_TAGS = {
    269, 270, 271, 272,  # DocumentName, ImageDescription, Make, Model
    282, 283, 296,  # XResolution, YResolution, ResolutionUnit
    285, 305, 306, 315, 316,  # PageName, Software, DateTime, Artist, HostComputer
    700, 33432, 33723,  # XMP, Copyright, IPTC
    0x4746, 0x4749,  # Rating, RatingPercent
    0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F,  # Windows' title, comment, author, keywords, subject
}
#: The EXIF and GPS sub-directories (capture time, exposure, position), kept whole.
_SUB_IFDS = (0x8769, 0x8825)
#: TIFF compressions kept as they were (lossless); any other becomes LZW.
_LOSSLESS_TIFF = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"}
#: Keys of Pillow's ``info`` that are no PNG text chunk.
_NOT_PNG_TEXT = {"xmp", "dpi", "gamma", "icc_profile", "exif", "transparency", "srgb", "chromaticity", "aspect",
                 "interlace", "duration", "loop", "disposal", "blend", "default_image", "bbox"}


def _upright_xmp(xmp):
    """XMP with its ``tiff:Orientation`` said as 1 (the pixels are upright now)."""
    import re

    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    xmp = re.sub(rb'tiff:Orientation="\d"', b'tiff:Orientation="1"', xmp)
    return re.sub(rb"<tiff:Orientation>\d</tiff:Orientation>", b"<tiff:Orientation>1</tiff:Orientation>", xmp)


def metadata_options(source, fmt: str, size: tuple[int, int]) -> dict:
    """What of ``source``'s metadata an upright output in format ``fmt`` (a Pillow format name)
    of ``size`` (width, height in pixels) can keep, as options of ``Image.save``.

    EXIF: the descriptive tags of the first directory (:data:`_DESCRIPTIVE_TAGS`), never the
    layout tags of a TIFF, with the orientation reset to 1 (the pixels are upright now) and the
    EXIF and GPS sub-directories (the pixel dimensions there set to ``size``). The colour
    profile when the photo was RGB (a CMYK or greyscale one would describe other channels); the
    resolution (dpi); XMP (its orientation reset too); a JPEG comment; PNG text chunks; a TIFF's
    lossless compression (LZW for any other), or none when the EXIF sub-directories must be
    written (libtiff, behind Pillow's compressed TIFFs, cannot write them). Returns a dict
    (empty for formats without metadata: BMP, GIF, PPM). Raises OSError when ``source`` cannot
    be opened; a metadata block that cannot be read is left out."""
    options = {}
    with Image.open(source) as original:
        info, source_mode = dict(original.info), original.mode
        try:
            exif = original.getexif()
            subs = {tag: dict(exif.get_ifd(tag)) for tag in _SUB_IFDS if tag in exif}
        except Exception:  # noqa: BLE001 - a broken EXIF block is dropped, not fatal
            exif, subs = None, {}
    if fmt not in ("JPEG", "PNG", "WEBP", "TIFF"):
        return options
    kept = Image.Exif()
    for tag, value in (exif or {}).items():
        if tag in _DESCRIPTIVE_TAGS:
            kept[tag] = value
    for tag, values in subs.items():
        if values:
            kept.get_ifd(tag).update(values)
    if 0x8769 in subs:
        for tag, side in ((0xA002, size[0]), (0xA003, size[1])):  # PixelXDimension, PixelYDimension
            if tag in subs[0x8769]:
                kept.get_ifd(0x8769)[tag] = side
    if len(kept) or subs:
        kept[0x0112] = 1
        try:
            options["exif"] = kept.tobytes()
        except Exception:  # noqa: BLE001 - a value Pillow cannot write back: no EXIF rather than no photo
            options.pop("exif", None)
    if info.get("icc_profile") and source_mode in ("RGB", "RGBA"):
        options["icc_profile"] = info["icc_profile"]
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(isinstance(d, (int, float)) and d > 0 for d in dpi):
        options["dpi"] = tuple(float(d) for d in dpi)
    if info.get("xmp") and fmt in ("JPEG", "WEBP"):
        options["xmp"] = _upright_xmp(info["xmp"])
    if fmt == "JPEG":
        if isinstance(info.get("comment"), (bytes, str)) and info["comment"]:
            options["comment"] = info["comment"]
        options.update(quality=95, subsampling=0)
    elif fmt == "PNG":
        from PIL import PngImagePlugin

        text = PngImagePlugin.PngInfo()
        for key, value in info.items():
            if isinstance(value, str) and key not in _NOT_PNG_TEXT:
                text.add_itxt(key, _upright_xmp(value).decode("utf-8") if "xmp" in key.lower() else value)
        if text.chunks:
            options["pnginfo"] = text
    elif fmt == "TIFF":
        compression = info.get("compression", "raw")
        compression = compression if compression in _LOSSLESS_TIFF else "tiff_lzw"
        options["compression"] = "raw" if subs and "exif" in options else compression
    return options


def _read_back(expected_size: tuple[int, int], fmt: str):
    """A check for :func:`rotation_utils.config.write_atomically`: the written file opens as
    ``fmt``, decodes whole and has ``expected_size``; else ValueError."""
    def verify(tmp: str) -> None:
        try:
            with Image.open(tmp, formats=[fmt]) as written:
                written.load()
                size = written.size
        except Exception as err:  # noqa: BLE001 - whatever Pillow says, the file is not right
            raise ValueError(f"the written {fmt} file does not read back ({err})") from err
        if size != expected_size:
            raise ValueError(f"the written file reads back as {size[0]}×{size[1]} pixels, "
                             f"not {expected_size[0]}×{expected_size[1]}")
    return verify


def _save_atomically(image: Image.Image, source: Path, out: Path, mode: int | None = None) -> str | None:
    """Write ``image`` to ``out`` in the format of its suffix, through a temporary file in the
    same folder that is read back (:func:`_read_back`) and then renamed into place, with the
    permission bits ``mode``. The metadata are those of :func:`metadata_options`; when Pillow
    cannot write them, the photo is written without them. Returns None, or a note saying what
    metadata was left out. Raises OSError (a full disk: ENOSPC) or ValueError (a file that does
    not read back)."""
    fmt = _FORMATS.get(out.suffix.lower(), "PNG")
    options = metadata_options(source, fmt, image.size)
    verify = _read_back(image.size, fmt)
    try:
        write_atomically(out, lambda tmp: image.save(tmp, format=fmt, **options), mode=mode, verify=verify)
        return None
    except OSError as err:
        if err.errno is not None or not options:  # the disk's error, not the encoder's
            raise
        reason = err
    except (ValueError, RuntimeError) as err:  # an encoder refusing a tag, a file that does not read back
        if not options:
            raise
        reason = err
    bare = {k: v for k, v in options.items() if k in ("quality", "subsampling")}
    write_atomically(out, lambda tmp: image.save(tmp, format=fmt, **bare), mode=mode, verify=verify)
    return f"its metadata could not be written and were left out ({reason})"


def _copy_atomically(source: Path, out: Path, mode: int | None = None) -> None:
    """Copy ``source`` to ``out`` byte for byte, through a temporary file compared with the
    source before it is renamed into place, with the permission bits ``mode``."""
    import filecmp

    def verify(tmp: str) -> None:
        if not filecmp.cmp(source, tmp, shallow=False):
            raise ValueError("the copy differs from the photo")

    write_atomically(out, lambda tmp: shutil.copyfile(source, tmp), mode=mode, verify=verify)


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
                      device="cpu", progress: bool = True, on_record=None, protect=(),
                      on_note=None) -> list[StraightenRecord]:
    """Straighten every photo of ``inputs`` (files or folders) into ``out``, under the same
    relative paths, and return one :class:`StraightenRecord` per file, in input order (each is
    also passed to ``on_record`` as soon as it is decided, for a JSON line per file; photos are
    predicted in batches, so that order can differ).

    model, metadata: as :func:`rotation_utils.models.load_checkpoint` returns them (the head,
    its bins and the input size are read from the metadata and checked,
    :func:`rotation_utils.models.prediction_settings`). ``settings.rule`` decides which
    photos are turned: ``safe`` (default) only where the evidence is strong, ``always`` by every
    prediction (:data:`RULES`). Unchanged photos are copied as
    they are, byte for byte, so that ``out`` holds every good photo. Bad files, links to
    folders and outputs that exist already (unless ``settings.overwrite``) are skipped with
    their reason.

    Nothing is written before every output is known to be safe: :func:`check_output_folder`
    and :func:`plan_outputs` (links inside ``out`` followed; photos that would share an output
    get distinct names, said in their record's reason and passed to ``on_note``). protect:
    files no output may replace (the checkpoint). Each output is read back before it is
    renamed into place (a straightened photo decoded, a copy compared), carries the input's
    permission bits and its metadata (:func:`metadata_options`). Temporary files that a killed
    earlier run left in ``out`` are removed first (``on_note`` is told how many).

    Raises FileNotFoundError for a missing input; ValueError for an output that could touch an
    input or ``protect``, for metadata that contradict the network, or for ``tta`` with a
    small-tilt model (trained within less than ±90°: the turns leave its range); OSError (errno
    ENOSPC, EDQUOT or EROFS) when the disk of ``out`` is full or read-only, which stops the run:
    the outputs written before are complete and kept.
    """
    import errno

    from tqdm.auto import tqdm

    from .config import remove_stale_temporaries
    from .models import prediction_settings

    settings = settings or StraightenSettings()
    head, bins, image_size = prediction_settings(metadata)
    trained_within = (metadata.get("profile") or {}).get("max_angle_deg")
    if settings.tta and trained_within is not None and trained_within < 90:
        raise ValueError(f"this model was trained on angles within ±{trained_within:g}° only: the four 90° turns "
                         "of --tta would show it photos it was never trained on (leave out --tta)")
    out = check_output_folder(out, inputs)
    photos, records = collect_photos(inputs)
    plan = plan_outputs(photos, out, inputs, protect)
    stale = remove_stale_temporaries(out, recursive=True)
    if stale and on_note:
        on_note(f"removed {len(stale)} temporary file(s) that an interrupted run left in {out}")
    for path, name, target, note in plan:
        if note and on_note:
            on_note(f"{path}: {note}")
    for record in records:
        if on_record:
            on_record(record)
    model = model.to(device).eval()
    quarter_turns = trained_within is None or trained_within >= 90
    order = {}  # id(record) → its photo's place in the input order

    def emit(record, index=-1):
        order[id(record)] = index
        records.append(record)
        if on_record:
            on_record(record)

    pending = []
    written = [0]  # outputs written by this run

    def flush():
        if not pending:
            return
        images = [image for *_, image in pending]
        if settings.rule == "safe":
            evidence = photo_evidence(model, images, image_size, head, bins, quarter_turns=quarter_turns, device=device)
            predicted = [e.one_pass_deg for e in evidence]
            confidence = [e.one_pass_confidence for e in evidence]
        else:
            evidence = [None] * len(images)
            predicted, confidence = predict_photo_angles(model, images, image_size, head, bins, settings.tta, device)
        for (index, path, name, target, note, image), angle, conf, seen in zip(pending, predicted, confidence,
                                                                                evidence):
            details = None
            if seen is None:
                correction, action, reason = _decide(float(angle), float(conf), settings)
            else:
                correction, reason, details = decide_safe(seen, settings.safe_rule, settings.snap_90,
                                                          settings.max_angle_deg, settings.min_confidence)
                action = "straightened" if correction != 0.0 else "unchanged"
            try:
                mode = path.stat().st_mode & 0o777
                if action == "straightened":
                    left_out = _save_atomically(straighten_image(image, correction, settings.border), path, target, mode)
                    if left_out:
                        reason += f"; {left_out}"
                else:
                    _copy_atomically(path, target, mode)
            except OSError as err:
                if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                    raise OSError(err.errno, f"{err.strerror or err} while writing {target}, after {written[0]} "
                                  "output(s), which a second run skips") from err
                emit(StraightenRecord(name, _wrap_180(float(angle)), 0.0, float(conf), "skipped",
                                      f"could not write the output: {err}"), index)
                continue
            except (ValueError, RuntimeError) as err:  # a file that does not read back, an encoder's refusal
                emit(StraightenRecord(name, _wrap_180(float(angle)), 0.0, float(conf), "skipped",
                                      f"could not write the output: {err}"), index)
                continue
            written[0] += 1
            emit(StraightenRecord(name, _wrap_180(float(angle)), correction, float(conf), action,
                                  reason + (f" ({note})" if note else ""), str(target), details), index)
        pending.clear()

    for index, (path, name, target, note) in enumerate(tqdm(plan, desc="straighten", unit="photo",
                                                             disable=not progress)):
        if target.exists() and not settings.overwrite:
            emit(StraightenRecord(name, None, 0.0, None, "skipped",
                                  "the output exists already (a run before this one); --overwrite to redo it",
                                  str(target)), index)
            continue
        try:
            image = load_image(path, strict_jpeg=True)
        except BadImageError as err:
            emit(StraightenRecord(name, None, 0.0, None, "skipped", str(err).split(": ", 1)[-1]), index)
            continue
        except OSError as err:  # a symlink loop, a broken link, a file that vanished, no permission
            emit(StraightenRecord(name, None, 0.0, None, "skipped", _unreadable(path, err)), index)
            continue
        pending.append((index, path, name, target, note, image))
        if len(pending) >= settings.batch_size:
            flush()
    flush()
    return sorted(records, key=lambda r: order.get(id(r), -1))  # input order (links to folders first)
