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


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A maker of small real checkpoints (ResNet18 of width 8, random weights, 32-pixel inputs,
    about 0.75 MB, written by ``models.save_checkpoint``): ``tiny_checkpoint("m.pt", head="von_mises")``.
    Metadata given override the defaults, so a test can write one that contradicts its weights;
    ``outputs`` is the network's number of outputs (default: the head's). Returns the path."""
    import torch

    from rotation_utils import heads, models

    def make(name="m.pt", outputs=None, **metadata):
        metadata = {"backbone": "resnet18", "width": 8, "image_size": 32, "head": "cos_sin_mse", **metadata}
        if outputs is None:
            outputs = heads.num_outputs(metadata["head"], metadata.get("bins", 72))
        torch.manual_seed(0)
        network = models.build_regressor("resnet18", "random", width=8, num_outputs=outputs, verbose=False)
        return models.save_checkpoint(tmp_path / name, network, {"num_outputs": outputs, **metadata})

    return make
