"""scripts/run_course.py (``make course``) waits for kernel messages in short slices, so that a
missed wake-up after a widget cell (jupyter/nbclient#312) costs a second, not the cell's timeout."""
from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from queue import Empty

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("nbclient")


@pytest.fixture(scope="module")
def run_course():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("run_course", ROOT / "scripts" / "run_course.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def _channel(run_course, monkeypatch, answers):
    """A SlicedChannel whose underlying single poll is replaced: each call takes the next of
    ``answers`` (a message, or None: the poll waits its timeout and misses)."""
    calls = []

    async def one_poll(self, timeout=None):
        calls.append(timeout)
        answer = answers.pop(0) if answers else None
        if answer is None:
            await asyncio.sleep(timeout)
            raise Empty
        return answer

    monkeypatch.setattr(run_course.AsyncZMQSocketChannel, "get_msg", one_poll)
    monkeypatch.setattr(run_course, "POLL_SLICE_S", 0.05)
    return run_course.SlicedChannel.__new__(run_course.SlicedChannel), calls


def test_a_missed_poll_is_asked_again_within_a_slice(run_course, monkeypatch):
    channel, calls = _channel(run_course, monkeypatch, [None, None, {"msg": "reply"}])
    # One 30-minute poll (what nbclient asks for) would miss the reply: a bounded wait fails then.
    assert asyncio.run(asyncio.wait_for(channel.get_msg(timeout=1800), 5)) == {"msg": "reply"}
    assert len(calls) == 3 and all(t <= 0.05 for t in calls), calls


def test_the_timeout_still_ends_the_wait_with_empty(run_course, monkeypatch):
    channel, calls = _channel(run_course, monkeypatch, [])
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.2))
    assert 0.15 <= time.monotonic() - start < 1.0
    assert 3 <= len(calls) <= 6 and sum(calls) == pytest.approx(0.2, abs=0.06)
    channel, calls = _channel(run_course, monkeypatch, [None] * 5 + [{"msg": "late"}])
    late = asyncio.run(asyncio.wait_for(channel.get_msg(timeout=None), 5))  # no limit: slices until it comes
    assert late == {"msg": "late"}


def test_make_course_runs_a_widget_notebook_through_the_sliced_client(run_course, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import ipywidgets as w\nw.interact(lambda angle_deg: print(angle_deg * 2), angle_deg=(0.0, 360.0))"),
                nbformat.v4.new_code_cell("print('after the slider')")]
    client = NotebookClient(nb, timeout=60, kernel_name="python3", kernel_manager_class=run_course.SlicedKernelManager,
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        assert isinstance(client.kc, run_course.SlicedKernelClient)
        assert isinstance(client.kc.shell_channel, run_course.SlicedChannel)
        assert isinstance(client.kc.iopub_channel, run_course.SlicedChannel)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in nb.cells[0].outputs)
    assert nb.cells[1].outputs[0]["text"] == "after the slider\n"


def test_into_needs_an_existing_run_folder_and_excludes_out(run_course, tmp_path, capsys):
    """--into re-runs later notebooks in a run folder that holds notebook 4's model: a folder
    without artifacts/ is refused before anything runs, and so is --into with --out."""
    with pytest.raises(SystemExit):
        run_course.main(["--into", str(tmp_path), "--notebooks", "99"])
    assert "not a run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_course.main(["--into", str(tmp_path), "--out", str(tmp_path / "new"), "--notebooks", "99"])
    assert "exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
