"""A screenshot of the real FiftyOne App on the course's rotated dataset (notebook 03 shows it).

    python scripts/app_screenshot.py --dataset rotation-course-quick-d65bffa0 \
        --out docs/figures/fiftyone_app.jpg [--view val-sorted-by-angle]

Launches the App (``fo.launch_app(..., remote=True)``, a local server only) on the validation
samples sorted by ``angle_deg``, opens it in Debian's headless Chromium through Playwright
(``/usr/bin/chromium``, no browser download), waits until the sample grid has drawn its
thumbnails (bounded: ``--timeout`` seconds), dismisses the App's two banners (its advertising and
its analytics question, answered "Disable"), saves the screenshot and closes both. The dataset
is only read. Refuses to overwrite ``--out`` unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a FiftyOne dataset made by notebook 03")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists: pass --overwrite to replace it")
    if not Path(args.chromium).is_file():
        raise SystemExit(f"no Chromium at {args.chromium}: apt-get install -y chromium")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    import fiftyone as fo
    from playwright.sync_api import sync_playwright

    if args.dataset not in fo.list_datasets():
        raise SystemExit(f"no FiftyOne dataset {args.dataset!r}; run notebook 03 first")
    view = fo.load_dataset(args.dataset).match_tags("val").sort_by("angle_deg")
    port = _free_port()
    session = fo.launch_app(view, port=port, address="127.0.0.1", remote=True, auto=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the App did not answer at {url} within {args.timeout:.0f} s")
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.goto(url, timeout=args.timeout * 1000)
            # the grid draws each thumbnail on a <canvas>
            page.wait_for_function("document.querySelectorAll('canvas').length >= 8",
                                   timeout=args.timeout * 1000)
            for button in ("Dismiss", "Disable"):  # the App's advertising and its analytics banner
                choice = page.get_by_text(button, exact=True)
                if choice.count():
                    choice.first.click()
            time.sleep(4)  # let the last thumbnails finish drawing
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        session.close()
    print(f"screenshot of the App on {args.dataset} (validation samples sorted by angle_deg): {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
