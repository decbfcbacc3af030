"""Open the notebooks in Google Colab: the badge, and the first cell's install.

Every notebook starts with an "Open in Colab" badge and a code cell tagged ``colab``
(written by ``scripts/colab_cells.py``). Outside Colab that cell prints one line and does
nothing. Inside Colab it clones the course's repository, then calls :func:`setup_colab`,
which installs the course with its ``course`` extras (FiftyOne's own MongoDB runs on Colab's
Ubuntu, so nothing else is needed), moves into the clone's ``notebooks/`` folder and, on a GPU
runtime, chooses the ``workshop`` profile. That profile is also what fetches COCO-2017 through
the FiftyOne zoo: with no ``ROTATION_COURSE_IMAGES`` folder named, the ``workshop`` and
``full`` profiles take their photos from the zoo (``Profile.coco_split``; see
:func:`rotation_utils.sources.resolve_photos`), and the CPU profiles use the photos shipped
inside packages. There is no separate switch for COCO.

``COURSE_REPOSITORY`` and ``COURSE_BRANCH`` say where the course is published. They are the
one place to change when the course is published under another GitHub owner, name or branch;
then run ``python scripts/colab_cells.py`` again to rewrite the badges and the cells.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

__all__ = [
    "COURSE_REPOSITORY",
    "COURSE_BRANCH",
    "COLAB_CLONE_DIR",
    "CELL_TAG",
    "NOT_IN_COLAB_MESSAGE",
    "in_colab",
    "colab_url",
    "badge_markdown",
    "colab_setup_commands",
    "setup_colab",
    "setup_cell_source",
]

#: GitHub "owner/name" of the course. Change it (and COURSE_BRANCH) where the course is
#: published under another name, then rerun scripts/colab_cells.py.
COURSE_REPOSITORY = "rotation-course/rotation-course"
#: The branch the badges open and the Colab cell clones.
COURSE_BRANCH = "main"
#: Where the Colab cell clones the course: Colab's working folder is /content.
COLAB_CLONE_DIR = "/content/" + COURSE_REPOSITORY.split("/")[1]
#: The tag of the notebooks' Colab cell.
CELL_TAG = "colab"
#: What the Colab cell prints everywhere but in Colab.
NOT_IN_COLAB_MESSAGE = "Not running in Colab: nothing to install."

_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def in_colab() -> bool:
    """True when the ``google.colab`` module can be imported, i.e. inside a Colab runtime.

    Looks the module up with :func:`importlib.util.find_spec` without importing it. A missing
    ``google`` package means "not Colab" (False), never an error. Raises nothing.
    """
    try:
        return (importlib.util.find_spec("google") is not None
                and importlib.util.find_spec("google.colab") is not None)
    except (ImportError, ValueError):  # a broken or odd `google` package: not Colab
        return False


_detect_colab = in_colab  # the functions below take a parameter of the same name


def colab_url(notebook_name: str) -> str:
    """The address that opens ``notebooks/<notebook_name>`` of the course in Colab.

    notebook_name: a file name such as ``"01_angles_on_a_circle.ipynb"`` (a path is reduced to
    its name). Returns ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/
    notebooks/<name>``. Raises ValueError for a name that is not a ``.ipynb`` file.
    """
    name = Path(notebook_name).name
    if not name.endswith(".ipynb"):
        raise ValueError(f"not a notebook file name: {notebook_name!r}")
    return (f"https://colab.research.google.com/github/{COURSE_REPOSITORY}/blob/{COURSE_BRANCH}"
            f"/notebooks/{name}")


def badge_markdown(notebook_name: str) -> str:
    """The standard "Open In Colab" badge (one line of Markdown) for ``notebook_name``.

    Returns ``[![Open In Colab](<badge image>)](<colab_url(notebook_name)>)``.
    Raises ValueError as :func:`colab_url` does.
    """
    return f"[![Open In Colab]({_BADGE_IMAGE})]({colab_url(notebook_name)})"


def colab_setup_commands(in_colab: bool | None = None, clone_dir: str | os.PathLike | None = None,
                         python: str | None = None) -> list[list[str]]:
    """The shell commands the Colab cell runs, as argument lists (nothing is run here).

    in_colab: whether this is Colab (default: :func:`in_colab`); outside Colab the list is empty.
    clone_dir: where the course is (or will be) cloned (default ``COLAB_CLONE_DIR``).
    python: the interpreter whose pip installs the course (default: this one).
    Returns, inside Colab: ``git clone --depth 1 --branch <branch> <url> <clone_dir>`` unless
    ``clone_dir`` already holds a clone (a ``.git`` folder), then
    ``<python> -m pip install --quiet -e "<clone_dir>[course]"``. Nothing more: FiftyOne's
    bundled MongoDB runs on Colab's Ubuntu. Raises nothing.
    """
    if in_colab is None:
        in_colab = _detect_colab()
    if not in_colab:
        return []
    clone = Path(clone_dir if clone_dir is not None else COLAB_CLONE_DIR)
    commands = []
    if not (clone / ".git").exists():
        commands.append(["git", "clone", "--depth", "1", "--branch", COURSE_BRANCH,
                         f"https://github.com/{COURSE_REPOSITORY}.git", str(clone)])
    commands.append([python or sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{clone}[course]"])
    return commands


def setup_colab(run=subprocess.run, in_colab: bool | None = None,
                clone_dir: str | os.PathLike | None = None) -> list[list[str]]:
    """Make a fresh Colab runtime ready for the course; outside Colab, do nothing.

    run: how a command is run (``subprocess.run`` by default; called as ``run(cmd, check=True)``).
    in_colab: whether this is Colab (default: :func:`in_colab`).
    clone_dir: the course's clone (default ``COLAB_CLONE_DIR``).
    Inside Colab: runs :func:`colab_setup_commands` (clone if missing, ``pip install -e
    "<clone>[course]"``), puts the clone first on ``sys.path`` (a running kernel does not read
    the new editable install), changes the working folder to ``<clone>/notebooks`` (where the
    notebooks' relative paths start) and, when ``torch.cuda.is_available()`` and
    ``ROTATION_COURSE_PROFILE`` is not set, sets it to ``"workshop"``, the GPU profile, which
    also takes COCO-2017 from the FiftyOne zoo when no photo folder is named. A profile you set
    yourself is kept. Prints what it did.
    Returns the commands it ran ([] outside Colab). Raises ``subprocess.CalledProcessError``
    (from ``run``) when the clone or the install fails, and FileNotFoundError when the clone
    has no ``notebooks/`` folder.
    """
    if in_colab is None:
        in_colab = _detect_colab()
    if not in_colab:
        return []
    clone = Path(clone_dir if clone_dir is not None else COLAB_CLONE_DIR)
    commands = colab_setup_commands(True, clone)
    for command in commands:
        run(command, check=True)
    if str(clone) not in sys.path:
        sys.path.insert(0, str(clone))
    importlib.invalidate_caches()  # the packages just installed become importable in this kernel
    os.chdir(clone / "notebooks")
    import torch  # after the install: the course's torch requirement is met by now

    gpu = torch.cuda.is_available()
    if gpu and not os.environ.get("ROTATION_COURSE_PROFILE", "").strip():
        os.environ["ROTATION_COURSE_PROFILE"] = "workshop"
    profile = os.environ.get("ROTATION_COURSE_PROFILE", "").strip() or "quick"
    photos = ("the folder named by ROTATION_COURSE_IMAGES" if os.environ.get("ROTATION_COURSE_IMAGES", "").strip()
              else "COCO-2017 through the FiftyOne zoo" if profile in ("workshop", "full")
              else "the photos shipped inside packages (set ROTATION_COURSE_IMAGES for your own)")
    print(f"course installed from {clone}; working folder {clone / 'notebooks'}")
    print(f"profile {profile} ({'GPU' if gpu else 'no GPU'}); photos: {photos}")
    return commands


def setup_cell_source() -> str:
    """The source of the notebooks' first code cell (tagged ``CELL_TAG``), built from
    ``COURSE_REPOSITORY``, ``COURSE_BRANCH`` and ``COLAB_CLONE_DIR``.

    The cell cannot import the course before it is installed, so it clones the repository
    itself, then hands over to :func:`setup_colab`; elsewhere it prints
    ``NOT_IN_COLAB_MESSAGE``. Returns 12 lines of Python, without a final newline.
    """
    lines = [
        "# Colab only: install the course and fetch what it needs (does nothing elsewhere).",
        "import importlib.util, os, subprocess, sys",
        f'CLONE = "{COLAB_CLONE_DIR}"  # Colab\'s working folder is /content',
        'if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab"):',
        "    if not os.path.isdir(CLONE):",
        f'        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{COURSE_BRANCH}",',
        f'                        "https://github.com/{COURSE_REPOSITORY}.git", CLONE], check=True)',
        "    sys.path.insert(0, CLONE)  # the course's package, from the clone, before it is installed",
        "    from rotation_utils import colab",
        '    colab.setup_colab(clone_dir=CLONE)  # pip install -e "CLONE[course]", cd notebooks/, profile',
        "else:",
        f'    print("{NOT_IN_COLAB_MESSAGE}")',
    ]
    return "\n".join(lines)
