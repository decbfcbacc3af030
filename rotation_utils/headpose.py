"""Head pose: yaw, pitch and roll of a face, read from AFLW2000-3D, 300W-LP and Pointing'04.

Taught in notebook 08. One convention everywhere, AFLW2000-3D's (the labels of 3DDFA, Zhu et al.
CVPR 2016, as used by HopeNet and 6DRepNet), in degrees:

- **yaw** > 0: the face turns toward the image's left (the subject's right);
- **pitch** > 0: the face looks up; < 0 looks down;
- **roll** > 0: the top of the head tilts toward the image's right (clockwise in the image).

As a rotation matrix in OpenCV's camera frame (x right, y down, z away from the camera), the
head's rotation is ``R = Rx(-pitch) · Ry(yaw) · Rz(roll)`` (:func:`pose_matrix`). This was
found on the labels themselves: with this matrix, the 68 3-D landmarks of every AFLW2000 image
turned back to the front agree with one mean face to about 7% of the face's radius (RMS), 7
times closer than with the yaw's sign flipped, and
:func:`solve_pnp_pose` on the 2-D landmarks gives the labels back (``tests/test_headpose.py``).

Two consequences the course uses:

- a horizontal flip maps (yaw, pitch, roll) to (-yaw, pitch, -roll) exactly (:func:`flip_pose`);
- turning the image counter-clockwise by φ changes the roll by -φ and leaves yaw and pitch
  unchanged *only for a frontal face*: the camera's z axis is the first rotation of the matrix,
  roll the last. :func:`rotate_pose` gives the exact new angles (``Rz(-φ) · R`` decomposed).

The networks follow HopeNet (Ruiz, Chong & Rehg, "Fine-Grained Head Pose Estimation Without
Keypoints", CVPRW 2018): three heads of 66 bins of 3° over [-99°, 99°), the softmax's expected
value as the angle, and the dual loss cross-entropy + α · MSE(expected angle, true angle).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from .config import display_path

__all__ = [
    "MAX_ABS_DEG",
    "HOPENET_BINS",
    "BIN_WIDTH_DEG",
    "ANGLES",
    "HeadPoseError",
    "HeadPoseSample",
    "read_pose_mat",
    "load_aflw2000",
    "load_pointing04",
    "person_split",
    "pose_matrix",
    "pose_from_matrix",
    "flip_pose",
    "rotate_pose",
    "flip_landmarks",
    "rotate_landmarks",
    "FLIP_68",
    "FACE_PARTS_68",
    "schematic_face",
    "project_face",
    "draw_face",
    "face_box",
    "normalised_landmarks",
    "mean_face_shape",
    "solve_pnp_pose",
    "pose_errors",
    "landmark_features",
    "fit_landmark_mlp",
    "predict_landmark_mlp",
    "faces_dataset",
    "HeadPoseDataset",
    "SmallCNN",
    "HeadPoseNet",
    "bin_centres_deg",
    "angle_to_bin",
    "expected_angle_deg",
    "hopenet_loss",
    "train_headpose",
    "predict_headpose",
    "HEAD_POSE_ENV",
    "HeadPoseDataUnavailable",
    "head_pose_dir",
    "HeadPoseSplits",
    "course_splits",
    "enable_data_cells",
    "training_set",
    "evaluation_sets",
    "run_cnn",
    "load_folder",
    "save_headpose_checkpoint",
    "load_headpose_checkpoint",
    "dlib_landmarks",
    "course_faces_dataset",
    "head_axes_2d",
    "draw_pose_axes",
]

#: The standard AFLW2000 protocol drops faces with an angle beyond this (degrees).
MAX_ABS_DEG = 99.0
#: HopeNet's bins per angle, and their width in degrees: 66 × 3° = [-99°, 99°).
HOPENET_BINS = 66
BIN_WIDTH_DEG = 3.0
#: The order of the three angles in every array of this module.
ANGLES = ("yaw", "pitch", "roll")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_POINTING04 = re.compile(r"person(\d\d)([12])(\d\d)([+-]\d+)([+-]\d+)\.jpg$", re.IGNORECASE)


class HeadPoseError(ValueError):
    """A head-pose file that cannot be used; the message names the file and says why."""


@dataclass
class HeadPoseSample:
    """One face with its pose.

    image_path: the photo. yaw_deg, pitch_deg, roll_deg: degrees, AFLW2000's signs (module
    docstring); ``nan`` where the source has no label (Pointing'04's roll). landmarks: (68, 2)
    image x, y in pixels, or None. landmarks_3d: (68, 3) in the camera frame (x right, y down,
    z away from the camera, pixels), or None. box: (x0, y0, x1, y1) pixels of the face, or None.
    source: ``"aflw2000"``, ``"300w_lp"`` or ``"pointing04"``. person: the subject (Pointing'04).
    """

    image_path: Path
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    landmarks: np.ndarray | None = None
    landmarks_3d: np.ndarray | None = None
    box: tuple | None = None
    source: str = "aflw2000"
    person: str | None = None

    @property
    def angles_deg(self) -> np.ndarray:
        """(3,) yaw, pitch, roll in degrees."""
        return np.array([self.yaw_deg, self.pitch_deg, self.roll_deg], dtype=np.float64)


# --------------------------------------------------------------------------- readers

def read_pose_mat(mat_path, image_path=None) -> HeadPoseSample:
    """One AFLW2000-3D or 300W-LP label file (``.mat``) as a :class:`HeadPoseSample`.

    ``Pose_Para[0][:3]`` are pitch, yaw, roll in radians (converted to degrees here). The
    landmarks: ``pt3d_68`` (3, 68; rows 0-1 image x, y, row 2 depth toward the camera) in
    AFLW2000-3D, ``pt2d`` (2, 68) in 300W-LP; AFLW2000's own ``pt2d`` (2, 21, -1 where missing)
    only gives the box. image_path defaults to the ``.jpg`` beside the file.
    Raises FileNotFoundError for a missing file and :class:`HeadPoseError` for a file that
    scipy cannot read or that has no ``Pose_Para`` (the message names the file).
    """
    from scipy.io import loadmat

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise FileNotFoundError(f"no such label file: {display_path(mat_path)}")
    try:
        mat = loadmat(mat_path)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise HeadPoseError(f"{mat_path.name}: not a readable .mat file ({err.__class__.__name__}: {err})") from err
    if "Pose_Para" not in mat:
        raise HeadPoseError(f"{mat_path.name}: no Pose_Para in this .mat file, so no pose label "
                            f"(keys: {', '.join(k for k in mat if not k.startswith('__'))})")
    pose = _numbers(mat, "Pose_Para", mat_path).ravel()
    if pose.size < 3 or not np.all(np.isfinite(pose[:3])):
        raise HeadPoseError(f"{mat_path.name}: Pose_Para has no three finite angles")
    pitch, yaw, roll = np.degrees(pose[:3])
    landmarks = landmarks_3d = None
    if "pt3d_68" in mat and np.shape(mat["pt3d_68"]) == (3, 68):
        p = _numbers(mat, "pt3d_68", mat_path, finite=True)
        landmarks = p[:2].T.copy()
        landmarks_3d = np.stack([p[0], p[1], -p[2]], axis=1)  # depth row points to the camera
        source = "aflw2000"
    elif "pt2d" in mat and np.shape(mat["pt2d"]) == (2, 68):
        landmarks = _numbers(mat, "pt2d", mat_path, finite=True).T.copy()
        source = "300w_lp"
    else:
        source = "aflw2000"
    if landmarks is not None:
        box = _box_of(landmarks)
    elif "pt2d" in mat:
        pts = _numbers(mat, "pt2d", mat_path).T
        pts = pts[np.isfinite(pts).all(axis=1) & (pts >= 0).all(axis=1)] if pts.ndim == 2 else pts[:0]
        box = _box_of(pts) if len(pts) >= 2 else None
    else:
        box = None
    if image_path is None:
        image_path = next((mat_path.with_suffix(s) for s in _IMAGE_SUFFIXES
                           if mat_path.with_suffix(s).exists()), mat_path.with_suffix(".jpg"))
    return HeadPoseSample(Path(image_path), float(yaw), float(pitch), float(roll), landmarks,
                          landmarks_3d, box, source)


def _numbers(mat: dict, key: str, mat_path: Path, finite: bool = False) -> np.ndarray:
    """``mat[key]`` as float64, or :class:`HeadPoseError` naming the file and the variable when it
    holds something else (strings, structs) or, with ``finite``, NaN or infinity."""
    try:
        values = np.asarray(mat[key], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise HeadPoseError(f"{mat_path.name}: {key} is not numbers ({err})") from err
    if finite and not np.all(np.isfinite(values)):
        raise HeadPoseError(f"{mat_path.name}: {key} holds {int(np.sum(~np.isfinite(values)))} values that are "
                            "not finite (NaN or infinity)")
    return values


def _box_of(points: np.ndarray) -> tuple:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


def load_aflw2000(folder, max_abs_deg: float | None = MAX_ABS_DEG, recursive: bool = False):
    """Every ``.jpg`` + ``.mat`` pair of an AFLW2000-3D-style folder (300W-LP's too).

    max_abs_deg: drop faces with |yaw|, |pitch| or |roll| above this (degrees; the standard
    protocol's 99°; None keeps all). Returns ``(samples, skipped)``: the samples sorted by
    file name, and a list of ``(file name, reason)`` for every image without its ``.mat``,
    label file without pose, or face out of range. Raises FileNotFoundError for a missing
    folder and :class:`HeadPoseError` when the folder holds no usable pair at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {display_path(folder)}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file())
    images = {p.with_suffix(""): p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES}
    mats = {p.with_suffix(""): p for p in files if p.suffix.lower() == ".mat"}
    samples, skipped = [], []
    for stem in sorted(set(images) | set(mats)):
        if stem not in mats:
            skipped.append((images[stem].name, "no .mat label file beside the image"))
            continue
        if stem not in images:
            skipped.append((mats[stem].name, "no image beside the label file"))
            continue
        try:
            sample = read_pose_mat(mats[stem], images[stem])
        except HeadPoseError as err:
            skipped.append((mats[stem].name, str(err).split(": ", 1)[-1]))
            continue
        worst = float(np.max(np.abs(sample.angles_deg)))
        if max_abs_deg is not None and worst > max_abs_deg:
            skipped.append((images[stem].name, f"an angle of {worst:.0f}° is beyond ±{max_abs_deg:g}°"))
            continue
        samples.append(sample)
    if not samples:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        raise HeadPoseError(f"{display_path(folder)}: no usable image + .mat pair "
                            f"({len(skipped)} files skipped: {reasons}{more})")
    return samples, skipped


def load_pointing04(folder):
    """The Pointing'04 head-pose database (Gourier, Hall & Crowley 2004) in a folder.

    File names carry the labels: ``person{id:2}{series:1}{number:2}{tilt}{pan}.jpg``, tilt ≈
    pitch and pan ≈ yaw in degrees with AFLW2000's signs (checked by eye in the data's
    SOURCE.txt); there is no roll label (``roll_deg`` is nan). The face box comes from the
    ``.txt`` beside each image (centre x, centre y, width, height). Searched recursively.
    Returns ``(samples, skipped)`` like :func:`load_aflw2000`. Raises FileNotFoundError for a
    missing folder and :class:`HeadPoseError` when no image matches the naming scheme.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {display_path(folder)}")
    samples, skipped = [], []
    for path in sorted(folder.rglob("*.jpg")):
        match = _POINTING04.search(path.name)
        if not match:
            skipped.append((path.name, "name does not follow Pointing'04's scheme"))
            continue
        person, _series, _number, tilt, pan = match.groups()
        box = None
        txt = path.with_suffix(".txt")
        if txt.exists():
            numbers = [float(t) for t in txt.read_text(errors="replace").split()
                       if re.fullmatch(r"-?\d+(\.\d+)?", t)]
            if len(numbers) >= 4:
                cx, cy, w, h = numbers[-4:]
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if box is None:
            skipped.append((path.name, "no face box (.txt) beside the image"))
            continue
        samples.append(HeadPoseSample(path, float(pan), float(tilt), math.nan, box=box,
                                      source="pointing04", person=person))
    if not samples:
        raise HeadPoseError(f"{display_path(folder)}: no Pointing'04 image found")
    return samples, skipped


def person_split(samples, test_fraction: float = 0.25, seed: int = 0):
    """Split samples so that no person is on both sides (scikit-learn's GroupShuffleSplit).

    Pointing'04 has 186 images per person: split by image and the test set holds the
    training set's faces. Samples without a person each count as their own group.
    Returns ``(train, test)`` lists. Raises ValueError for a fraction outside (0, 1).
    """
    from sklearn.model_selection import GroupShuffleSplit

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = [s.person or str(s.image_path) for s in samples]
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    train_idx, test_idx = next(splitter.split(np.zeros(len(samples)), groups=groups))
    return [samples[i] for i in train_idx], [samples[i] for i in test_idx]


# --------------------------------------------------------------------------- conventions

def pose_matrix(yaw_deg, pitch_deg, roll_deg) -> np.ndarray:
    """The head's rotation in OpenCV's camera frame: ``Rx(-pitch) · Ry(yaw) · Rz(roll)``.

    Angles in degrees (scalars or arrays of one shape S); returns (3, 3) or (*S, 3, 3). A point
    of the frontal face model maps to ``R @ p`` in the camera frame. Convention of the
    AFLW2000-3D labels, checked in ``tests/test_headpose.py``.
    """
    from scipy.spatial.transform import Rotation

    angles = np.stack(np.broadcast_arrays(-np.asarray(pitch_deg, dtype=np.float64),
                                          np.asarray(yaw_deg, dtype=np.float64),
                                          np.asarray(roll_deg, dtype=np.float64)), axis=-1)
    shape = angles.shape[:-1]
    matrices = Rotation.from_euler("XYZ", angles.reshape(-1, 3), degrees=True).as_matrix()
    return matrices.reshape(*shape, 3, 3)


def pose_from_matrix(matrix) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a rotation matrix (3, 3) or (N, 3, 3): the inverse of
    :func:`pose_matrix`. Returns (3,) or (N, 3)."""
    from scipy.spatial.transform import Rotation

    import warnings

    matrix = np.asarray(matrix, dtype=np.float64)
    with warnings.catch_warnings():  # at yaw ±90° yaw and roll share one axis (gimbal lock):
        warnings.filterwarnings("ignore", message=".*[Gg]imbal lock.*")  # any split is exact
        x, y, z = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_euler("XYZ", degrees=True).T
    out = np.stack([y, -x, z], axis=-1)
    return out[0] if matrix.ndim == 2 else out


def flip_pose(angles_deg) -> np.ndarray:
    """The pose of the mirrored face: (yaw, pitch, roll) → (-yaw, pitch, -roll), degrees.
    angles_deg: (..., 3). Exact: a mirror in x conjugates Ry and Rz into their inverses."""
    out = np.array(angles_deg, dtype=np.float64, copy=True)
    out[..., 0] *= -1
    out[..., 2] *= -1
    return out


def rotate_pose(angles_deg, phi_deg) -> np.ndarray:
    """The pose after turning the image counter-clockwise by ``phi_deg`` degrees (PIL's
    ``Image.rotate(phi_deg)``): ``Rz(-φ) · R`` decomposed back into yaw, pitch, roll.

    angles_deg: (3,) or (N, 3); phi_deg: scalar or (N,). Returns the same shape. For a frontal
    face this is roll - φ with yaw and pitch unchanged; for a turned face all three change.
    """
    from scipy.spatial.transform import Rotation

    angles = np.asarray(angles_deg, dtype=np.float64)
    single = angles.ndim == 1
    angles = angles.reshape(-1, 3)
    phi = np.broadcast_to(np.asarray(phi_deg, dtype=np.float64), (len(angles),))
    turn = Rotation.from_euler("z", -phi[:, None], degrees=True).as_matrix()
    out = pose_from_matrix(turn @ pose_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))
    return out[0] if single else out


#: iBUG 68-point mirror permutation: landmark i of a face is landmark FLIP_68[i] of its mirror.
FLIP_68 = np.array(
    list(range(16, -1, -1))                      # jaw
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # eyebrows
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]    # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])          # inner lips


def flip_landmarks(landmarks, width: float) -> np.ndarray:
    """The 68 landmarks (68, 2) of the image mirrored left-right (``width`` pixels wide):
    x → width - x, and the points renumbered (:data:`FLIP_68`) so that point 36 stays the
    outer corner of the eye on the image's left."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    out = landmarks.copy()
    out[:, 0] = width - landmarks[:, 0]
    return out[FLIP_68]


def rotate_landmarks(landmarks, phi_deg: float, centre) -> np.ndarray:
    """Points (N, 2) in image pixels after turning the image counter-clockwise by ``phi_deg``
    degrees about ``centre`` (x, y), as PIL's ``Image.rotate(phi_deg, center=centre)`` does."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    c, s = math.cos(math.radians(phi_deg)), math.sin(math.radians(phi_deg))
    d = landmarks - np.asarray(centre, dtype=np.float64)
    # y points down, so a counter-clockwise turn on screen is (x, y) → (x c + y s, -x s + y c)
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c], axis=1) + centre


