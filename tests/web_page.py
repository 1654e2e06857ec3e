"""The browser page (web/) under test: what it needs, serving it, and driving it in headless Chromium.

Shared by tests/test_web.py and bench/bench_web.py. The driver, web/tests/drive.mjs, runs every case
of a spec in one Chromium launch and prints what the page showed as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from conftest import stereo_with_truth  # noqa: F401 - the page's test signal, for test_web.py and bench_web.py

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
DRIVER = WEB / "tests" / "drive.mjs"
SCREENSHOTS = ROOT / "runs" / "web_tests"  # where the tests leave their screenshots for a person to look at
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
NPM_PACKAGES = ("onnxruntime-web", "playwright-core")
SR, L = 22050, 59049
SERVER_START_S = 30


def chromium_path() -> str | None:
    """$CHROMIUM when set (a path or a name on PATH), else the first Chromium on PATH; None if not found."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def missing_tools() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    if not shutil.which("node"):
        return "node is not installed (the browser tests drive Chromium from node)"
    if not chromium_path():
        return "chromium is not installed (apt-get install -y chromium), or $CHROMIUM names no executable"
    missing = [p for p in NPM_PACKAGES if not (WEB / "node_modules" / p / "package.json").is_file()]
    if missing:
        return f"web/node_modules lacks {', '.join(missing)}: run `npm ci` in web/"
    return ""


@contextlib.contextmanager
def serving(model_dir: Path) -> Iterator[str]:
    """web/serve.py on a free port of 127.0.0.1 with `model_dir` as the page's model; yields the page's URL."""
    server = subprocess.Popen(
        [sys.executable, str(WEB / "serve.py"), "--port", "0", "--quiet", "--model", str(model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in server.stdout:  # warnings first, then "serving http://127.0.0.1:PORT/ ..."
            lines.append(line)
            found = re.search(r"serving (http://\S+/)", line)
            if found:
                break
        else:
            raise RuntimeError(f"web/serve.py did not start:\n{''.join(lines)}")
        yield found.group(1)
    finally:
        server.terminate()
        server.wait(SERVER_START_S)


def drive(url: str, sessions: list[dict], out: Path, timeout_s: float) -> dict:
    """Run the sessions (see web/tests/drive.mjs) in one headless Chromium; what the page showed, as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "url": url,
        "chromium": chromium_path(),
        "out": str(out),
        "timeout_ms": int(timeout_s * 1000),
        "sessions": sessions,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        done = subprocess.run(
            ["node", str(DRIVER), f.name],
            cwd=WEB,
            capture_output=True,
            text=True,
            timeout=timeout_s * (1 + sum(len(s.get("steps", [])) for s in sessions)),
        )
    finally:
        os.unlink(f.name)
    if done.returncode:
        raise AssertionError(f"web/tests/drive.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)
