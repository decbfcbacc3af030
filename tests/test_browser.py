"""The course's ipywidgets sliders in a real browser: JupyterLab driven by Debian's Chromium.

For notebooks 01 (the angle explorer) and 03 (the border-strategy slider) the browser test:
starts JupyterLab on a copy of the notebook in a temporary folder (the committed notebook is
never opened or saved), runs its cells from the Run menu, checks the kernel is this project's
.venv Python, moves the slider with the keyboard (End: its maximum) and checks that the slider's
readout, the kernel's value and the figure (the <img> in the widget's output) follow, with no
error in the browser console. A screenshot of each notebook goes to ROTATION_COURSE_SCREENSHOTS
(default: pytest's tmp_path, kept for failed tests only); its path is printed.

Needs the Python package ``playwright`` (the ``test`` extra) and Chromium at /usr/bin/chromium
(Debian: ``apt-get install chromium``); no browser is ever downloaded. Without them the test skips
with the reason, unless ROTATION_COURSE_BROWSER_TESTS=required (CI), where it fails.

Run only this test: ``.venv/bin/python -m pytest -m browser tests/test_browser.py``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
REQUIRED_VARIABLE = "ROTATION_COURSE_BROWSER_TESTS"
SCREENSHOTS_VARIABLE = "ROTATION_COURSE_SCREENSHOTS"
SERVER_START_S = 60      # JupyterLab answers /api/status within this
NOTEBOOK_RUN_S = 180     # all cells of a notebook copy have run within this
WIDGET_S = 30            # a moved slider has redrawn its figure within this

# The last cell of every notebook copy: the kernel's Python and the values of its sliders.
PROBE_MARK = "browser-test probe"
PROBE_CELL = f"""# {PROBE_MARK}
import os, sys
from ipywidgets.widgets.widget import _instances
print("kernel prefix:", sys.prefix)
print("kernel pid:", os.getpid())
for _w in list(_instances.values()):
    if type(_w).__name__ == "FloatSlider":
        print(f"slider {{_w.description}} = {{_w.value}}")