# --------------------------------------------------------------------------- a face without data

#: The image-left half of the schematic face (iBUG 68-point numbering; x right, y down, z away
#: from the camera, in centimetres of an adult face seen from the front). The other half is its
#: mirror (:data:`FLIP_68`). Drawn for this course from the usual proportions of a face (eyes at
#: mid-height, about one eye's width apart, nose a third of the face long), not fitted to any
#: data set, so it shares nothing with AFLW2000's labels.
_SCHEMATIC_HALF = {
    # jaw, from the temple at eye level down to the chin (8)
    0: (-7.0, -1.2, 2.5), 1: (-6.9, 0.3, 1.8), 2: (-6.7, 1.8, 1.2), 3: (-6.3, 3.2, 0.5),
    4: (-5.7, 4.6, -0.3), 5: (-4.8, 5.8, -1.2), 6: (-3.7, 6.8, -2.2), 7: (-2.0, 7.6, -3.2),
    8: (0.0, 7.9, -3.6),
    # eyebrow, outer to inner
    17: (-5.4, -3.0, -2.0), 18: (-4.5, -3.6, -3.0), 19: (-3.4, -3.8, -3.7), 20: (-2.3, -3.7, -4.2),
    21: (-1.2, -3.4, -4.5),
    # nose: bridge down to the tip (30), then the nostrils' base
    27: (0.0, -2.0, -4.3), 28: (0.0, -0.9, -5.1), 29: (0.0, 0.2, -5.9), 30: (0.0, 1.4, -6.7),
    31: (-1.3, 2.4, -4.6), 32: (-0.7, 2.6, -5.0), 33: (0.0, 2.7, -5.3),
    # eye: outer corner (36), upper lid, inner corner (39), lower lid
    36: (-4.3, -1.6, -2.6), 37: (-3.6, -2.0, -3.2), 38: (-2.6, -2.0, -3.4), 39: (-1.8, -1.6, -3.3),
    40: (-2.6, -1.3, -3.3), 41: (-3.6, -1.3, -3.1),
    # outer lips: corner (48), upper lip to the middle (51); lower lip from the middle (57)
    48: (-2.5, 4.6, -3.7), 49: (-1.6, 4.2, -4.4), 50: (-0.6, 3.9, -4.9), 51: (0.0, 4.0, -5.0),
    57: (0.0, 5.7, -4.6), 58: (-0.8, 5.6, -4.4), 59: (-1.7, 5.2, -4.1),
    # inner lips: corner (60), upper (61, 62), lower (66, 67)
    60: (-2.1, 4.6, -3.9), 61: (-0.8, 4.5, -4.5), 62: (0.0, 4.5, -4.7), 66: (0.0, 4.7, -4.6),
    67: (-0.8, 4.7, -4.4),
}

