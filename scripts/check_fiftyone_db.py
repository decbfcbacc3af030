"""Exit 0 if FiftyOne's database starts here, 1 otherwise (used by `make setup`).

Runs in a throw-away database folder, so the user's FiftyOne datasets are never touched.
"""
import os
import subprocess
import sys
import tempfile

CODE = "import fiftyone as fo; fo.list_datasets(); print('FiftyOne database: ok')"

with tempfile.TemporaryDirectory(prefix="fo-check-") as folder:
    env = dict(os.environ, FIFTYONE_DATABASE_DIR=folder, FIFTYONE_DO_NOT_TRACK="true",
               FIFTYONE_DATABASE_VALIDATION="false")
    try:
        done = subprocess.run([sys.executable, "-c", CODE], env=env, timeout=180,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        print("FiftyOne database: did not start within 180 s")
        sys.exit(1)
    if done.returncode == 0:
        print(done.stdout.strip())
        sys.exit(0)
    print("FiftyOne database: could not start (" + (done.stderr.strip().splitlines() or ["?"])[-1][:200] + ")")
    sys.exit(1)