"""

# Browser console errors that are not the notebook's or the widgets' own: a regular expression
# (matched against "console: TEXT (URL)") and why it is ignored.
IGNORED_CONSOLE_ERRORS: tuple[tuple[str, str], ...] = (
    # An image that a markdown cell links from the web (the "Open in Colab" badge): the test
    # browser never leaves 127.0.0.1 (see _stay_local), so it cannot load. Local resources
    # (JupyterLab's own, the widgets') failing to load are still errors.
    (r"^console: Failed to load resource: net::ERR_\w+ \((?!http://127\.0\.0\.1[:/])https?://",
     "a web resource linked from a markdown cell, blocked: the test stays offline"),
)

# JupyterLab settings for the test server (its own settings folder, never the user's):
# every cell in the DOM (no windowing), so that the prompts and outputs can be read anywhere
# in the notebook; no "notified about Jupyter news?" pop-up and no update check (offline).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


# --------------------------------------------------------------------------- what the test needs

def browser_tests_required(environ=None) -> bool:
    """Whether a missing browser fails the test instead of skipping it (CI sets it)."""
    environ = os.environ if environ is None else environ
    return environ.get(REQUIRED_VARIABLE, "").strip().lower() == "required"


def chromium_problem(path: str = CHROMIUM) -> str | None:
    """Why Chromium at ``path`` cannot be used (None: it can)."""
    if not os.path.isfile(path):
        return (f"Chromium is not installed at {path} (Debian/Ubuntu: `apt-get install -y chromium`; "
                f"the test never downloads a browser)")
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    return None


def python_package_problem(name: str, extra: str) -> str | None:
    """Why the Python package ``name`` cannot be imported (None: it can)."""
    if importlib.util.find_spec(name) is None:
        return (f"the Python package {name!r} is not installed (it is in the {extra!r} extra: "
                f"`.venv/bin/python -m pip install -e '.[{extra}]'`; never `playwright install`)")
    return None


def missing(reason: str, environ=None):
    """Skip the test for want of ``reason``, or fail it when browser tests are required."""
    if browser_tests_required(environ):
        pytest.fail(f"browser test required ({REQUIRED_VARIABLE}=required) but {reason}", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRED_VARIABLE}=required to make this a failure")


def check_requirements(chromium: str = CHROMIUM, environ=None) -> None:
    """Skip or fail (see :func:`missing`) unless JupyterLab, playwright and Chromium are here."""
    problem = (python_package_problem("jupyterlab", "course")
               or python_package_problem("playwright", "test")
               or chromium_problem(chromium))
    if problem:
        missing(problem, environ)


# --------------------------------------------------------------------------- the JupyterLab server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_lines(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-n:]) or "(the server log is empty)"


class LabServer:
    """A JupyterLab server of the test's own: its own port, token, root, settings, runtime and
    data folders (nothing of the user's Jupyter set-up is read or written)."""

    def __init__(self, root_dir: Path, workdir: Path, port: int):
        self.root_dir, self.workdir, self.port = Path(root_dir), Path(workdir), port
        self.token = secrets.token_hex(16)
        self.log_path = self.workdir / f"jupyterlab-{port}.log"
        self.process: subprocess.Popen | None = None
        self.kernel_pids: set[int] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def _prepare(self) -> dict:
        for name in ("config", "data", "runtime", "workspaces"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        for relative, settings in LAB_SETTINGS.items():
            path = self.workdir / "settings" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings), encoding="utf-8")
        env = dict(os.environ,  # FIFTYONE_* from ../conftest.py: the kernels use the test database
                   JUPYTER_CONFIG_DIR=str(self.workdir / "config"),
                   JUPYTER_DATA_DIR=str(self.workdir / "data"),
                   JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
                   JUPYTER_PLATFORM_DIRS="0")
        env.pop("MPLBACKEND", None)  # the kernels' figures must use the inline backend
        return env

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
                   f"--IdentityProvider.token={self.token}", f"--port={self.port}",
                   "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
                   f"--ServerApp.root_dir={self.root_dir}",
                   f"--LabApp.user_settings_dir={self.workdir / 'settings'}",
                   f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers and CI run as root
        return command

    def start(self, deadline_s: float = SERVER_START_S) -> str | None:
        """Start the server and wait until /api/status answers. Returns None when it does, else
        why not (the server is then stopped)."""
        env = self._prepare()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                                            start_new_session=True)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"JupyterLab exited with status {self.process.returncode} before it answered"
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as answer:
                    if answer.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        return f"JupyterLab did not answer {self.base_url}/api/status within {deadline_s:.0f} s"

    def port_was_taken(self) -> bool:
        return bool(re.search(rf"port {self.port} is (already in use|not available)",
                              last_lines(self.log_path, 50)))

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of this server (through its REST API); quiet when it is gone."""
        try:
            for kernel in self.api("api/kernels"):
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except (urllib.error.URLError, OSError, ValueError):
            pass

    def stop(self) -> None:
        """Shut the kernels down, stop the server (SIGTERM, then SIGKILL), and make sure no kernel
        this test saw outlives it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.shutdown_kernels()
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for pid in self.kernel_pids:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.process = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def start_lab(root_dir: Path, workdir: Path, port: int | None = None,
              deadline_s: float = SERVER_START_S) -> LabServer:
    """A running :class:`LabServer`, or ``pytest.fail`` with the server's last log lines. When the
    chosen port was taken in the meantime (another process won the race), says so and retries
    once with another free port."""
    server = LabServer(root_dir, workdir, port or free_port())
    problem = server.start(deadline_s)
    if problem and server.port_was_taken():
        print(f"port {server.port} was taken before JupyterLab could bind it; retrying once on another port")
        server = LabServer(root_dir, workdir, free_port())
        problem = server.start(deadline_s)
    if problem:
        server.stop()
        pytest.fail(f"{problem}; command: {' '.join(server.command())}\n"
                    f"last lines of {server.log_path}:\n{last_lines(server.log_path)}", pytrace=False)
    return server


# --------------------------------------------------------------------------- notebook copies

def notebook_copy(source: Path, folder: Path, until: str | None = None) -> Path:
    """Write into ``folder`` a copy of the notebook ``source`` without its outputs, execution
    counts and stored widget state, ending with the probe cell. ``until``: keep only the cells up
    to the first code cell that contains this text (the rest is not needed for the slider)."""
    nb = json.loads(source.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
        if until and cell["cell_type"] == "code" and until in "".join(cell["source"]):
            break
    else:
        assert until is None, f"no code cell of {source.name} contains {until!r}"
    cells.append({"cell_type": "code", "execution_count": None, "id": "browser-test-probe",
                  "metadata": {}, "outputs": [], "source": PROBE_CELL.splitlines(keepends=True)})
    nb["cells"] = cells
    nb.get("metadata", {}).pop("widgets", None)
    path = folder / source.name
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a temporary folder of notebook copies, stopped at the end of the module."""
    check_requirements()
    root = tmp_path_factory.mktemp("lab-notebooks")
    server = start_lab(root, tmp_path_factory.mktemp("lab-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, headless, through playwright (never a downloaded browser)."""
    check_requirements()
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
    except Exception:
        playwright.stop()
        raise
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_VARIABLE) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------- driving JupyterLab

