"""Reverb and PitchShift against the sox binary (Debian's sox 14.4.2), the effects the original CLMR ran.

Skipped when `sox` is not on PATH; CI installs it (apt-get install -y sox).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clmr.augmentations import PitchShift, Reverb
from clmr.augmentations import functional as F
from sox_oracle import (
    INSTALL_HINT,
    SOX,
    cents,
    chord,
    clicks,
    error_db,
    level_db,
    log_spectral_distance,
    noise_bursts,
    peak_hz,
    sox_pitch,
    sox_reverb,
    tone,
)

pytestmark = pytest.mark.skipif(SOX is None, reason=INSTALL_HINT)

SR = 22050


@pytest.fixture(autouse=True)
def one_thread():
    """Small signals: one torch thread is faster, and keeps these tests quick on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mixture(n: int, sample_rate: int) -> np.ndarray:
    """Clicks, noise bursts and a tone, one after the other in thirds: every kind of input in one signal."""
    third = n // 3
    return np.concatenate(
        [clicks(third, sample_rate), noise_bursts(third, sample_rate), tone(n - 2 * third, sample_rate, hz=330.0)]
    )


def _ours_reverb(x: np.ndarray, sample_rate: int, *params: int) -> np.ndarray:
    batch = torch.tensor(x, dtype=torch.float32).view(1, 1, -1)
    return F.reverb(batch, sample_rate, *(torch.tensor([float(p)]) for p in params)).flatten().double().numpy()


# The extremes of the original's draws (integers in [0, 100)) and points between.
REVERB_GRID = [
    (0, 0, 0),
    (99, 99, 99),
    (0, 0, 99),
    (99, 0, 0),
    (0, 99, 0),
    (99, 0, 99),
    (99, 99, 0),
    (50, 50, 50),
    (25, 75, 60),
    (80, 20, 35),
]


@pytest.mark.parametrize("reverberance, damping, room_size", REVERB_GRID)
def test_reverb_matches_sox_within_minus_60_db(reverberance, damping, room_size):
    x = _mixture(SR, SR)
    reference = sox_reverb(x, SR, reverberance, damping, room_size)
    assert len(reference) == len(x)  # sox keeps the length: the tail is cut, as in the original
    assert error_db(_ours_reverb(x, SR, reverberance, damping, room_size), reference) < -60


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_reverb_matches_sox_at_other_sample_rates(sample_rate):
    x = _mixture(sample_rate, sample_rate)
    for params in [(99, 0, 99), (30, 60, 20)]:
        assert error_db(_ours_reverb(x, sample_rate, *params), sox_reverb(x, sample_rate, *params)) < -60


def test_reverb_clips_each_stereo_side_and_its_input_as_sox_does():
    # Loud enough that sox's reverb clips (one side more than the other), and an input beyond full scale.
    x = 0.95 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    x[:2000] = 0
    x[3000:3100] = 1.5
    reference = sox_reverb(x, SR, 90, 10, 90)
    ours = _ours_reverb(x, SR, 90, 10, 90)
    assert np.abs(reference).max() == pytest.approx(1.0, abs=1e-6)
    assert error_db(ours, reference) < -60  # clipping once, after the downmix, would be about -15 dB off


def test_reverb_module_gives_each_example_of_a_batch_its_own_sox_reverb():
    x = _mixture(SR // 2, SR)
    reverb = Reverb(SR)
    batch = torch.tensor(x, dtype=torch.float32).repeat(4, 1, 1)
    y = reverb(batch).double().numpy()
    drawn = reverb.last_params
    for i in range(4):
        params = (int(drawn["reverberance"][i]), int(drawn["damping"][i]), int(drawn["room_size"][i]))
        assert error_db(y[i, 0], sox_reverb(x, SR, *params)) < -60


# --- pitch shift -------------------------------------------------------------------------------

SHIFTS = [-700, -350, -1, 1, 100, 700]


def _ours_pitch(x: np.ndarray, cents_shift: int) -> np.ndarray:
    batch = torch.tensor(x, dtype=torch.float32).view(1, 1, -1)
    return F.pitch_shift(batch, torch.tensor([cents_shift / 100]), SR).flatten().double().numpy()


@pytest.fixture(scope="module")
def signals():
    n = SR
    return {"tone": tone(n, SR), "chord": chord(n, SR)}


@pytest.mark.parametrize("cents_shift", SHIFTS)
def test_pitch_shift_moves_a_tone_by_the_interval_within_a_cent_and_keeps_level_and_length(signals, cents_shift):
    x = signals["tone"]
    ours, reference = _ours_pitch(x, cents_shift), sox_pitch(x, SR, cents_shift)
    target = 440.0 * 2 ** (cents_shift / 1200)
    measured = peak_hz(ours[1024:-1024], SR, target * 0.97, target * 1.03)
    assert abs(cents(measured, target)) < 1.0
    assert len(ours) == len(x)
    assert abs(level_db(ours, reference)) < 0.5
    assert log_spectral_distance(ours, reference) < 1.0


@pytest.mark.parametrize("cents_shift", SHIFTS)
def test_pitch_shift_of_a_chord_follows_sox(signals, cents_shift):
    x = signals["chord"]
    ours, reference = _ours_pitch(x, cents_shift), sox_pitch(x, SR, cents_shift)
    target = 261.63 * 2 ** (cents_shift / 1200)  # the lowest note
    band = (target * 0.97, target * 1.03)
    ours_hz, sox_hz = peak_hz(ours[1024:-1024], SR, *band), peak_hz(reference[1024:-1024], SR, *band)
    assert abs(cents(ours_hz, sox_hz)) < 1.0
    assert abs(level_db(ours, reference)) < 0.5
    # Far closer to sox's output than the unshifted input is (and within 3 dB of it).
    assert log_spectral_distance(ours, reference) < min(3.0, 0.5 * log_spectral_distance(x, reference) + 0.1)


def test_pitch_shift_of_noise_bursts_keeps_sox_level_on_average():
    levels = []
    for seed in range(2):
        x = noise_bursts(SR, SR, seed=seed)
        for cents_shift in (-500, 300, 700):
            levels.append(level_db(_ours_pitch(x, cents_shift), sox_pitch(x, SR, cents_shift)))
    assert abs(np.mean(levels)) < 0.5
    assert max(abs(v) for v in levels) < 1.0


def test_pitch_shift_by_zero_cents_is_the_identity_as_in_sox(signals):
    x = signals["chord"]
    assert np.abs(sox_pitch(x, SR, 0) - x).max() < 2**-24  # sox: its 32-bit integer rounding only
    shift = PitchShift(len(x), SR, pitch_shift_min=0, pitch_shift_max=0)
    batch = torch.tensor(x, dtype=torch.float32).view(1, 1, -1)
    assert torch.equal(shift(batch), batch)