#: The parts of the 68-point scheme, as runs of points to join with lines (:func:`draw_face`).
FACE_PARTS_68 = {
    "jaw": list(range(0, 17)), "right eyebrow": list(range(17, 22)), "left eyebrow": list(range(22, 27)),
    "nose bridge": list(range(27, 31)), "nostrils": list(range(31, 36)),
    "right eye": list(range(36, 42)) + [36], "left eye": list(range(42, 48)) + [42],
    "outer lips": list(range(48, 60)) + [48], "inner lips": list(range(60, 68)) + [60],
}


def schematic_face() -> np.ndarray:
    """A generic 3-D face of 68 landmarks (iBUG numbering) that ships with the course: (68, 3),
    looking at the camera, in OpenCV's camera frame (x right, y down, z away from the camera),
    centred and scaled to unit RMS radius (:func:`normalised_landmarks`), symmetric left-right.

    Source: drawn by hand for this course (``_SCHEMATIC_HALF``: half a face in centimetres from
    the usual proportions, mirrored), not fitted to any data, so notebook 08 can teach PnP
    without a data set, and PnP on AFLW2000 can use a face that did not come from the labels'
    own 3-D fits. It is a caricature: a real person's face differs from it by several percent
    of its radius (a test measures how much on AFLW2000's fits).
    """
    points = np.full((68, 3), np.nan)
    for index, xyz in _SCHEMATIC_HALF.items():
        points[index] = xyz
        mirror = FLIP_68[index]
        if mirror != index:
            points[mirror] = (-xyz[0], xyz[1], xyz[2])
    # the points on the middle line that have no partner of their own
    for index in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        points[index, 0] = 0.0
    if np.isnan(points).any():  # pragma: no cover - a point missing from _SCHEMATIC_HALF
        raise AssertionError(f"schematic face lacks points {np.flatnonzero(np.isnan(points).any(axis=1))}")
    return normalised_landmarks(points)