def _wait(what: str, condition, deadline_s: float, page=None, interval_s: float = 0.3):
    """Poll ``condition()`` until it is truthy; fail after ``deadline_s`` saying ``what`` (and any
    JupyterLab dialog that blocks the way)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if page is not None and page.locator(".jp-Dialog").count():
            pytest.fail(f"while waiting for {what}, JupyterLab shows a dialog: "
                        f"{page.locator('.jp-Dialog').first.inner_text()[:500]}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:.0f} s", pytrace=False)
        time.sleep(interval_s)


def _kernel_idle(lab: LabServer) -> bool:
    kernels = lab.api("api/kernels")
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def _all_cells_ran(page) -> bool:
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)


def _error_outputs(page) -> list[str]:
    texts = page.locator('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    return [t[-1500:] for t in texts if "Error" in t or "Traceback" in t]


def _console_errors(messages: list[str]) -> list[str]:
    return [m for m in messages
            if not any(re.search(pattern, m) for pattern, _why in IGNORED_CONSOLE_ERRORS)]


def open_and_run(page, lab: LabServer, notebook: Path, console: list[str]):
    """Open ``notebook`` (in the server's root) in a workspace of its own, run all its cells from
    the Run menu, wait until they all ran and the kernel is idle; returns the probe's lines."""
    page.on("console", lambda m: console.append(f"console: {m.text} ({m.location.get('url', '')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda err: console.append(f"page error: {err}"))
    page.set_default_timeout(30_000)
    _stay_local(page, lab)
    page.goto(lab.url(f"lab/workspaces/{notebook.stem[:2]}/tree/{notebook.name}"))
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _wait(f"the kernel of {notebook.name} to start (idle)",
          lambda: page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count()
          and _kernel_idle(lab), 60, page)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

    def finished():
        if _error_outputs(page):
            pytest.fail(f"a cell of {notebook.name} failed in JupyterLab:\n{_error_outputs(page)[0]}",
                        pytrace=False)
        return _all_cells_ran(page) and _kernel_idle(lab)

    _wait(f"every cell of {notebook.name} to run", finished, NOTEBOOK_RUN_S, page, interval_s=1)
    return _probe_lines(page)


def _stay_local(page, lab: LabServer) -> None:
    """Let the page load from the test's JupyterLab only: every other request is aborted, so the
    test never reaches the network (and behaves the same on- and offline)."""
    local = (lab.base_url + "/", lab.base_url.replace("http", "ws", 1) + "/")
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
               or route.request.url.startswith(("data:", "blob:")) else route.abort())


def _probe_cell(page):
    return page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=PROBE_MARK)


def _probe_lines(page) -> list[str]:
    text = _probe_cell(page).locator(".jp-OutputArea").inner_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def rerun_probe(page, lab: LabServer, expected_line: str) -> list[str]:
    """Run the probe cell again (select it, Ctrl+Enter) until it prints ``expected_line``."""
    cell = _probe_cell(page)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    return _wait(f"the probe cell to print {expected_line!r}",
                 lambda: (expected_line in _probe_lines(page) and _kernel_idle(lab)
                          and _probe_lines(page)), WIDGET_S, page)


def check_kernel(lab: LabServer, lines: list[str], notebook: str) -> None:
    """The kernel runs this project's Python (.venv, where rotation_utils is installed)."""
    prefix = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("kernel prefix:")), None)
    assert prefix, f"the probe cell of {notebook} printed no kernel prefix: {lines}"
    assert Path(prefix).resolve() == Path(sys.prefix).resolve(), \
        f"{notebook}'s kernel runs {prefix}, not this project's Python {sys.prefix}"
    pid = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("kernel pid:"))
    lab.kernel_pids.add(int(pid))


