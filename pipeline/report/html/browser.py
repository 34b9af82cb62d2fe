"""The system's headless Chromium (Debian's `chromium`, `make setup-browser`), driven directly:
browser downloads fail offline, so no driver that fetches its own browser.

    python -m pipeline.report --format html --lineage checkpoints/default -o docs/report.html \
        --screenshot docs/report.png

`dump_dom` loads a page and returns its DOM after rendering and the console lines (an uncaught error
or a failed load shows up as a CONSOLE line); `screenshot` saves a PNG. Name resolution is mapped to
nowhere, so a page that needed the network would show it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND"]


class BrowserError(RuntimeError):
    """No chromium on this machine, or it failed on the page."""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise BrowserError("chromium is not installed: `make setup-browser` installs Debian's (needs apt and root)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        run = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                             timeout=timeout)
    if run.returncode != 0:
        raise BrowserError(f"chromium exited {run.returncode}: {run.stderr[-2000:]}")
    return run


def dump_dom(page: Path, timeout: int = 60) -> tuple[str, list[str]]:
    """(the rendered DOM, the console lines) of a local page."""
    run = _run(["--dump-dom", Path(page).resolve().as_uri()], timeout)
    return run.stdout, [ln for ln in run.stderr.splitlines() if re.search(r"CONSOLE|Uncaught", ln)]


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2400, timeout: int = 60) -> Path:
    """A PNG of the page's first `height` pixels at `width`."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}", Path(page).resolve().as_uri()], timeout)
    if not png.exists():
        raise BrowserError(f"chromium wrote no screenshot to {png}")
    return png
