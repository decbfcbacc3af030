"""The ways to install and run the course stay in step: pyproject.toml, environment.yml,
README.md, the Makefile and the CI script.

environment.yml (conda) must list in its ``pip:`` section exactly the requirements of
pyproject's [project].dependencies plus the extras that ``make setup`` installs (read from the
Makefile: ``course``, ``test``, ``headpose``, ``export`` and ``site``), and ``-e .``.
"""
import importlib
import os
import re
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def normalised(requirement: str) -> str:
    """One spelling per requirement: canonical name, sorted extras, canonical specifier."""
    req = Requirement(requirement)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}{marker}"


def setup_extras() -> list[str]:
    """The extras of the Makefile's ``pip install -e ".[...]"``: what ``make setup`` installs."""
    found = re.findall(r'pip install [^\n]*-e "\.\[([^\]]+)\]"', (ROOT / "Makefile").read_text(encoding="utf-8"))
    assert len(found) == 1, 'the Makefile needs one `pip install ... -e ".[extras]"` line'
    return found[0].split(",")


def expected_requirements() -> list[str]:
    project = pyproject()["project"]
    optional = project.get("optional-dependencies", {})
    extras = setup_extras()
    assert {"course", "test", "site"} <= set(extras), f"make setup installs only {extras}"
    return list(project["dependencies"]) + [req for extra in extras for req in optional[extra]]


def environment() -> dict:
    path = ROOT / "environment.yml"
    assert path.is_file(), "environment.yml is missing at the repository root"
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(env, dict) and isinstance(env.get("dependencies"), list), \
        "environment.yml needs a 'dependencies' list"
    return env


def pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one 'pip:' section"
    assert all(isinstance(item, str) for item in sections[0])
    return [item.strip() for item in sections[0]]


def conda_specs(env: dict) -> list[str]:
    return [d.strip() for d in env["dependencies"] if isinstance(d, str)]


# --------------------------------------------------------------------------- pyproject itself

def test_pyproject_has_the_course_and_test_extras():
    project = pyproject()["project"]
    assert project["dependencies"]
    assert {"course", "test"} <= set(project["optional-dependencies"])
    for requirement in expected_requirements():
        Requirement(requirement)  # every entry parses
    names = [canonicalize_name(Requirement(r).name) for r in expected_requirements()]
    assert len(names) == len(set(names)), "a package listed twice across dependencies and extras"


def test_console_script_points_to_a_callable():
    target = pyproject()["project"]["scripts"]["rotation-course"]
    module, _, attribute = target.partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


# --------------------------------------------------------------------------- environment.yml

def test_environment_yml_pip_section_matches_pyproject():
    pip = pip_section(environment())
    assert "-e ." in pip, "the pip section must install the course itself with '-e .'"
    listed = [item for item in pip if item != "-e ."]
    assert len(listed) == len(set(listed)), "a requirement is listed twice in environment.yml"
    expected = {normalised(r) for r in expected_requirements()}
    got = {normalised(r) for r in listed}
    assert got == expected, (f"environment.yml pip section and pyproject.toml differ: "
                             f"only in environment.yml {sorted(got - expected)}, "
                             f"only in pyproject.toml {sorted(expected - got)}")
    # Literally the same strings, so a search for a pin finds both places.
    assert set(listed) == set(expected_requirements())


def test_environment_yml_installs_python_and_pip():
    env = environment()
    assert env.get("name"), "environment.yml needs a name"
    specs = conda_specs(env)
    names = {re.split(r"[=<>!~ ]", spec, maxsplit=1)[0] for spec in specs}
    assert "pip" in names, "conda must install pip to run the pip section"
    pythons = [spec for spec in specs if re.split(r"[=<>!~ ]", spec, maxsplit=1)[0] == "python"]
    assert pythons, "environment.yml should pin a Python version"
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    version = re.search(r"(\d+\.\d+)", pythons[0])
    if version:
        assert requires.contains(version.group(1) + ".0") or requires.contains(version.group(1)), \
            f"{pythons[0]} does not satisfy requires-python {requires}"


# --------------------------------------------------------------------------- README, Makefile, CI

def test_readme_names_the_make_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make course" in text, "README.md should say how to run the course: make course"
    assert "make test" in text, "README.md should say how to test: make test"


def test_makefile_has_the_course_and_test_targets():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("course", "test", "setup"):
        assert re.search(rf"^{target}\s*:", text, flags=re.MULTILINE), f"no '{target}:' target in the Makefile"


def test_ci_runs_make_test():
    path = ROOT / ".ci" / "run"
    assert path.is_file()
    commands = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    assert any(re.search(r"(^|[;&|]\s*)make\s+test\b", line) for line in commands), \
        ".ci/run should call `make test`"


# --------------------------------------------------------------------------- test isolation

def test_the_test_session_uses_its_own_database_and_folders():
    """../conftest.py points FiftyOne, the run folder and the data folder into a temporary
    folder, so the tests never touch the user's datasets, checkpoints or photos."""
    from rotation_utils import config

    tmp = Path(tempfile.gettempdir()).resolve()
    home = Path.home().resolve()
    for variable in ("FIFTYONE_DATABASE_DIR", "ROTATION_COURSE_RUN_DIR", "ROTATION_COURSE_DATA_DIR"):
        value = Path(os.environ[variable]).resolve()
        assert tmp in value.parents, f"{variable}={value} is not in a temporary folder"
        if tmp != home and home not in tmp.parents:
            assert home not in value.parents
    assert config.run_dir(create=False).resolve() == Path(os.environ["ROTATION_COURSE_RUN_DIR"]).resolve()
    assert config.data_dir(create=False).resolve() == Path(os.environ["ROTATION_COURSE_DATA_DIR"]).resolve()
    fo = pytest.importorskip("fiftyone")
    assert Path(fo.config.database_dir).resolve() == Path(os.environ["FIFTYONE_DATABASE_DIR"]).resolve()