def project_face(shape_3d, angles_deg, focal_px: float, face_radius_px: float = 60.0,
                 image_size=(450, 450), noise_px: float = 0.0, rng=None) -> np.ndarray:
    """The 68 image landmarks (68, 2), pixels, of a 3-D face turned to a known pose and seen by a
    pinhole camera: the synthetic data of notebook 08's geometry sections.

    shape_3d: (68, 3) face at unit RMS radius (e.g. :func:`schematic_face`); angles_deg: (yaw,
    pitch, roll) in degrees (:func:`pose_matrix`'s convention); focal_px: the camera's focal
    length in pixels; face_radius_px: the face's RMS radius in the image, pixels (the camera
    stands ``focal_px / face_radius_px`` face radii away); image_size: (width, height) pixels,
    the face at the centre; noise_px: standard deviation of Gaussian noise added to each
    coordinate, pixels (drawn from ``rng``, a ``numpy.random.Generator``; default seed 0).
    Raises ValueError for a non-positive focal length or radius, or a negative noise.
    """
    if focal_px <= 0 or face_radius_px <= 0 or noise_px < 0:
        raise ValueError(f"focal_px and face_radius_px must be > 0 and noise_px >= 0; got {focal_px}, "
                         f"{face_radius_px} and {noise_px}")
    shape_3d = np.asarray(shape_3d, dtype=np.float64)
    camera_points = shape_3d @ pose_matrix(*angles_deg).T
    camera_points[:, 2] += focal_px / face_radius_px
    width, height = image_size
    points = focal_px * camera_points[:, :2] / camera_points[:, 2:] + (width / 2, height / 2)
    if noise_px:
        rng = rng if rng is not None else np.random.default_rng(0)
        points = points + rng.normal(0.0, noise_px, points.shape)
    return points


def draw_face(ax, points, color: str = "black", linewidth: float = 1.0, **kwargs) -> None:
    """Draw 68 landmarks (68, 2) as lines joining each part of the face (:data:`FACE_PARTS_68`)
    on a matplotlib axis; ``kwargs`` go to ``ax.plot``."""
    points = np.asarray(points, dtype=np.float64)
    for run in FACE_PARTS_68.values():
        ax.plot(points[run, 0], points[run, 1], color=color, linewidth=linewidth, **kwargs)


def face_box(sample: HeadPoseSample, margin: float = 0.2, min_side_px: float = 20.0) -> tuple:
    """A square face box (x0, y0, x1, y1) in pixels: the landmarks' (or the sample's) box,
    widened by ``margin`` of its side on every side (HopeNet's loose crop: 20%).
    Raises :class:`HeadPoseError` naming the image when there is no box or its side is below
    ``min_side_px`` pixels (too small to crop)."""
    box = _box_of(sample.landmarks) if sample.landmarks is not None else sample.box
    if box is None:
        raise HeadPoseError(f"{sample.image_path.name}: no landmarks and no face box to crop")
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    if side < min_side_px:
        raise HeadPoseError(f"{sample.image_path.name}: the face is {side:.0f} px, below "
                            f"{min_side_px:g} px: too small to crop")
    half = side * (0.5 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - half, cy - half, cx + half, cy + half)


# --------------------------------------------------------------------------- baselines

def normalised_landmarks(points: np.ndarray) -> np.ndarray:
    """Landmarks (K, D) (pixels or model units, 2-D or 3-D) centred on their mean and scaled to
    unit RMS radius: the same face at any position and size gives the same array (K, D). The
    shape normalisation of :func:`mean_face_shape` and of the landmark MLP's inputs."""
    points = np.asarray(points)
    points = points - points.mean(axis=0)
    return points / np.sqrt((points ** 2).sum(axis=1).mean())


def mean_face_shape(samples) -> np.ndarray:
    """A generic 3-D face (68, 3): the ``landmarks_3d`` of the samples turned back to the
    front with their own labels (:func:`pose_matrix`), centred, scaled to unit RMS radius and
    averaged. Built from training images only, it is the 3-D model of the PnP baseline.
    Raises ValueError when no sample has 3-D landmarks."""
    shapes = [pose_matrix(s.yaw_deg, s.pitch_deg, s.roll_deg).T @ normalised_landmarks(s.landmarks_3d).T
              for s in samples if s.landmarks_3d is not None]
    if not shapes:
        raise ValueError("no sample has 3-D landmarks (AFLW2000-3D's pt3d_68)")
    return np.mean(shapes, axis=0).T


