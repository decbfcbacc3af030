"""Test isolation: every test session gets its own FiftyOne database, run folder, data folder
and torch cache, so `make test` never touches the user's FiftyOne datasets, checkpoints or photos.

FiftyOne attaches to any database service already running on the machine, whatever
FIFTYONE_DATABASE_DIR says, so the session starts a MongoDB server of its own (FiftyOne's
mongod, on a free local port, in a temporary folder) and points FiftyOne at it with
FIFTYONE_DATABASE_URI; a unique FIFTYONE_DATABASE_NAME guards the rest. All of this is set at
import time, before FiftyOne is imported anywhere and before nbval starts the notebook kernels
(which inherit these variables).
"""
import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

_ROOT = tempfile.mkdtemp(prefix="rotation-course-tests-")
os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_ROOT, "fiftyone-db")
os.environ["FIFTYONE_DATABASE_NAME"] = f"rotation-course-tests-{uuid.uuid4().hex[:8]}"
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["ROTATION_COURSE_RUN_DIR"] = os.path.join(_ROOT, "run")
os.environ["ROTATION_COURSE_DATA_DIR"] = os.path.join(_ROOT, "data")
os.environ["TORCH_HOME"] = os.path.join(_ROOT, "torch-home")
os.environ.setdefault("ROTATION_COURSE_PROFILE", "quick")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_private_mongod():
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        return None
    mongod = Path(list(spec.submodule_search_locations)[0]) / "db" / "bin" / "mongod"
    if not mongod.exists():
        return None
    db_path = Path(os.environ["FIFTYONE_DATABASE_DIR"])
    db_path.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    process = subprocess.Popen(
        [str(mongod), "--dbpath", str(db_path), "--port", str(port), "--bind_ip", "127.0.0.1",
         "--logpath", str(db_path / "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.terminate()
        return None
    os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
    return process


_MONGOD = _start_private_mongod()


def _cleanup():
    if _MONGOD is not None:
        _MONGOD.terminate()
        try:
            _MONGOD.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _MONGOD.kill()
    shutil.rmtree(_ROOT, ignore_errors=True)


atexit.register(_cleanup)


def _missing_requirement(path: Path) -> str | None:
    """Why a notebook cannot run here: its metadata ``rotation_course.requires_env`` names a
    variable (a data folder) that is not set. None when it can."""
    import json

    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("rotation_course", {})
    except (OSError, ValueError):
        return None
    variable = meta.get("requires_env")
    if variable and not os.environ.get(variable, "").strip():
        return f"{path.name} needs {meta.get('requires', 'its data')}: set {variable} (.ci/run does when ../shared/data has it)"
    return None


#: The training clocks' factor while nbval executes the notebooks (config.clock_scale): the
#: notebooks run every cell, and the cells nbval compares do not depend on how long a model
#: trained. ``make test`` sets it; ROTATION_COURSE_TEST_CLOCK=1 in the environment turns it off.
NOTEBOOK_CLOCK = os.environ.get("ROTATION_COURSE_TEST_CLOCK") or "0.25"


@pytest.hookimpl(tryfirst=True)  # before nbval's collector starts the notebook's kernel
def pytest_runtest_setup(item):
    """Notebook cells run under the test clock (their kernel starts with the first cell and
    inherits it); unit tests see the full clock."""
    if Path(str(item.fspath)).suffix == ".ipynb":
        os.environ["ROTATION_COURSE_TEST_CLOCK"] = NOTEBOOK_CLOCK
    else:
        os.environ.pop("ROTATION_COURSE_TEST_CLOCK", None)


def pytest_collection_modifyitems(config, items):
    """Skip, with the reason, the notebooks whose data folder is not set (see the README)."""
    import pytest

    reasons = {}
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            continue
        if path not in reasons:
            reasons[path] = _missing_requirement(path)
        if reasons[path]:
            item.add_marker(pytest.mark.skip(reason=reasons[path]))
