"""Test isolation: every test session gets its own FiftyOne database, run folder and data
folder, so `make test` never touches the user's FiftyOne datasets, checkpoints or photos.

Set here, at import time, before FiftyOne is imported anywhere and before nbval starts the
notebook kernels (which inherit these variables).
"""
import atexit
import os
import shutil
import tempfile

_ROOT = tempfile.mkdtemp(prefix="rotation-course-tests-")
os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_ROOT, "fiftyone-db")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["ROTATION_COURSE_RUN_DIR"] = os.path.join(_ROOT, "run")
os.environ["ROTATION_COURSE_DATA_DIR"] = os.path.join(_ROOT, "data")
os.environ["TORCH_HOME"] = os.path.join(_ROOT, "torch-home")
os.environ.setdefault("ROTATION_COURSE_PROFILE", "quick")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
