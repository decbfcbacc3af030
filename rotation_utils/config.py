"""Where the course reads and writes, the profile switch, and fixed seeds.

Every notebook's first code cell calls :func:`notebook_setup`; the command line reads the
same variables. Taught in notebook 01 (the profile cell) and used everywhere.

Environment variables (all optional):

- ``ROTATION_COURSE_PROFILE``: ``quick`` (default; CPU, offline, minutes), ``workshop`` or ``full``.
- ``ROTATION_COURSE_IMAGES``: a folder of photos (several joined with ``os.pathsep``); without it
  the photos that ship inside installed packages are used (see :mod:`rotation_utils.sources`).
- ``ROTATION_COURSE_RUN_DIR``: where checkpoints, figures and summaries go
  (default ``<project>/runs/latest``).
- ``ROTATION_COURSE_DATA_DIR``: where rotated images of the FiftyOne dataset are written
  (default ``<project>/data``).
- ``ROTATION_COURSE_MNIST``: a folder with the MNIST IDX files for notebook 02
- ``ROTATION_COURSE_HEAD_POSE``: the head-pose folder of notebook 08 (AFLW2000-3D ``.jpg`` +
  ``.mat`` in ``aflw2000_more/`` and ``aflw2000_sample/``, Pointing'04 in ``pointing04/``);
  without it ``make course`` and ``make test`` skip that notebook and say so
  (default: scikit-learn's 8×8 digits, which ship offline).
- ``ROTATION_COURSE_TEST_CLOCK``: for the test suite only (``make test`` sets it while nbval
  runs the notebooks): a factor in (0, 1] applied to every training clock
  (:func:`clock_scale`), so that the notebooks run end to end in less time. Never set it to
  learn: the models come out weaker and the notebooks' prose describes full-clock runs.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np

__all__ = [
    "PROJECT_ROOT",
    "seed_everything",
    "run_dir",
    "data_dir",
    "image_folders",
    "display_path",
    "notebook_setup",
    "write_atomically",
    "write_bytes_atomically",
    "save_torch_atomically",
    "remove_stale_temporaries",
    "clock_scale",
    "TEST_CLOCK_VARIABLE",
]

#: The variable of :func:`clock_scale`.
TEST_CLOCK_VARIABLE = "ROTATION_COURSE_TEST_CLOCK"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The checkout's root when the package is used from a clone (editable install), else the cwd.
PROJECT_ROOT = (_PACKAGE_DIR.parent if (_PACKAGE_DIR.parent / "pyproject.toml").exists()
                else Path.cwd())


def clock_scale() -> float:
    """The factor applied to training clocks (``profile.time_budget_s``): the value of
    ``ROTATION_COURSE_TEST_CLOCK``, 1.0 when it is unset or empty. The test suite sets it while
    nbval executes the notebooks (see conftest.py). Raises ValueError for a value that is not a
    number in (0, 1]."""
    text = os.environ.get(TEST_CLOCK_VARIABLE, "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = float("nan")
    if not 0 < scale <= 1:
        raise ValueError(f"{TEST_CLOCK_VARIABLE} must be a number in (0, 1], got {text!r}")
    return scale


def seed_everything(seed: int = 0) -> None:
    """Fix the seeds of Python, NumPy and PyTorch (CPU and CUDA) in one place.

    seed: a non-negative integer. Deterministic algorithms are not forced (they would slow
    training); on the CPU the same seed gives the same numbers run after run.
    """
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def run_dir(create: bool = True) -> Path:
    """Folder for checkpoints, figures and ``training_summary.json`` (``ROTATION_COURSE_RUN_DIR``)."""
    path = Path(os.environ.get("ROTATION_COURSE_RUN_DIR") or PROJECT_ROOT / "runs" / "latest")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(create: bool = True) -> Path:
    """Folder for rotated images written by the dataset builder (``ROTATION_COURSE_DATA_DIR``)."""
    path = Path(os.environ.get("ROTATION_COURSE_DATA_DIR") or PROJECT_ROOT / "data")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def image_folders() -> list[Path]:
    """Folders named by ``ROTATION_COURSE_IMAGES`` (``os.pathsep``-separated); [] when unset.
    A relative folder is looked up from the cwd, then from the project root.

    Raises FileNotFoundError if a named folder does not exist, so a typo is not silently
    replaced by the offline default.
    """
    value = os.environ.get("ROTATION_COURSE_IMAGES", "").strip()
    if not value:
        return []
    folders = [_relative_to_cwd_or_project(Path(p.strip()).expanduser())
               for p in value.split(os.pathsep) if p.strip()]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"ROTATION_COURSE_IMAGES names folders that do not exist: {missing}. "
            "Unset it to use the offline photos that ship with the installed packages.")
    return folders


def _relative_to_cwd_or_project(path: Path) -> Path:
    """A relative path as given from the cwd or, when it is not there, from the project root
    (a variable set in the project root must still work in a kernel started in notebooks/)."""
    if path.is_absolute() or path.exists() or not (PROJECT_ROOT / path).exists():
        return path
    return PROJECT_ROOT / path


def display_path(path) -> str:
    """A path as it should be shown in stored outputs, never an absolute machine path.

    Inside the project or beside it (``../shared``): relative to the cwd. Under the home
    folder: ``~/…``. Elsewhere: ``…/`` and the last two parts.
    """
    path = Path(path).expanduser().resolve()
    workspace = PROJECT_ROOT.resolve().parent
    if path == workspace or workspace in path.parents:
        return os.path.relpath(path, Path.cwd())
    home = Path.home().resolve()
    if home in path.parents:
        return "~/" + path.relative_to(home).as_posix()
    return "…/" + "/".join(path.parts[-2:])


#: A temporary file of :func:`write_atomically`: ``.<name>.<pid>@<host>.<random>.tmp`` (hidden, so that a
#: leftover is never taken for a photo or a checkpoint; the process and machine say whose it is).
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[0-9a-f]{6})\.[0-9a-f]{8}\.tmp$")
#: The temporary names of the course's earlier versions (``tempfile.mkstemp``): no owner recorded.
_OLD_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: A temporary file whose owner cannot be asked (another machine, an earlier version) is stale
#: after this long: no single file takes a day to write.
_STALE_AFTER_S = 24 * 3600
#: Folders this process has cleaned of stale temporary files already.
_SWEPT: set[str] = set()


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process: alive
        return True
    return True


def _is_stale(entry: Path, name: str | None = None) -> bool:
    import time

    match = _TMP_NAME.match(entry.name)
    if match is not None:
        if name is not None and match["name"] != name[:150]:
            return False
        if match["host"] == _host_tag():
            pid = int(match["pid"])
            return pid != os.getpid() and not _alive(pid)
    else:
        match = _OLD_TMP_NAME.match(entry.name)
        if match is None or (name is not None and match["name"] != name):
            return False
    try:
        return time.time() - entry.lstat().st_mtime > _STALE_AFTER_S
    except OSError:
        return False


def remove_stale_temporaries(folder, name: str | None = None, recursive: bool = False) -> list[Path]:
    """Remove the temporary files that :func:`write_atomically` left in ``folder`` when its
    process was killed (SIGKILL, a power cut: no ``finally`` ran). A file is stale when the
    process that wrote it (recorded in its name) is no longer running on this machine, or, for
    one of another machine or of the course's earlier versions, when it is more than a day old;
    the temporary files of runs still going are left alone. name: only those of this output
    file name. recursive: also in sub-folders (links to folders are not followed).
    Returns the paths removed. Raises nothing: a file that cannot be removed is left."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    walk = os.walk(folder, followlinks=False) if recursive else [(str(folder), [], os.listdir(folder))]
    for here, _dirs, files in walk:
        for entry in files:
            path = Path(here) / entry
            if entry.endswith(".tmp") and entry.startswith(".") and _is_stale(path, name):
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