def solve_pnp_pose(landmarks, shape_3d, image_size, focal_px: float | None = None) -> np.ndarray:
    """Yaw, pitch, roll (degrees, (3,)) of a face from its 68 image landmarks and a 3-D face.

    landmarks: (68, 2) image pixels; shape_3d: (68, 3), e.g. :func:`mean_face_shape`;
    image_size: (width, height) pixels; focal_px: the camera's focal length in pixels
    (default: the image width). OpenCV's ``solvePnP`` with SQPnP (Terzakis & Lourakis 2020),
    which, unlike the default iterative solver, does not return faces behind the camera.
    Raises ValueError for arrays of the wrong shape or with non-finite values, a focal length
    that is not a positive number, and landmarks from which OpenCV finds no pose (all in one
    place, for instance).
    """
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float64)
    shape_3d = np.asarray(shape_3d, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[1] != 2 or shape_3d.shape != (len(landmarks), 3):
        raise ValueError(f"landmarks must be (N, 2) and shape_3d (N, 3); got {landmarks.shape} "
                         f"and {shape_3d.shape}")
    if not (np.isfinite(landmarks).all() and np.isfinite(shape_3d).all()):
        raise ValueError("landmarks and shape_3d must be finite")
    if focal_px is not None and not (np.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"focal_px must be a positive number of pixels, got {focal_px}")
    width, height = image_size
    f = float(focal_px if focal_px is not None else width)
    camera = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)
    scale = np.sqrt(((landmarks - landmarks.mean(0)) ** 2).sum(1).mean())
    try:
        ok, rvec, _ = cv2.solvePnP(shape_3d * scale, landmarks, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error as err:  # degenerate landmarks (all in one place): OpenCV's assertion
        raise ValueError(f"cv2.solvePnP found no pose ({str(err).strip().splitlines()[-1]})") from err
    if not ok:  # pragma: no cover - SQPnP succeeds on 68 non-degenerate points
        raise ValueError("cv2.solvePnP found no pose")
    return pose_from_matrix(cv2.Rodrigues(rvec)[0])


def pose_errors(predicted_deg, true_deg) -> dict:
    """Mean absolute error per angle, degrees: ``{"n", "yaw_mae_deg", "pitch_mae_deg",
    "roll_mae_deg", "mae_deg"}``. predicted_deg, true_deg: (N, 3) yaw, pitch, roll. An angle
    with a nan label (Pointing'04's roll) is left out of its column and of the mean (``None``
    when the column has no label at all). Angles stay inside ±99°, so the absolute difference
    is the circular absolute error here. Raises ValueError for arrays of different shapes."""
    predicted_deg = np.asarray(predicted_deg, dtype=np.float64)
    true_deg = np.asarray(true_deg, dtype=np.float64)
    if predicted_deg.shape != true_deg.shape or predicted_deg.ndim != 2 or predicted_deg.shape[1] != 3:
        raise ValueError(f"expected two (N, 3) arrays, got {predicted_deg.shape} and {true_deg.shape}")
    from .angles import circular_absolute_error_deg

    errors = circular_absolute_error_deg(predicted_deg, true_deg)  # nan where unlabelled
    out = {"n": int(len(true_deg))}
    columns = []
    for i, name in enumerate(ANGLES):
        known = np.isfinite(true_deg[:, i])
        value = float(errors[known, i].mean()) if known.any() else None
        out[f"{name}_mae_deg"] = value
        if value is not None:
            columns.append(value)
    out["mae_deg"] = float(np.mean(columns)) if columns else None
    return out


def landmark_features(landmarks) -> np.ndarray:
    """The input of the landmark MLP: (N, 68, 2) or (68, 2) landmarks, each face centred and
    scaled to unit RMS radius (so neither its place nor its size in the photo matters),
    flattened to (N, 136)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim == 2:
        landmarks = landmarks[None]
    return np.stack([normalised_landmarks(p).ravel() for p in landmarks])


def _augmented_landmarks(samples, copies: int, max_roll_deg: float, seed: int):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for s in samples:
        base, angles = s.landmarks, s.angles_deg
        xs.append(base)
        ys.append(angles)
        for _ in range(copies):
            points, target = base, angles
            if rng.random() < 0.5:
                points, target = flip_landmarks(points, 0.0), flip_pose(target)
            phi = rng.uniform(-max_roll_deg, max_roll_deg)
            points = rotate_landmarks(points, phi, points.mean(axis=0))
            xs.append(points)
            ys.append(rotate_pose(target, phi))
    return np.stack(xs), np.stack(ys)


def fit_landmark_mlp(samples, copies: int = 20, max_roll_deg: float = 30.0, seed: int = 0,
                     hidden=(128, 64), max_iter: int = 2000):
    """The landmark baseline: 68 landmarks → yaw, pitch, roll with a small MLP
    (scikit-learn's ``MLPRegressor`` behind a ``StandardScaler``).

    samples: training faces with 68 landmarks. Each is also shown ``copies`` times flipped
    (p = 0.5) and turned in the plane by up to ±max_roll_deg degrees, with labels updated
    exactly (:func:`flip_pose`, :func:`rotate_pose`). Returns the fitted pipeline; predict with
    :func:`predict_landmark_mlp`. Raises ValueError when no sample has landmarks.
    """
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    usable = [s for s in samples if s.landmarks is not None and np.isfinite(s.angles_deg).all()]
    if not usable:
        raise ValueError("no training sample has 68 landmarks and three angles")
    points, targets = _augmented_landmarks(usable, copies, max_roll_deg, seed)
    model = make_pipeline(StandardScaler(),
                          MLPRegressor(hidden_layer_sizes=hidden, alpha=1e-3, max_iter=max_iter,
                                       early_stopping=False, random_state=seed))
    model.fit(landmark_features(points), targets)
    return model


def predict_landmark_mlp(model, samples) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees predicted by :func:`fit_landmark_mlp`'s model."""
    return np.asarray(model.predict(landmark_features([s.landmarks for s in samples])), dtype=np.float64)


# --------------------------------------------------------------------------- FiftyOne

def faces_dataset(name: str, samples, overwrite: bool = False):
    """A FiftyOne dataset of faces: one sample per photo with ``yaw_deg``, ``pitch_deg``,
    ``roll_deg`` (degrees; None where unlabelled), ``source``, ``person``, the face box as a
    ``face`` detection and the 68 landmarks as ``landmarks`` keypoints (coordinates relative to
    the image's width and height, FiftyOne's convention).

    An existing dataset of that name is returned unchanged when it holds the same photos;
    otherwise :class:`rotation_utils.datasets.DatasetExistsError` is raised, and it is never
    deleted unless ``overwrite=True``.
    """
    from .datasets import DatasetExistsError, _import_fiftyone

    fo = _import_fiftyone()
    paths = sorted(str(Path(s.image_path).resolve()) for s in samples)
    if fo.dataset_exists(name):
        existing = fo.load_dataset(name)
        if sorted(existing.values("filepath")) == paths and not overwrite:
            return existing
        if not overwrite:
            raise DatasetExistsError(
                f"a FiftyOne dataset named {name!r} exists with other photos; it was left "
                "untouched. Pass overwrite=True to replace it, or choose another name.",
                reason="it holds other photos")
        existing.delete()
    dataset = fo.Dataset(name, persistent=True)
    rows = []
    for s in samples:
        with Image.open(s.image_path) as image:
            width, height = image.size
        fields = {"filepath": str(Path(s.image_path).resolve()), "source": s.source, "person": s.person}
        for angle, value in zip(ANGLES, s.angles_deg):
            fields[f"{angle}_deg"] = None if not np.isfinite(value) else float(value)
        sample = fo.Sample(**fields)
        box = s.box if s.box is not None else (_box_of(s.landmarks) if s.landmarks is not None else None)
        if box is not None:
            x0, y0, x1, y1 = box
            sample["face"] = fo.Detections(detections=[fo.Detection(
                label="face", bounding_box=[x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height])])
        if s.landmarks is not None:
            sample["landmarks"] = fo.Keypoints(keypoints=[fo.Keypoint(
                label="face68", points=[(float(x) / width, float(y) / height) for x, y in s.landmarks])])
        rows.append(sample)
    dataset.add_samples(rows, progress=False)
    return dataset


def course_faces_dataset(samples, base: str = "rotation-course-faces", max_tries: int = 20, verbose: bool = True):
    """Notebook 08's FiftyOne dataset of ``samples`` (:func:`faces_dataset`): ``base``, or when a
    dataset of that name holds other photos (another data folder, another clone), the next free
    name ``base-2``, ``base-3``… with a message; the existing one is never touched. Raises
    DatasetExistsError only after ``max_tries`` names."""
    from .datasets import DatasetExistsError

    for attempt in range(1, max_tries + 1):
        name = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return faces_dataset(name, samples)
        except DatasetExistsError:
            if attempt == max_tries:
                raise
            if verbose:
                print(f"the FiftyOne dataset {name!r} holds other photos; it is left untouched, trying {base}-{attempt + 1}")


# --------------------------------------------------------------------------- PyTorch dataset

class HeadPoseDataset(Dataset):
    """Face crops and their (yaw, pitch, roll) for a network, with label-correct augmentation.

    samples: :class:`HeadPoseSample` list. size: side of the crop fed to the network, pixels.
    margin: the loose crop's margin (:func:`face_box`). train: augment with a horizontal flip
    (p = 0.5, :func:`flip_pose`) and an in-plane turn uniform in ±max_roll_deg degrees
    (:func:`rotate_pose`: exact labels, not "roll - φ"). A sample without a roll label
    (Pointing'04) is only turned when ``unlabelled_roll_deg`` is given: its roll is then taken
    to be that value (Pointing'04's subjects sit upright: 0). Each face is cropped once, at
    √2 × its box so that a turn never shows a corner, and kept in memory.

    Item: ``(image, angles)``: a float tensor (3, size, size) normalised with the ImageNet mean
    and std, and a float tensor (3,) in degrees, nan where unlabelled.
    Raises :class:`HeadPoseError` (naming the file) for a face too small to crop, and
    :class:`rotation_utils.sources.BadImageError` for an unreadable photo.
    """

    def __init__(self, samples, size: int = 112, margin: float = 0.2, train: bool = False,
                 max_roll_deg: float = 30.0, unlabelled_roll_deg: float | None = None, seed: int = 0):
        from .sources import load_image

        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        self.samples = list(samples)
        self.size, self.train, self.max_roll_deg = size, train, max_roll_deg
        self.unlabelled_roll_deg = unlabelled_roll_deg
        self.context = size + 2 * int(math.ceil(size * (math.sqrt(2) - 1) / 2 + 1))  # centred: same parity
        self.seed, self._epoch = seed, 0
        self.crops = []
        for s in self.samples:
            x0, y0, x1, y1 = face_box(s, margin)
            grow = (x1 - x0) * (self.context / size - 1) / 2
            image = load_image(s.image_path)
            crop = image.crop((round(x0 - grow), round(y0 - grow), round(x1 + grow), round(y1 + grow)))
            self.crops.append(crop.resize((self.context, self.context), Image.BILINEAR))

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for each epoch, reproducible from ``seed``."""
        self._epoch = epoch

    def augmentation(self, index: int) -> tuple[bool, float]:
        """The draws of item ``index`` this epoch: (flipped, φ in degrees, counter-clockwise;
        0 when it is not turned). Always (False, 0.0) when ``train`` is False."""
        if not self.train:
            return False, 0.0
        rng = np.random.default_rng((self.seed, self._epoch, index))
        flip = bool(rng.random() < 0.5)
        phi = float(rng.uniform(-self.max_roll_deg, self.max_roll_deg)) if self.max_roll_deg > 0 else 0.0
        roll_known = np.isfinite(self.samples[index].roll_deg) or self.unlabelled_roll_deg is not None
        return flip, (phi if roll_known else 0.0)

    def __getitem__(self, index: int):
        return self.item(index, *self.augmentation(index))

    def item(self, index: int, flip: bool = False, phi_deg: float = 0.0):
        """Item ``index`` flipped or not and turned counter-clockwise by ``phi_deg`` degrees,
        with its labels updated (:func:`flip_pose`, :func:`rotate_pose`); what ``dataset[i]``
        returns for its own draws. A sample without roll is turned with ``unlabelled_roll_deg``
        (or 0) as its roll."""
        from .datasets import normalize_input

        image, angles = self.crops[index], self.samples[index].angles_deg.copy()
        if flip:
            image, angles = image.transpose(Image.FLIP_LEFT_RIGHT), flip_pose(angles)
        if phi_deg:
            if not np.isfinite(angles[2]):
                angles[2] = self.unlabelled_roll_deg or 0.0
            image = image.rotate(phi_deg, resample=Image.BILINEAR)
            angles = rotate_pose(angles, phi_deg)
        offset = (self.context - self.size) // 2
        image = image.crop((offset, offset, offset + self.size, offset + self.size))
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        return normalize_input(tensor), torch.tensor(angles, dtype=torch.float32)


def dlib_landmarks(image_path, upsample: int = 1) -> np.ndarray | None:
    """The 68 landmarks (68, 2, image pixels) Dlib finds on the largest face of a photo, or
    None when its detector finds no face. Dlib's HOG face detector and its 68-point shape
    predictor (Kazemi & Sullivan 2014, trained on iBUG 300-W), as in HopeNet's "Dlib" row.
    Raises ImportError with the install command when ``dlib-bin`` or
    ``face-recognition-models`` (which ships the predictor) is missing."""
    import importlib.util

    from .sources import load_image

    spec = importlib.util.find_spec("face_recognition_models")
    try:
        import dlib
    except ImportError as err:
        raise ImportError("Dlib is an optional extra: pip install dlib-bin face-recognition-models "
                          "(or pip install -e '.[headpose]')") from err
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("Dlib's 68-point predictor comes with face-recognition-models: "
                          "pip install face-recognition-models")
    global _DLIB
    if _DLIB is None:
        model = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
        _DLIB = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model)))
    detector, predictor = _DLIB
    pixels = np.asarray(load_image(image_path))
    faces = detector(pixels, upsample)
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(pixels, face)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


_DLIB = None


def head_axes_2d(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 2): the image directions (x right, y down) of the head's three axes, as unit vectors
    seen by a distant camera: its right (the image's right for a frontal face), its up, and
    the direction its nose points. Orthographic projection of :func:`pose_matrix`'s columns."""
    r = pose_matrix(yaw_deg, pitch_deg, roll_deg)
    return np.stack([r[:2, 0], -r[:2, 1], -r[:2, 2]])


def draw_pose_axes(ax, yaw_deg: float, pitch_deg: float, roll_deg: float, centre, length: float,
                   linestyle: str = "-", label: str | None = None, linewidth: float = 2.5) -> None:
    """Draw the head's axes (:func:`head_axes_2d`) on a matplotlib image axis from ``centre``
    (x, y pixels; the notebook uses the crop's centre), ``length`` pixels long: red the head's
    right, green its up, blue the direction of its nose."""
    for (dx, dy), colour, name in zip(head_axes_2d(yaw_deg, pitch_deg, roll_deg), ("tab:red", "tab:green", "tab:blue"),
                                      ("right", "up", "nose")):
        ax.plot([centre[0], centre[0] + length * dx], [centre[1], centre[1] + length * dy], color=colour,
                linestyle=linestyle, linewidth=linewidth, label=f"{label}: {name}" if label else None)


# --------------------------------------------------------------------------- HopeNet

class SmallCNN(nn.Module):
    """The seed project's small CNN: four blocks of conv 3×3 + batch norm + ReLU + 2×2 max
    pooling, 32 → 64 → 128 → 256 channels, then global average pooling. Output (N, 256)."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for out in (32, 64, 128, 256):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = 256

    def forward(self, x):
        return self.features(x)


def _feature_network(backbone: str, weights: str) -> tuple[nn.Module, int]:
    if backbone == "small_cnn":
        net = SmallCNN()
        return net, net.out_features
    if backbone == "mobilenet_v2":
        from torchvision import models as tv_models

        from .backbones import WeightsUnavailableError
        if weights == "imagenet":
            try:
                net = tv_models.mobilenet_v2(weights=tv_models.MobileNet_V2_Weights.IMAGENET1K_V1)
            except Exception as err:
                raise WeightsUnavailableError(
                    f"MobileNetV2's ImageNet weights could not be had ({err.__class__.__name__}); "
                    "use weights='random' or put mobilenet_v2-b0353104.pth in $TORCH_HOME/hub/checkpoints/") from err
        else:
            net = tv_models.mobilenet_v2(weights=None)
        features = net.classifier[-1].in_features
        net.classifier = nn.Identity()
        return net, features
    from .backbones import backbone_spec, build_backbone

    net = build_backbone(backbone, weights)
    attr = backbone_spec(backbone).head_attr
    features = getattr(net, attr).in_features
    setattr(net, attr, nn.Identity())
    return net, features


class HeadPoseNet(nn.Module):
    """HopeNet: a backbone and three fully connected heads of ``bins`` bins, one per angle.

    backbone: ``"efficientnet_lite0"`` or ``"resnet18"`` (:mod:`rotation_utils.backbones`),
    ``"mobilenet_v2"`` (torchvision) or ``"small_cnn"`` (:class:`SmallCNN`, always random).
    weights: ``"imagenet"`` or ``"random"``; raises
    :class:`rotation_utils.backbones.WeightsUnavailableError` when ImageNet weights cannot be had.
    Input (N, 3, H, W) normalised with the ImageNet mean and std; output (N, 3, bins) logits
    for yaw, pitch, roll. Source: Ruiz et al., CVPRW 2018 (their backbone is ResNet50).
    """

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str = "imagenet",
                 bins: int = HOPENET_BINS):
        super().__init__()
        if backbone == "small_cnn":
            weights = "random"
        self.backbone_name, self.weights, self.bins = backbone, weights, bins
        self.features, width = _feature_network(backbone, weights)
        self.heads = nn.Linear(width, 3 * bins)

    def forward(self, x):
        return self.heads(self.features(x)).view(len(x), 3, self.bins)


def bin_centres_deg(bins: int = HOPENET_BINS, width_deg: float = BIN_WIDTH_DEG) -> torch.Tensor:
    """(bins,) centres of the bins in degrees, from -99° + 1.5° to 99° - 1.5° for HopeNet's
    66 × 3°. (HopeNet's code uses the bins' left edges, ``3 i - 99``, which biases every
    expected value by -1.5°; the centres do not.)"""
    low = -bins * width_deg / 2
    return low + width_deg * (torch.arange(bins, dtype=torch.float32) + 0.5)


def angle_to_bin(angle_deg: torch.Tensor, bins: int = HOPENET_BINS, width_deg: float = BIN_WIDTH_DEG) -> torch.Tensor:
    """The bin index (long, same shape) of angles in degrees, clamped into [0, bins - 1]."""
    low = -bins * width_deg / 2
    return torch.floor((angle_deg - low) / width_deg).long().clamp(0, bins - 1)


def expected_angle_deg(logits: torch.Tensor, width_deg: float = BIN_WIDTH_DEG) -> torch.Tensor:
    """The softmax's expected value over the bins: (..., bins) logits → (...) degrees.
    On a line, not a circle: the bins cover [-99°, 99°) and no label crosses ±180°."""
    centres = bin_centres_deg(logits.shape[-1], width_deg).to(logits.device, logits.dtype)
    return (logits.softmax(dim=-1) * centres).sum(dim=-1)


def hopenet_loss(logits: torch.Tensor, angles_deg: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """HopeNet's dual loss, summed over yaw, pitch and roll: cross-entropy on the bin of the
    true angle + α · MSE(expected angle, true angle) (degrees²).

    logits: (N, 3, bins); angles_deg: (N, 3) degrees, nan where unlabelled (left out).
    α = 0 is plain classification. Returns a scalar (0 when nothing is labelled).
    Source: Ruiz et al., CVPRW 2018, eq. 2 (they use α = 1 and 2; 0.001 with 300W-LP's scale).
    """
    known = torch.isfinite(angles_deg)
    if not known.any():
        return logits.sum() * 0.0
    target = torch.where(known, angles_deg, torch.zeros_like(angles_deg))
    ce = nn.functional.cross_entropy(logits.permute(0, 2, 1), angle_to_bin(target, logits.shape[-1]),
                                     reduction="none")
    mse = (expected_angle_deg(logits) - target) ** 2
    per = (ce + alpha * mse) * known
    return per.sum() / known.sum(dim=0).clamp(min=1).sum() * 3


def train_headpose(model: HeadPoseNet, dataset: HeadPoseDataset, epochs: int = 3, alpha: float = 1.0,
                   lr: float = 1e-3, batch_size: int = 16, clip: float = 1.0, seed: int = 0,
                   progress: bool = False, workers: int = 0) -> dict:
    """Train HopeNet the way its paper does: Adam (lr 1e-3), batch 16, gradients clipped at
    norm 1.0, the dual loss with ``alpha``. Returns ``{"epochs", "seconds", "images_per_s",
    "loss"}`` (loss: the mean of each epoch). Runs on the GPU when there is one."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed), drop_last=len(dataset) > batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, seen, start = [], 0, time.perf_counter()
    model.train()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        total, batches = 0.0, 0
        for images, angles in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False):
            images, angles = images.to(device), angles.to(device)
            loss = hopenet_loss(model(images), angles, alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            total, batches, seen = total + loss.item(), batches + 1, seen + len(images)
        losses.append(total / max(batches, 1))
    seconds = time.perf_counter() - start
    model.eval()
    return {"epochs": epochs, "seconds": seconds, "images_per_s": seen / seconds if seconds else None,
            "loss": losses}


@torch.no_grad()
def predict_headpose(model: HeadPoseNet, dataset: HeadPoseDataset, batch_size: int = 64) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees: the expected value of each head's softmax, for the
    dataset's items in order (no augmentation)."""
    from .precision import for_inference, inference_input

    device = next(model.parameters()).device
    was_train, dataset.train = dataset.train, False
    model = for_inference(model, device)
    out = []
    try:
        for start in range(0, len(dataset), batch_size):
            images = torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))])
            out.append(expected_angle_deg(model(inference_input(images, device))).cpu().numpy())
    finally:
        dataset.train = was_train
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 3))


