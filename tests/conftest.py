"""Shared fixtures of the unit tests (the isolation of FiftyOne and folders is in ../conftest.py)."""
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"


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