def write_atomically(path, write, mode: int | None = None, verify=None) -> Path:
    """Write a file so that it is either complete or absent: ``write(tmp)`` writes a temporary
    file (a ``str`` path ending in ``.tmp``, in the same folder, so the rename stays on one disk;
    give image writers the format explicitly), which is then renamed to ``path``. If ``write``
    fails, or the run is interrupted, the temporary file is removed and ``path`` is untouched;
    those a killed process left in the folder are removed by the first write there of each
    later process (:func:`remove_stale_temporaries`). The folder is created if missing.

    mode: the new file's permission bits (e.g. those of the photo it comes from); default those
    of any new file (0o666 less the umask), never the 0o600 of a temporary file.
    verify: ``verify(tmp)`` re-reads the written file before it is renamed into place and
    raises if it is not right, so that a file that could not be written whole is never kept.
    Returns ``path``. Every file the course writes for a user (checkpoints, images, exports)
    goes through here; the errors of ``write`` and ``verify`` are raised as they are (a full
    disk: OSError with errno ENOSPC)."""
    import secrets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.path.realpath(path.parent)
    if folder not in _SWEPT:  # once per folder and process: a folder of 10,000 photos is listed once
        remove_stale_temporaries(path.parent)
        _SWEPT.add(folder)
    tmp = path.parent / f".{path.name[:150]}.{os.getpid()}@{_host_tag()}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as to any new file
    try:
        write(str(tmp))
        if verify is not None:
            verify(str(tmp))
        if mode is not None:
            os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, str(tmp)):
            err.filename = str(path)  # the file the user asked for, not the hidden temporary one
        raise
    return path


def write_bytes_atomically(path, data: bytes, mode: int | None = None, verify=None) -> Path:
    """:func:`write_atomically` for bytes made in memory: a serialiser that fails half-way
    through a file (PyTorch's zip writer on a full disk aborts with an internal error) runs
    into a buffer instead, and only Python's own write meets the disk, so a full disk is an
    OSError (ENOSPC) like any other. Returns ``path``."""
    return write_atomically(path, lambda tmp: Path(tmp).write_bytes(data), mode=mode, verify=verify)


def save_torch_atomically(path, obj, mode: int | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` through memory and :func:`write_bytes_atomically`: PyTorch's
    zip writer, meeting a full disk, aborts with an internal error ("inline_container.cc");
    writing its bytes gives an OSError (ENOSPC) and leaves the old file as it was. Returns ``path``."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes_atomically(path, buffer.getvalue(), mode=mode)


def notebook_setup(seed: int = 0, quiet: bool = False):
    """The profile cell of every notebook: fix seeds, pick the profile, say where things go.

    Returns the :class:`rotation_utils.profiles.Profile` chosen by ``ROTATION_COURSE_PROFILE``.
    Raises ValueError for an unknown profile name.
    """
    import warnings

    from .profiles import get_profile

    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    seed_everything(seed)
    profile = get_profile()
    if not quiet:
        try:
            import torch
            device = "cuda" if torch.cuda.is_available() else "cpu"
            threads = torch.get_num_threads()
        except ImportError:  # pragma: no cover
            device, threads = "cpu", os.cpu_count()
        print(f"profile: {profile.name} ({profile.description})")
        print(f"device: {device}, {threads} CPU threads, seed {seed}")
        print(f"run folder: {display_path(run_dir())}")
    return profile