# --------------------------------------------------------------------------- the course's experiment

def head_pose_dir(folder=None) -> Path:
    """The head-pose data folder: ``folder``, else ``ROTATION_COURSE_HEAD_POSE`` (a relative path
    is looked up from the cwd, then from the project root, as for the photos). It holds
    ``aflw2000_sample/``, ``aflw2000_more/`` and ``pointing04/`` (any of them may be missing).
    Raises :class:`HeadPoseDataUnavailable` (with what to do) when neither is given or the
    folder does not exist."""
    import os

    value = folder or os.environ.get(HEAD_POSE_ENV, "").strip()
    if not value:
        raise HeadPoseDataUnavailable(
            f"no head-pose data: set {HEAD_POSE_ENV} to a folder holding AFLW2000-3D images with their "
            ".mat files (aflw2000_sample/, aflw2000_more/) and Pointing'04 (pointing04/). AFLW2000-3D: "
            "http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm (research use); "
            "Pointing'04: the INRIA PRIMA Head Pose Image Database.")
    from .config import _relative_to_cwd_or_project

    path = _relative_to_cwd_or_project(Path(value).expanduser())  # a kernel starts in notebooks/
    if not path.is_dir():
        raise HeadPoseDataUnavailable(f"{HEAD_POSE_ENV} / folder names {display_path(path)}, which does not exist")
    return path


