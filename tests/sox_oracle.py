"""sox as an oracle: run the sox CLI on generated audio, and the measures that compare our output with its.

Used by tests/test_augmentations_sox.py and by bench/compare_sox.py (which writes the tables of
docs/AUGMENTATIONS.md). Audio goes in and out as 32-bit float wav with dither off, so sox's own
32-bit integer path is the only rounding (2^-31).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SOX = shutil.which("sox")
INSTALL_HINT = "sox not on PATH (install it: apt-get install -y sox)"
# sox's output rounds to 32-bit integers: never below this level relative to full scale.
FLOOR = 2.0**-31


def run_sox(x: np.ndarray, sample_rate: int, effects: list[str]) -> np.ndarray:
    """``sox in.wav out.wav EFFECTS...`` on a mono float signal; the output as float64."""
    if SOX is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="clmr-sox-") as tmp:
        source, target = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(source, np.asarray(x, dtype=np.float32), sample_rate, subtype="FLOAT")
        command = [SOX, "-D", "-V1", str(source), "-b", "32", "-e", "floating-point", str(target), *effects]
        subprocess.run(command, check=True, capture_output=True)
        y, rate = sf.read(target, dtype="float64")
    assert rate == sample_rate, f"sox changed the rate to {rate}"
    return y


def sox_reverb(x: np.ndarray, sample_rate: int, reverberance: int, damping: int, room_size: int) -> np.ndarray:
    """The original's Reverb: ``reverb R H S channels 1`` (stereo depth, pre-delay, wet gain at sox's defaults)."""
    return run_sox(x, sample_rate, ["reverb", str(reverberance), str(damping), str(room_size), "channels", "1"])


def sox_pitch(x: np.ndarray, sample_rate: int, cents: int) -> np.ndarray:
    """The original's PitchShift: ``pitch CENTS rate SR``, cut or zero-padded to the input's length."""
    y = run_sox(x, sample_rate, ["pitch", str(cents), "rate", str(sample_rate)])
    out = np.zeros(len(x))
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


# --- signals -----------------------------------------------------------------------------------


def tone(n: int, sample_rate: int, hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(n) / sample_rate)


CHORD_HZ = (261.63, 329.63, 392.0)  # C major triad, C4 E4 G4


def chord(n: int, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """Three notes, each with 4 harmonics falling off as 1/k, peak about ``amplitude``."""
    t = np.arange(n) / sample_rate
    y = sum(np.sin(2 * np.pi * f * k * t + k) / k for f in CHORD_HZ for k in range(1, 5))
    return amplitude * y / np.abs(y).max()


def noise_bursts(n: int, sample_rate: int, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """100 ms bursts of white noise every 250 ms, 5 ms raised-cosine edges."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    burst, period, edge = int(0.1 * sample_rate), int(0.25 * sample_rate), int(0.005 * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    window = np.concatenate([ramp, np.ones(burst - 2 * edge), ramp[::-1]])
    for start in range(period // 4, n - burst, period):
        y[start : start + burst] = amplitude * rng.standard_normal(burst) * window
    return y


def clicks(n: int, sample_rate: int, amplitude: float = 0.9) -> np.ndarray:
    """Single-sample clicks every 200 ms, alternating in sign."""
    y = np.zeros(n)
    for i, start in enumerate(range(50, n, int(0.2 * sample_rate))):
        y[start] = amplitude * (-1) ** i
    return y


SIGNALS = {"tone": tone, "chord": chord, "noise bursts": noise_bursts}


# --- measures ----------------------------------------------------------------------------------


def error_db(ours: np.ndarray, reference: np.ndarray) -> float:
    """Energy of the difference relative to the reference's energy, in dB."""
    return 10 * math.log10(max(np.sum((ours - reference) ** 2), 1e-300) / np.sum(reference**2))


def level_db(ours: np.ndarray, reference: np.ndarray) -> float:
    """Our RMS over the reference's, in dB."""
    return 10 * math.log10(np.sum(ours**2) / np.sum(reference**2))


def peak_hz(x: np.ndarray, sample_rate: int, low: float = 20.0, high: float | None = None) -> float:
    """Frequency of the strongest spectral peak between low and high Hz (Hann window, zero-padded
    8x, parabolic interpolation on the log magnitude): accurate to well below a cent on a steady
    tone of a second or more."""
    n_fft = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=n_fft)) + 1e-30
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    band = (freqs >= low) & (freqs <= (high or sample_rate / 2))
    k = np.flatnonzero(band)[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * sample_rate / n_fft


def cents(hz: float, reference_hz: float) -> float:
    return 1200 * math.log2(hz / reference_hz)


def log_spectral_distance(
    ours: np.ndarray, reference: np.ndarray, n_fft: int = 2048, hop: int = 512, floor_db: float = -80.0
) -> float:
    """Mean over frames of the RMS over bins of the difference of the two power spectra in dB (Hann
    frames of n_fft, hop hop); powers are floored at floor_db below the reference's loudest bin, and
    frames where the reference is silent (below the floor everywhere) are left out."""

    def power(x):
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
        return np.abs(np.fft.rfft(frames, axis=-1)) ** 2

    p_ours, p_reference = power(ours), power(reference)
    floor = p_reference.max() * 10 ** (floor_db / 10)
    keep = p_reference.max(axis=1) > floor
    difference = 10 * np.log10(np.maximum(p_ours[keep], floor) / np.maximum(p_reference[keep], floor))
    return float(np.sqrt((difference**2).mean(axis=1)).mean())


def run_sox_version() -> str:
    """sox's version line, e.g. ``SoX v14.4.2``."""
    if SOX is None:
        raise RuntimeError(INSTALL_HINT)
    out = subprocess.run([SOX, "--version"], check=True, capture_output=True, text=True).stdout
    return out.strip().split(":", 1)[-1].strip()
