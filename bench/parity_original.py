"""Parity with the original library: our transforms against torchaudio-augmentations 0.2.4 for the same parameters.

    python bench/parity_original.py                  # builds the side environment once (~3 GB), prints the table
    python bench/parity_original.py --record         # and writes the table into docs/AUGMENTATIONS.md
    python bench/parity_original.py --env DIR        # the side environment's folder (default ~/.cache/clmr-parity/venv)
    python bench/parity_original.py --mode pretraining --seeds 1,2,3 --step 200 --record

The original's stack no longer installs next to ours, so it lives in a side environment outside the
project's .venv: /usr/bin/python3.11 -m venv, then from PyPI torch 2.0.1, torchaudio 2.0.2 (its wheel
carries libsox and the sox effects WavAugment calls), torchaudio-augmentations 0.2.4, numpy<2 and
setuptools<70. It is built on the first run (the torch wheel pulls its CUDA libraries: a few GB, a few
minutes) and never by `make test`. Each transform runs there with its draw pinned to given parameters
(bench/_parity_worker.py), and here with the same parameters; the table gives the error energy of ours
relative to the original's output, and for PitchShift, which is not sample-exact, the level and the
log-spectral distance too.

Modes: `--mode transforms` (the default, per transform), and `--mode pretraining`: pre-training on the
embedded dataset with our chain against the same runs with views made by the original library, several seeds,
scored with paired intervals (bench/_parity_pretraining.py; its runs live in bench_learning.py's folder and
reuse that bench's runs of our chain).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import ROOT, machine, table
from _parity_pretraining import pretraining_mode
from bench_learning import DEFAULT_OUT
from compare_sox import MARKER

sys.path.insert(0, str(ROOT / "tests"))
import sox_oracle as oracle  # noqa: E402  (signals and measures)
from clmr.augmentations import functional as F  # noqa: E402

DEFAULT_ENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clmr-parity" / "venv"
PYTHON = "/usr/bin/python3.11"
PACKAGES = ["torch==2.0.1", "torchaudio==2.0.2", "torchaudio-augmentations==0.2.4", "numpy<2", "setuptools<70"]
WORKER = Path(__file__).with_name("_parity_worker.py")
DOC = ROOT / "docs" / "AUGMENTATIONS.md"
SECTION = "## Parity with torchaudio-augmentations 0.2.4"
SAMPLE_RATE = 22050
CROP = 59049


def ensure_env(env: Path) -> Path:
    """The side environment's python, built on first use (a marker file says it is complete)."""
    python, done = env / "bin" / "python", env / ".clmr-parity-complete"
    if done.exists():
        return python
    if not Path(PYTHON).exists():
        sys.exit(
            f"error: {PYTHON} not found; the side environment needs Python 3.11 (apt-get install -y python3.11-venv)"
        )
    print(f"building the side environment in {env} (once; a few GB from PyPI) ...", flush=True)
    subprocess.run([PYTHON, "-m", "venv", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    subprocess.run(pip + ["setuptools<70", "numpy<2", "wheel"], check=True)
    subprocess.run(pip + PACKAGES, check=True)
    done.write_text(" ".join(PACKAGES) + "\n")
    return python


def inputs() -> dict[str, np.ndarray]:
    """Music-like test inputs of one crop: a chord, noise bursts, clicks and a tone mixed, and a quiet mixture."""
    mixture = 0.5 * (
        oracle.chord(CROP, SAMPLE_RATE)
        + oracle.noise_bursts(CROP, SAMPLE_RATE)
        + oracle.clicks(CROP, SAMPLE_RATE, amplitude=0.5)
        + oracle.tone(CROP, SAMPLE_RATE, hz=1000.0)
    )
    return {"chord": oracle.chord(CROP, SAMPLE_RATE), "mixture": mixture, "quiet": 0.1 * mixture}


# (transform, parameters) per row of the table; the extremes of each draw and a point between.
CASES: list[tuple[str, dict[str, float]]] = (
    [("polarity", {})]
    + [("noise", {"noise_ratio": r}) for r in (0.0001, 0.01)]
    + [("gain", {"gain_db": g}) for g in (-20.0, -6.5, -1.0)]
    + [("highpass", {"cutoff_hz": f}) for f in (200.0, 1200.0)]
    + [("lowpass", {"cutoff_hz": f}) for f in (2200.0, 4000.0)]
    + [("delay", {"delay_ms": ms}) for ms in (200, 450)]
    + [("pitch", {"cents": c}) for c in (-700, -250, 0, 1, 400, 700)]
    + [
        ("reverb", {"reverberance": r, "damping": h, "room_size": s})
        for r, h, s in ((0, 0, 0), (99, 99, 99), (99, 0, 99), (50, 50, 50), (20, 80, 10))
    ]
)


def ours(kind: str, p: dict[str, float], x: torch.Tensor, noise: np.ndarray | None) -> torch.Tensor:
    """Our functional transform for the same parameters, on (1, 1, time)."""
    if kind == "polarity":
        return F.invert_polarity(x)
    if kind == "noise":
        standard = torch.from_numpy(noise.astype(np.float32)).view_as(x)
        return F.add_noise(x, standard, torch.tensor([p["noise_ratio"]]))
    if kind == "gain":
        return F.gain(x, torch.tensor([p["gain_db"]]))
    if kind in ("highpass", "lowpass"):
        return F.high_low_pass(x, SAMPLE_RATE, torch.tensor([p["cutoff_hz"]]), torch.tensor([kind == "highpass"]))
    if kind == "delay":
        return F.delay(x, torch.tensor([int(p["delay_ms"] * (SAMPLE_RATE / 1000))]))
    if kind == "pitch":
        return F.pitch_shift(x, torch.tensor([p["cents"] / 100]), SAMPLE_RATE)
    if kind == "reverb":
        return F.reverb(
            x, SAMPLE_RATE, *(torch.tensor([float(p[k])]) for k in ("reverberance", "damping", "room_size"))
        )
    raise ValueError(f"unknown transform {kind!r}")


def run_original(python: Path, cases: list[dict], signals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="clmr-parity-") as tmp:
        request, source, target = (Path(tmp) / name for name in ("request.json", "inputs.npz", "outputs.npz"))
        request.write_text(json.dumps({"sample_rate": SAMPLE_RATE, "cases": cases}))
        np.savez(source, **signals)
        subprocess.run([str(python), str(WORKER), "transforms", str(request), str(source), str(target)], check=True)
        with np.load(target) as loaded:
            return dict(loaded)


def transforms_mode(python: Path, args: argparse.Namespace) -> str:
    """The per-transform table: ours against the original for the same parameters, on every input."""
    signals = inputs()
    cases = [
        {"transform": kind, "params": p, "input": name, "seed": i}
        for i, ((kind, p), name) in enumerate((c, n) for c in CASES for n in signals)
    ]
    outputs = run_original(python, cases, signals)
    rows = []
    for i, case in enumerate(cases):
        x = torch.from_numpy(signals[case["input"]].astype(np.float32)).view(1, 1, -1)
        mine = ours(case["transform"], case["params"], x, outputs.get(f"noise{i}")).flatten().double().numpy()
        theirs = outputs[f"case{i}"].astype(np.float64)
        level = lsd = ""
        if case["transform"] == "pitch":
            level = "%+.2f" % oracle.level_db(mine, theirs)
            lsd = "%.2f" % oracle.log_spectral_distance(mine, theirs)
        params = ", ".join(f"{k}={v}" for k, v in case["params"].items())
        largest = np.abs(mine - theirs).max()
        error = "%.1f" % oracle.error_db(mine, theirs) if largest > 0 else "identical"
        rows.append([case["transform"], params, case["input"], error, "%.2g" % largest, level, lsd])
    header = [
        "transform",
        "parameters",
        "input",
        "error energy (dB)",
        "max abs error",
        "level (dB)",
        "log-spectral distance (dB)",
    ]
    return table(header, rows)


MODES = {"transforms": transforms_mode, "pretraining": pretraining_mode}
SECTIONS = {"transforms": SECTION, "pretraining": "## Pre-training with the original library's views"}
NOTES = {
    "transforms": "Error energy is relative to the original's output energy. PitchShift is a different "
    "WSOLA from sox's (it splices at other points), so its waveform differs and the error energy says little; "
    "the level and the log-spectral distance say how close it is (on the mixture, which holds noise bursts "
    "and clicks, the per-bin distance is dominated by the noise, see the sox tables).",
    "pretraining": "Speed is not compared here (the arms ran side by side with other work): the original's "
    "views are made per example on the CPU by sox, in a second process; see docs/PERFORMANCE.md, Augmentation.",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="transforms")
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV, help=f"side environment (default {DEFAULT_ENV})")
    parser.add_argument("--record", action="store_true", help=f"write the table into {DOC.relative_to(ROOT)}")
    parser.add_argument("--seeds", default="1,2,3", type=lambda s: [int(x) for x in s.split(",")], help="pretraining")
    parser.add_argument("--step", type=int, default=200, help="pretraining: steps of batch 16 per arm")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"pretraining's runs (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.mode == "transforms":
        torch.set_num_threads(1)
    python = ensure_env(args.env)
    versions = subprocess.run(
        [str(python), "-c", "import torch, torchaudio; print(torch.__version__, torchaudio.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    body = (
        f"{machine()}; original side: torch {versions[0]}, torchaudio {versions[1]}, "
        f"torchaudio-augmentations 0.2.4\n\n"
        + ("`python bench/parity_original.py --record`\n\n" if args.mode == "transforms" else "")
        + f"{MODES[args.mode](python, args)}\n\n{NOTES[args.mode]}\n"
    )
    print(body)
    if args.record:
        record(body, SECTIONS[args.mode])


def record(body: str, section: str = SECTION) -> None:
    """Replace (or insert before compare_sox.py's generated part) this mode's section of the doc."""
    text = DOC.read_text()
    block = f"{section}\n\n{body.strip()}\n\n"
    if section in text:
        start = text.index(section)
        ends = [i for i in (text.find("\n## ", start + 1), text.find(MARKER, start)) if i >= 0]
        end = min(ends) if ends else len(text)
        text = text[:start] + block + text[end:].lstrip("\n")
    elif MARKER in text:
        start = text.index(MARKER)
        text = text[:start] + block + text[start:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOC.write_text(text)


if __name__ == "__main__":
    main()