#: Environment variable naming the head-pose data folder (notebook 08, ``.ci/run``).
HEAD_POSE_ENV = "ROTATION_COURSE_HEAD_POSE"


class HeadPoseDataUnavailable(FileNotFoundError):
    """The head-pose data folder is not set or not there; the message says what to do."""


@dataclass
class HeadPoseSplits:
    """The course's head-pose data, split so that no face is on both sides.

    aflw_train: ``aflw2000_more/`` (faces within ±99°); aflw_test: ``aflw2000_sample/``;
    pointing_train / pointing_test: Pointing'04 split by person (:func:`person_split`);
    skipped: ``(file, reason)`` of every file left out.
    """

    aflw_train: list
    aflw_test: list
    pointing_train: list = field(default_factory=list)
    pointing_test: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def course_splits(folder=None, pointing_test_fraction: float = 0.25, seed: int = 0) -> HeadPoseSplits:
    """Read the head-pose folder (:func:`head_pose_dir`) into :class:`HeadPoseSplits`.
    Raises :class:`HeadPoseDataUnavailable` without the folder or without its AFLW2000 parts."""
    root = head_pose_dir(folder)
    skipped = []
    parts = {}
    for name in ("aflw2000_more", "aflw2000_sample"):
        if not (root / name).is_dir():
            raise HeadPoseDataUnavailable(f"{display_path(root)} has no {name}/ folder")
        parts[name], skipped_here = load_aflw2000(root / name)
        skipped += skipped_here
    pointing_train = pointing_test = []
    if (root / "pointing04").is_dir():
        pointing, skipped_here = load_pointing04(root / "pointing04")
        skipped += skipped_here
        pointing_train, pointing_test = person_split(pointing, pointing_test_fraction, seed)
    return HeadPoseSplits(parts["aflw2000_more"], parts["aflw2000_sample"], pointing_train, pointing_test, skipped)


