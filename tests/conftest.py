"""Shared fixtures of the unit tests (the isolation of FiftyOne and folders is in ../conftest.py)."""
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def load_script():
    """A loader of the project's scripts as modules: ``load_script("benchmarks/straighten_mix.py")``."""
    import importlib.util

    def load(relative: str):
        path = ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def shared_photos() -> Path:
    """The real photos beside the project (../shared/data/photos), or skip."""
    folder = Path(os.environ.get("ROTATION_COURSE_IMAGES") or SHARED_PHOTOS)
    if not folder.is_dir():
        pytest.skip("../shared/data/photos is not here")
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a test module: on a small shared CPU, two threads are many times
    slower. Restores the previous setting afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
