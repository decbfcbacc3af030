"""Where the photos come from, and reading them safely.

Taught in notebook 03. Three sources, tried in this order by :func:`resolve_photos`:

1. folders you name (``images=`` or the ``ROTATION_COURSE_IMAGES`` variable), searched recursively;
2. COCO-2017 through the FiftyOne zoo (workshop and full profiles), when it can be reached;
3. the photos that ship inside installed packages (scikit-image, scikit-learn, matplotlib):
   the offline default, a dozen photos with a clear "up".

Every choice is said out loud: :class:`PhotoSource` carries a ``reason``.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import config

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_SIDE_PX",
    "BadImageError",
    "PhotosUnavailableError",
    "PhotoSource",
    "find_images",
    "load_image",
    "check_jpeg_data",
    "scan_images",
    "packaged_photos",
    "coco_zoo_photos",
    "resolve_photos",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
#: Photos with a side shorter than this many pixels are skipped: too small to show an "up".
MIN_SIDE_PX = 32

# Photos with a clear "up" that ship inside packages (package, path inside it, credit).
_PACKAGED = [
    ("skimage", "data/astronaut.png", "scikit-image: astronaut Eileen Collins (NASA)"),
    ("skimage", "data/camera.png", "scikit-image: cameraman"),
    ("skimage", "data/chelsea.png", "scikit-image: Chelsea the cat"),
    ("skimage", "data/coffee.png", "scikit-image: coffee cup"),
    ("skimage", "data/horse.png", "scikit-image: horse silhouette"),
    ("skimage", "data/motorcycle_left.png", "scikit-image: motorcycle (stereo left)"),
    ("skimage", "data/motorcycle_right.png", "scikit-image: motorcycle (stereo right)"),
    ("skimage", "data/rocket.jpg", "scikit-image: rocket on the launch pad (NASA)"),
    ("skimage", "data/page.png", "scikit-image: scanned page of text"),
    ("skimage", "data/text.png", "scikit-image: photo of text"),
    ("skimage", "data/brick.png", "scikit-image: brick wall"),
    ("skimage", "data/clock_motion.png", "scikit-image: clock"),
    ("sklearn", "datasets/images/china.jpg", "scikit-learn: Chinese temple"),
    ("sklearn", "datasets/images/flower.jpg", "scikit-learn: flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "matplotlib: Grace Hopper (US Navy)"),
]


class BadImageError(ValueError):
    """A file that cannot be used as a photo: unreadable, truncated, empty or too small."""


@dataclass
class PhotoSource:
    """Photos chosen for a run, with the name of their source and why it was chosen."""

    paths: list[Path]
    name: str
    reason: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def describe(self) -> str:
        """Two lines saying which source was used, why, and what was skipped."""
        text = f"photos: {len(self.paths)} from {self.name}\nwhy: {self.reason}"
        if self.skipped:
            text += f"\nskipped {len(self.skipped)} unusable file(s), e.g. " + "; ".join(
                f"{p.name}: {why}" for p, why in self.skipped[:3])
        return text


class PhotosUnavailableError(ValueError):
    """The photos a profile needs cannot be had (COCO-2017 offline) and no folder was named."""


def find_images(folder, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted.

    folder: a directory. recursive: search sub-folders too (default).
    Returns a sorted list of paths; hidden files and folders are ignored.
    Raises FileNotFoundError if the folder does not exist, NotADirectoryError if it is a file.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """RGB version of any PIL mode. 16-bit greyscale is scaled by its bit depth (65,535 → 255),
    never stretched to each image's own range, so a dark photo stays dark; 32-bit float is read
    as [0, 1] when its values fit there, else as [0, 255] (clipped), with NaN as black; an image
    with no finite value is refused (:class:`BadImageError`). Transparency is composited on
    mid-grey; CMYK and palettes are converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        scaled = np.clip(array / 257.0, 0, 255)  # 16-bit data: Pillow opens 16-bit PNGs as I;16 or I
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.any():
            raise BadImageError(f"{name}: a float image with no finite value (all NaN or infinite)")
        top = array[finite].max()
        array = np.where(finite, array, 0.0) * (255.0 if top <= 1.0 else 1.0)
        image = Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (128, 128, 128, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def check_jpeg_data(path) -> None:
    """Decode a JPEG file strictly: libjpeg's warnings ("Corrupt JPEG data: 66 extraneous bytes
    before marker 0xd9"), which Pillow ignores and decodes through with wrong pixels, become a
    :class:`BadImageError` naming the file. Uses simplejpeg (libjpeg-turbo, ``strict=True``).
    Raises ImportError with the install command when simplejpeg is missing."""
    try:
        import simplejpeg
    except ImportError as err:  # pragma: no cover - a course dependency
        raise ImportError("checking JPEG data needs simplejpeg: pip install simplejpeg (or `make setup`)") from err
    path = Path(path)
    data = path.read_bytes()
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        simplejpeg.decode_jpeg(data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "RGB", strict=True)
    except (ValueError, RuntimeError, OSError) as err:
        raise BadImageError(f"{path.name}: corrupt JPEG data ({str(err).strip()})") from err


def load_image(path, min_side: int = MIN_SIDE_PX, draft_short_side: int | None = None,
               strict_jpeg: bool = False) -> Image.Image:
    """Read a photo as an upright 8-bit RGB PIL image.

    The EXIF orientation is applied first, so a phone photo stored sideways comes out as it
    was shot; greyscale, 16-bit, CMYK, palette and RGBA images become RGB; for an animated
    image the first frame is used.
    path: a file path. min_side: smallest accepted side in pixels (of the file, before any
    reduction). draft_short_side: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (Pillow's
    draft mode, several times faster) as long as both sides stay at least this many pixels.
    strict_jpeg: also decode a JPEG with :func:`check_jpeg_data`, so that a corrupt body is an
    error instead of wrong pixels (about one more decode; the dataset scan and ``straighten``
    use it, the training loader does not).
    Raises FileNotFoundError for a missing file and :class:`BadImageError` (a ValueError)
    for an empty, truncated, corrupt, non-image, too small or too large file (more pixels than
    Pillow's decompression-bomb limit), or one the system will not let us read (no permission,
    an I/O error: "cannot be read"); the message names the file and says which.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if path.stat().st_size == 0:
        raise BadImageError(f"{path.name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.seek(0)
                full_size = opened.size
                if draft_short_side and opened.format == "JPEG" and opened.mode in ("RGB", "L"):
                    opened.draft(opened.mode, (draft_short_side, draft_short_side))
                opened.load()
                if strict_jpeg and opened.format == "JPEG":
                    check_jpeg_data(path)
                image = ImageOps.exif_transpose(opened)
                image = _to_rgb(image, path.name)
    except BadImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise BadImageError(f"{path.name}: {_too_many_pixels(err)}") from err
    except UnidentifiedImageError as err:
        raise BadImageError(f"{path.name}: not a readable image ({err.__class__.__name__})") from err
    except OSError as err:
        if err.errno is not None:  # the system's refusal (no permission, an I/O error), not the file's content
            raise BadImageError(f"{path.name}: cannot be read ({err.strerror or err})") from err
        raise BadImageError(f"{path.name}: corrupt or truncated image ({err})") from err
    except (SyntaxError, ValueError) as err:
        raise BadImageError(f"{path.name}: corrupt or truncated image ({err})") from err
    if min(full_size) < min_side:
        raise BadImageError(f"{path.name}: {full_size[0]}×{full_size[1]} pixels, smaller than "
                            f"{min_side} px on a side")
    return image


def _too_many_pixels(err: Exception) -> str:
    """Pillow's decompression-bomb guard, in words: how large the image is and the limit."""
    import re

    numbers = [int(n) for n in re.findall(r"\((\d+) pixels\)|limit of (\d+) pixels", str(err)) for n in n if n]
    if len(numbers) == 2:
        pixels, limit = numbers
        return (f"{pixels:,} pixels ({pixels / 1e6:.1f} megapixels), more than the limit of {limit:,} that guards "
                "against decompression bombs (Pillow's Image.MAX_IMAGE_PIXELS); reduce the photo first")
    return ("more pixels than the limit that guards against decompression bombs (Pillow's Image.MAX_IMAGE_PIXELS); "
            "reduce the photo first")


def scan_images(paths, min_side: int = MIN_SIDE_PX, verbose: bool = True, workers: int | None = None
                ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Open every file once and keep the usable ones, in the order given.

    paths: iterable of file paths. workers: threads that decode at the same time (default: the
    CPU count, at most 16; Pillow decodes outside Python's global lock, so thousands of photos
    are checked in a fraction of the serial time). Returns (usable paths, [(skipped path,
    reason), ...]). Prints one line per skipped file when ``verbose``. Never raises for a bad image.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    paths = [Path(p) for p in paths]

    def check(path: Path) -> str | None:
        try:
            load_image(path, min_side=min_side, strict_jpeg=True)
        except (BadImageError, FileNotFoundError) as err:
            return str(err)
        return None

    workers = workers or min(16, os.cpu_count() or 1)
    if workers > 1 and len(paths) > 1:
        # Warning filters are global: set the one load_image relies on for the whole pool, so
        # that the threads' own catch_warnings blocks can only ever restore it.
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            reasons = list(pool.map(check, paths))
    else:
        reasons = [check(path) for path in paths]
    good, skipped = [], []
    for path, why in zip(paths, reasons):
        if why is None:
            good.append(path)
            continue
        skipped.append((path, why))
        if verbose:
            print(f"skipping {config.display_path(path)}: {why}")
    return good, skipped


def packaged_photos() -> list[Path]:
    """Photos with a clear "up" that ship inside installed packages (offline default).

    Returns the existing files among a curated list from scikit-image, scikit-learn and
    matplotlib (about 15 photos when all three are installed); packages that are not
    installed are skipped. Raises nothing.
    """
    found = []
    for package, relative, _credit in _PACKAGED:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(list(spec.submodule_search_locations)[0]) / relative
        if path.exists():
            found.append(path)
    return found


def coco_zoo_photos(split: str = "validation", max_samples: int | None = None,
                    dataset_name: str | None = None) -> list[Path]:
    """COCO-2017 photos through the FiftyOne zoo (downloads them on first use).

    split: ``"train"`` or ``"validation"``; max_samples: how many photos (None: all).
    Returns the local file paths. Raises ImportError without FiftyOne and the zoo's own
    error (usually a network error) when COCO cannot be downloaded.
    Source: COCO-2017 (Lin et al. 2014), as used by the reference result.
    """
    import fiftyone.zoo as foz

    dataset = foz.load_zoo_dataset("coco-2017", split=split, max_samples=max_samples,
                                   dataset_name=dataset_name, label_types=[], shuffle=False)
    return [Path(p) for p in dataset.values("filepath")]


def resolve_photos(images=None, profile=None, try_coco: bool | None = None,
                   max_photos: int | None | str = "profile", verbose: bool = True) -> PhotoSource:
    """Choose the photos for a run and say which source was used and why.

    images: a folder, or a list of folders (default: ``ROTATION_COURSE_IMAGES``).
    profile: a :class:`rotation_utils.profiles.Profile` (default: the active one); COCO is
    tried for ``workshop`` and ``full`` unless ``try_coco`` says otherwise.
    max_photos: keep at most this many (an even spread over the sorted list); ``"profile"``
    (default) takes the profile's ``max_photos``, None keeps all.
    Returns a :class:`PhotoSource` of usable photos (unusable files are skipped and listed).
    Raises FileNotFoundError for a folder that does not exist, ValueError when a named folder
    holds no usable photo (it never falls back silently from a folder you named).
    """
    from .profiles import get_profile

    profile = profile or get_profile()
    if max_photos == "profile":
        max_photos = profile.max_photos
    if images is None:
        folders = config.image_folders()
        origin = "ROTATION_COURSE_IMAGES"
    else:
        folders = [Path(p) for p in ([images] if isinstance(images, (str, Path)) else images)]
        origin = "the images argument"

    if folders:
        paths = [p for folder in folders for p in find_images(folder)]
        shown = ", ".join(config.display_path(f) for f in folders)
        name = f"folder {shown}"
        reason = f"named by {origin}"
        if not paths:
            raise ValueError(f"no image files (by extension) under {shown}")
    else:
        paths = []
        if try_coco if try_coco is not None else profile.name not in ("quick", "laptop"):
            try:
                paths = coco_zoo_photos(profile.coco_split, max_samples=max_photos)
                name = f"COCO-2017 {profile.coco_split} (FiftyOne zoo)"
                reason = f"the {profile.name} profile asks for COCO"
            except Exception as err:  # noqa: BLE001 - any download failure means offline
                if not profile.offline_fallback:
                    raise PhotosUnavailableError(
                        f"the {profile.name} profile trains on {max_photos or 'all'} COCO-2017 "
                        f"{profile.coco_split} photos from the FiftyOne zoo, which could not be had "
                        f"({err.__class__.__name__}: {str(err)[:200]}). With no network, name a folder of "
                        "photos: --images DIR (or ROTATION_COURSE_IMAGES)") from err
                if verbose:
                    print(f"COCO-2017 could not be loaded from the FiftyOne zoo "
                          f"({err.__class__.__name__}); using the offline photos instead")
                paths = []
        if not paths:
            paths = packaged_photos()
            name = "photos shipped inside installed packages (scikit-image, scikit-learn, matplotlib)"
            reason = ("no folder was named (set ROTATION_COURSE_IMAGES or pass images=) "
                      + ("and the quick profile stays offline" if profile.name == "quick" and try_coco is None
                         else "and COCO-2017 was not asked for" if try_coco is False
                         else "and COCO-2017 could not be reached"))
            if not paths:
                raise ValueError("no photos: name a folder with ROTATION_COURSE_IMAGES or images=, "
                                 "or install scikit-image / scikit-learn for the offline photos")
    found = len(paths)
    paths = _spread(sorted(paths), max_photos)
    if len(paths) < found:
        reason += f"; {len(paths)} of the {found} photos found are used (max_photos={max_photos})"
    good, skipped = scan_images(paths, verbose=verbose)
    if not good:
        raise ValueError(f"none of the {len(paths)} files from {name} is a usable photo: "
                         + "; ".join(why for _, why in skipped[:3]))
    source = PhotoSource(good, name, reason, skipped)
    if verbose:
        print(source.describe())
    return source


def _spread(paths: list[Path], limit: int | None) -> list[Path]:
    if limit is None or len(paths) <= limit:
        return paths
    index = np.linspace(0, len(paths) - 1, limit).round().astype(int)
    return [paths[i] for i in np.unique(index)]
