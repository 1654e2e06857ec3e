"""Shared bench helpers: the machine a number came from, median timing, and recording a section of docs/PERFORMANCE.md.

    from _common import command, machine, median_time, record, table

`record("Loading", text)` replaces the `## Loading` section of docs/PERFORMANCE.md (or appends it,
creating the file if needed) under a file lock, and leaves every other section as it is.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benches run as `python bench/bench_x.py` from a checkout
    sys.path.insert(0, str(ROOT))
PERFORMANCE = ROOT / "docs" / "PERFORMANCE.md"
TITLE = "# Performance\n\nMeasured by the scripts in `bench/` (see `bench/README.md`); each section is rewritten by its bench.\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU, cores, GPU, torch threads, versions, date, and the load average when the run began."""
    import numpy
    import soundfile
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = "%.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, {gpu}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
        f"libsndfile {soundfile.__libsndfile_version__}; {datetime.date.today().isoformat()}; "
        f"load average {load} at start"
    )


def command() -> str:
    """The command line that ran this bench, to paste into a shell."""
    return shlex.join(["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of `fn()` over `repeat` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; floats get three significant digits."""

    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(section: str, body: str, path: Path = PERFORMANCE) -> None:
    """Write `## section` with `body` into the Markdown file: replaced if present, else appended."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"## {section}\n\n{body.strip()}\n"
    lock_path = Path(tempfile.gettempdir()) / f"clmr-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = path.read_text() if path.exists() else TITLE
        pattern = re.compile(rf"^## {re.escape(section)}[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
        if pattern.search(old):
            new = pattern.sub(lambda _: text + "\n", old, count=1).rstrip("\n") + "\n"
        else:
            new = old.rstrip("\n") + "\n\n" + text
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(new)
        os.replace(tmp, path)
        fcntl.flock(lock, fcntl.LOCK_UN)