def move_slider_to_its_end(page, lab: LabServer, marker: str, label: str, maximum: float) -> str:
    """In the code cell containing ``marker``, move the slider labelled ``label`` to its maximum
    with the keyboard (focus the noUiSlider handle, press End), then check that its readout, the
    kernel's value and the figure follow. Returns the new figure's data URL."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=marker)
    assert cell.count() == 1, f"{cell.count()} code cells contain {marker!r}"
    slider = cell.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=label))
    slider.wait_for(timeout=WIDGET_S * 1000)
    readout = slider.locator(".widget-readout")
    figure = cell.locator(".jp-OutputArea-output img")
    figure.first.wait_for(timeout=WIDGET_S * 1000)
    before = figure.first.get_attribute("src")
    assert before and before.startswith("data:image/png;base64,"), f"no PNG figure under {label!r}"
    assert float(readout.inner_text()) != maximum, f"{label!r} already shows {maximum}"

    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("End")
    _wait(f"the readout of {label!r} to show {maximum}",
          lambda: _number(readout.inner_text()) == maximum, WIDGET_S, page)
    after = _wait(f"the figure under {label!r} to be redrawn",
                  lambda: (figure.count() and (src := figure.first.get_attribute("src"))
                           and src != before and src.startswith("data:image/png;base64,") and src),
                  WIDGET_S, page)
    _wait("the kernel to finish drawing", lambda: _kernel_idle(lab), WIDGET_S, page)
    rerun_probe(page, lab, f"slider {label} = {float(maximum)}")
    return after


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def screenshot(page, marker: str, folder: Path, name: str) -> Path:
    page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=marker).scroll_into_view_if_needed()
    path = folder / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


# --------------------------------------------------------------------------- the browser tests

@pytest.mark.browser
@pytest.mark.parametrize("notebook, until, marker, label", [
    # notebook 01 runs whole (seconds); its angle explorer: the first of its two explorers
    ("01_angles_on_a_circle.ipynb", None, "angle_error_explorer(", "true angle (°)"),
    # notebook 03 up to its border-strategy slider: photos, no FiftyOne database needed
    ("03_building_a_rotated_dataset.ipynb", "FloatSlider(", "widgets.interactive(show_rotation", "angle (°)"),
], ids=["01-angle-explorer", "03-border-slider"])
def test_slider_redraws_the_figure_in_chromium(lab, chromium, screenshots, notebook, until, marker, label):
    committed = (NOTEBOOKS / notebook).read_bytes()
    copy = notebook_copy(NOTEBOOKS / notebook, lab.root_dir, until=until)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    console: list[str] = []
    try:
        lines = open_and_run(page, lab, copy, console)
        check_kernel(lab, lines, notebook)
        move_slider_to_its_end(page, lab, marker, label, maximum=359.0)
        shot = screenshot(page, marker, screenshots, f"{copy.stem}.png")
        assert shot.stat().st_size > 10_000, f"{shot} looks empty"
    finally:
        page.close()
        lab.shutdown_kernels()  # one kernel at a time on a small machine
    errors = _console_errors(console)
    assert not errors, f"the browser console reported errors for {notebook}:\n" + "\n".join(errors)
    assert (NOTEBOOKS / notebook).read_bytes() == committed, f"notebooks/{notebook} was modified"


# --------------------------------------------------------------------------- without a browser

def test_missing_chromium_skips_unless_required(tmp_path):
    fake = tmp_path / "no-chromium-here"
    reason = chromium_problem(str(fake))
    assert reason and str(fake) in reason and "apt-get install -y chromium" in reason
    with pytest.raises(pytest.skip.Exception, match=f"Chromium is not installed.*{REQUIRED_VARIABLE}=required"):
        check_requirements(str(fake), environ={})
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRED_VARIABLE}=required.*Chromium is not installed"):
        check_requirements(str(fake), environ={REQUIRED_VARIABLE: "required"})
    not_executable = tmp_path / "chromium"
    not_executable.write_text("#!/bin/sh\n")
    assert "not executable" in chromium_problem(str(not_executable))


def test_missing_playwright_skips_unless_required():
    reason = python_package_problem("no_such_package_playwright", "test")
    assert "'no_such_package_playwright' is not installed" in reason and "'test' extra" in reason
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        missing(reason, environ={REQUIRED_VARIABLE: "yes please"})
    with pytest.raises(pytest.fail.Exception, match="is not installed"):
        missing(reason, environ={REQUIRED_VARIABLE: " Required "})


def test_jupyterlab_that_cannot_start_fails_with_its_log(tmp_path):
    pytest.importorskip("jupyterlab")
    with pytest.raises(pytest.fail.Exception) as failure:
        start_lab(tmp_path / "no-such-folder", tmp_path, deadline_s=SERVER_START_S)
    message = str(failure.value)
    assert "JupyterLab exited with status" in message and "last lines of" in message
    assert "no-such-folder" in message  # the server's own complaint, from its log


def test_a_taken_port_is_retried_once(tmp_path, capsys):
    pytest.importorskip("jupyterlab")
    (tmp_path / "root").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_lab(tmp_path / "root", tmp_path, port=port)
        try:
            assert server.port != port
            assert server.api("api/status")["kernels"] == 0
        finally:
            server.stop()
    assert f"port {port} was taken" in capsys.readouterr().out
    assert server.process is None