def enable_data_cells(available: bool, reason: str = "") -> None:
    """Register the cell magic ``%%head_pose_data`` in the running IPython kernel: a cell that
    starts with it runs as usual when ``available`` is true, and otherwise prints one line
    ("skipped: ..." with ``reason``) and does nothing. Notebook 08 marks with it the cells
    that need AFLW2000-3D or Pointing'04 (``ROTATION_COURSE_HEAD_POSE``), so that the rest of
    the notebook runs everywhere. An error inside a marked cell is raised again, so that the
    cell fails as any other would.
    Raises RuntimeError outside IPython (a plain Python script has no cell magics).
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("enable_data_cells needs an IPython kernel (a notebook); a script can test "
                           "`splits is not None` itself")

    def head_pose_data(line, cell):
        if not available:
            print(f"skipped: this cell needs the head-pose data{f' ({reason})' if reason else ''}")
            return
        shell.run_cell(cell).raise_error()

    shell.register_magic_function(head_pose_data, magic_kind="cell", magic_name="head_pose_data")


def training_set(splits: HeadPoseSplits, size: int = 112, aflw_repeats: int = 8, max_roll_deg: float = 30.0,
                 seed: int = 0) -> Dataset:
    """The CNN's training set: Pointing'04's training persons (yaw and pitch; roll taken as 0
    once a face is turned) and the AFLW2000 training faces shown ``aflw_repeats`` times (all
    three angles), flipped and turned in the plane with exact labels (:class:`HeadPoseDataset`)."""
    parts = [HeadPoseDataset(splits.aflw_train * aflw_repeats, size, train=True, max_roll_deg=max_roll_deg, seed=seed)]
    if splits.pointing_train:
        parts.append(HeadPoseDataset(splits.pointing_train, size, train=True, max_roll_deg=max_roll_deg,
                                     unlabelled_roll_deg=0.0, seed=seed + 1))
    return _EpochConcat(parts)


class _EpochConcat(torch.utils.data.ConcatDataset):
    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            part.set_epoch(epoch)


def run_cnn(splits: HeadPoseSplits, backbone: str = "efficientnet_lite0", weights: str = "imagenet",
            alpha: float = 1.0, epochs: int = 3, size: int = 112, seed: int = 0, progress: bool = False,
            test_sets: dict | None = None) -> dict:
    """Train one HopeNet (:class:`HeadPoseNet`, :func:`train_headpose`) on
    :func:`training_set` and score it on the AFLW2000 test faces and Pointing'04's test persons.

    Returns ``{"backbone", "weights", "alpha", "epochs", "size", "parameters", "train_seconds",
    "train_images_per_s", "aflw2000": pose_errors, "pointing04": pose_errors, "model"}``.
    test_sets: prebuilt ``{"aflw2000": HeadPoseDataset, "pointing04": ...}`` to save the crops.
    """
    from .config import seed_everything

    seed_everything(seed)
    model = HeadPoseNet(backbone, weights)
    train = training_set(splits, size, seed=seed)
    fitted = train_headpose(model, train, epochs=epochs, alpha=alpha, seed=seed, progress=progress)
    test_sets = test_sets or evaluation_sets(splits, size)
    row = {"backbone": backbone, "weights": model.weights, "alpha": alpha, "epochs": epochs, "size": size,
           "parameters": sum(p.numel() for p in model.parameters()),
           "train_seconds": fitted["seconds"], "train_images_per_s": fitted["images_per_s"]}
    for name, dataset in test_sets.items():
        truth = np.stack([s.angles_deg for s in dataset.samples])
        row[name] = pose_errors(predict_headpose(model, dataset), truth)
    row["model"] = model
    return row


def evaluation_sets(splits: HeadPoseSplits, size: int = 112) -> dict:
    """The test crops, without augmentation: ``{"aflw2000": ..., "pointing04": ...}``
    (Pointing'04 only when the split has it)."""
    sets = {"aflw2000": HeadPoseDataset(splits.aflw_test, size)}
    if splits.pointing_test:
        sets["pointing04"] = HeadPoseDataset(splits.pointing_test, size)
    return sets


def load_folder(folder, max_abs_deg: float | None = MAX_ABS_DEG):
    """Faces of a folder of either kind, told apart by its files: AFLW2000-3D / 300W-LP
    (``.jpg`` + ``.mat``, searched in the folder itself) or Pointing'04 (``person*.jpg``,
    searched recursively). Returns ``(samples, skipped, kind)`` with kind ``"aflw2000"`` or
    ``"pointing04"``. Raises FileNotFoundError for a missing folder and
    :class:`HeadPoseError` when it holds neither."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {display_path(folder)}")
    if any(folder.glob("*.mat")):
        return (*load_aflw2000(folder, max_abs_deg), "aflw2000")
    if any(_POINTING04.search(p.name) for p in folder.rglob("person*.jpg")):
        return (*load_pointing04(folder), "pointing04")
    raise HeadPoseError(f"{display_path(folder)}: neither AFLW2000-style .jpg + .mat pairs nor Pointing'04 images")


def save_headpose_checkpoint(model: HeadPoseNet, path, metadata: dict, overwrite: bool = False) -> Path:
    """Write ``{"state_dict", "metadata"}`` to ``path`` (a temporary file renamed into place, so
    an interrupted write leaves no half file). metadata: JSON-like (backbone, size...).
    Raises FileExistsError for an existing file unless ``overwrite``, OSError (errno ENOSPC)
    for a full disk, with the old file as it was."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{display_path(path)} exists; pass overwrite (--overwrite) to replace it")
    from .config import save_torch_atomically

    meta = {"backbone": model.backbone_name, "weights": model.weights, "bins": model.bins, **metadata}
    return save_torch_atomically(path, {"state_dict": model.state_dict(), "metadata": meta})


def load_headpose_checkpoint(path, device="cpu") -> tuple[HeadPoseNet, dict]:
    """A :class:`HeadPoseNet` and its metadata from :func:`save_headpose_checkpoint`'s file,
    read with ``torch.load(weights_only=True)``. Raises FileNotFoundError for a missing file
    and ValueError for a file that is not a head-pose checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {display_path(path)}")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path.name}: not a readable checkpoint ({err.__class__.__name__})") from err
    if not isinstance(saved, dict) or "state_dict" not in saved or "backbone" not in saved.get("metadata", {}):
        raise ValueError(f"{path.name}: not a head-pose checkpoint (written by `rotation-course headpose train`)")
    meta = saved["metadata"]
    model = HeadPoseNet(meta["backbone"], "random", meta.get("bins", HOPENET_BINS))
    model.load_state_dict(saved["state_dict"])
    model.weights = meta.get("weights", "random")
    return model.to(device).eval(), meta
