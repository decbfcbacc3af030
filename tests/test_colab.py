"""Tests of rotation_utils.colab and of the notebooks' Colab badge and cell (scripts/colab_cells.py).

Nothing here touches the network: the commands Colab would run are recorded, not run.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from rotation_utils import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
URL = "https://github.com/rotation-course/rotation-course.git"


class Recorder:
    """A stand-in for subprocess.run that records each command and its keyword arguments."""

    def __init__(self, fail_on: str | None = None):
        self.calls = []
        self.fail_on = fail_on

    def __call__(self, command, **kwargs):
        self.calls.append((list(command), kwargs))
        if self.fail_on and self.fail_on in command:
            raise subprocess.CalledProcessError(1, command)
        return subprocess.CompletedProcess(command, 0)


@pytest.fixture
def sandbox(monkeypatch):
    """No profile set, sys.path restored afterwards, and os.chdir recorded instead of done."""
    monkeypatch.delenv("ROTATION_COURSE_PROFILE", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    chdirs = []
    monkeypatch.setattr(os, "chdir", lambda path: chdirs.append(Path(path)))
    return chdirs


def fake_find_spec(monkeypatch, colab_present: bool, google_present: bool = True):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "google":
            return real("json") if google_present else None  # any spec stands for "installed"
        if name == "google.colab":
            if not google_present:
                raise ModuleNotFoundError("No module named 'google'")
            return real("json") if colab_present else None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# ---------------------------------------------------------------- detection

def test_in_colab_follows_the_google_colab_module(monkeypatch):
    fake_find_spec(monkeypatch, colab_present=True)
    assert colab.in_colab() is True
    fake_find_spec(monkeypatch, colab_present=False)
    assert colab.in_colab() is False
    fake_find_spec(monkeypatch, colab_present=False, google_present=False)
    assert colab.in_colab() is False


def test_not_in_colab_here():
    assert colab.in_colab() is False
    assert colab.colab_setup_commands() == []


# ---------------------------------------------------------------- addresses

def test_colab_url_and_badge():
    name = "05_measuring_circular_error.ipynb"
    url = ("https://colab.research.google.com/github/rotation-course/rotation-course/blob/main/"
           "notebooks/05_measuring_circular_error.ipynb")
    assert colab.colab_url(name) == url
    assert colab.colab_url(f"notebooks/{name}") == url
    assert colab.badge_markdown(name) == (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})")
    with pytest.raises(ValueError):
        colab.colab_url("README.md")


def test_the_repository_is_named_in_one_place(monkeypatch):
    monkeypatch.setattr(colab, "COURSE_REPOSITORY", "someone/elsewhere")
    monkeypatch.setattr(colab, "COURSE_BRANCH", "v2")
    assert colab.colab_url("01_angles_on_a_circle.ipynb").endswith(
        "/github/someone/elsewhere/blob/v2/notebooks/01_angles_on_a_circle.ipynb")
    assert ["https://github.com/someone/elsewhere.git"] == [
        part for part in colab.colab_setup_commands(True, "/nowhere")[0] if part.startswith("https://")]


# ---------------------------------------------------------------- setup_colab

def test_outside_colab_nothing_runs(sandbox):
    run = Recorder()
    assert colab.setup_colab(run=run, in_colab=False) == []
    assert run.calls == [] and sandbox == []
    assert "ROTATION_COURSE_PROFILE" not in os.environ


def test_outside_colab_by_detection_nothing_runs(sandbox, monkeypatch):
    fake_find_spec(monkeypatch, colab_present=False, google_present=False)
    run = Recorder()
    assert colab.setup_colab(run=run) == []
    assert run.calls == [] and sandbox == []


def test_inside_colab_clones_installs_and_moves_into_notebooks(sandbox, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    clone = tmp_path / "rotation-course"
    run = Recorder()
    commands = colab.setup_colab(run=run, in_colab=True, clone_dir=clone)
    assert commands == [
        ["git", "clone", "--depth", "1", "--branch", "main", URL, str(clone)],
        [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{clone}[course]"],
    ]
    assert [command for command, _ in run.calls] == commands
    assert all(kwargs == {"check": True} for _, kwargs in run.calls)
    assert sandbox == [clone / "notebooks"]
    assert sys.path[0] == str(clone)
    assert os.environ["ROTATION_COURSE_PROFILE"] == "workshop"  # a GPU: the profile that fetches COCO
    assert "profile workshop" in capsys.readouterr().out


def test_inside_colab_by_detection(sandbox, monkeypatch, tmp_path):
    fake_find_spec(monkeypatch, colab_present=True)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    run = Recorder()
    commands = colab.setup_colab(run=run, clone_dir=tmp_path)
    assert len(commands) == 2 and commands[0][:2] == ["git", "clone"]
    assert sandbox == [tmp_path / "notebooks"]


def test_inside_colab_without_a_gpu_leaves_the_profile(sandbox, monkeypatch, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    colab.setup_colab(run=Recorder(), in_colab=True, clone_dir=tmp_path / "clone")
    assert "ROTATION_COURSE_PROFILE" not in os.environ


def test_a_profile_set_by_the_user_is_kept(sandbox, monkeypatch, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setenv("ROTATION_COURSE_PROFILE", "full")
    colab.setup_colab(run=Recorder(), in_colab=True, clone_dir=tmp_path / "clone")
    assert os.environ["ROTATION_COURSE_PROFILE"] == "full"


def test_an_existing_clone_is_not_cloned_again(sandbox, monkeypatch, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    (tmp_path / ".git").mkdir()
    run = Recorder()
    colab.setup_colab(run=run, in_colab=True, clone_dir=tmp_path)
    assert [command[:3] for command, _ in run.calls] == [[sys.executable, "-m", "pip"]]


def test_a_failed_install_raises_and_stays_put(sandbox, tmp_path):
    run = Recorder(fail_on="pip")
    with pytest.raises(subprocess.CalledProcessError):
        colab.setup_colab(run=run, in_colab=True, clone_dir=tmp_path)
    assert sandbox == [] and "ROTATION_COURSE_PROFILE" not in os.environ


# ---------------------------------------------------------------- the notebooks

def colab_cells(nb):
    return [i for i, cell in enumerate(nb.cells) if colab.CELL_TAG in cell.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_its_badge(path):
    nb = nbformat.read(path, as_version=4)
    first_markdown = next(cell for cell in nb.cells if cell.cell_type == "markdown")
    lines = first_markdown.source.split("\n")
    assert lines[0] == colab.badge_markdown(path.name)
    assert lines[0].endswith(f"/notebooks/{path.name})")
    assert lines[1] == "" and lines[2].startswith("# ")  # the title follows


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_colab_cell_before_the_profile_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = colab_cells(nb)
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged {colab.CELL_TAG!r}"
    cell = nb.cells[tagged[0]]
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    profile = next(i for i, c in enumerate(nb.cells) if "config.notebook_setup" in c.source)
    assert tagged[0] == code[0] < profile
    assert cell.source == colab.setup_cell_source()
    assert len(cell.source.splitlines()) <= 12
    assert "NBVAL_CHECK_OUTPUT" not in cell.source
    assert cell.metadata["tags"] == [colab.CELL_TAG, "nbval-skip"]  # nbval refuses outputs without a count
    assert cell.execution_count is None
    assert [(o.output_type, o.get("name"), o.get("text")) for o in cell.outputs] == [
        ("stream", "stdout", colab.NOT_IN_COLAB_MESSAGE + "\n")]


def test_the_colab_cell_says_it_does_nothing_here():
    done = subprocess.run([sys.executable, "-c", colab.setup_cell_source()], capture_output=True, text=True,
                          cwd=ROOT / "notebooks", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == colab.NOT_IN_COLAB_MESSAGE + "\n"


def load_script():
    spec = importlib.util.spec_from_file_location("colab_cells", ROOT / "scripts" / "colab_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colab_cells_script_adds_only_the_badge_and_the_cell(tmp_path):
    script = load_script()
    original = NOTEBOOKS[0]
    text = original.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    del nb.cells[colab_cells(nb)[0]]
    first_markdown = next(cell for cell in nb.cells if cell.cell_type == "markdown")
    first_markdown.source = first_markdown.source.split("\n", 2)[2]  # without the badge line
    bare = tmp_path / original.name
    bare.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    assert colab.badge_markdown(original.name) not in bare.read_text(encoding="utf-8")

    assert script.update(bare, output=colab.NOT_IN_COLAB_MESSAGE + "\n") is True
    assert bare.read_text(encoding="utf-8") == text  # byte for byte what the committed notebook holds
    assert script.update(bare, output=colab.NOT_IN_COLAB_MESSAGE + "\n") is False  # idempotent


def test_colab_cells_script_replaces_an_old_badge(tmp_path, monkeypatch):
    script = load_script()
    path = tmp_path / NOTEBOOKS[0].name
    path.write_text(NOTEBOOKS[0].read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(colab, "COURSE_REPOSITORY", "someone/elsewhere")
    assert script.update(path, output="x\n") is True
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(cell for cell in nb["cells"] if cell["cell_type"] == "markdown")
    assert first["source"][0].count("Open In Colab") == 1 and "someone/elsewhere" in first["source"][0]
    assert sum("Open In Colab" in line for line in first["source"]) == 1
    cells = [cell for cell in nb["cells"] if "colab" in cell["metadata"].get("tags", [])]
    assert len(cells) == 1 and "someone/elsewhere" in "".join(cells[0]["source"])
