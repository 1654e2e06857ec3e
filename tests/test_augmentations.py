"""Signal-level tests of the augmentation chain (clmr/augmentations): every fixture is generated here."""

from __future__ import annotations

import math
from argparse import Namespace

import numpy as np
import pytest
import torch
from scipy import signal as scipy_signal
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from clmr.augmentations import (
    ComposeMany,
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    RandomApply,
    RandomResizedCrop,
    Reverb,
)
from clmr.augmentations import (
    functional as F,
)
from clmr.stages import augmentation_chain

SR = 22050


def sine(freq, seconds=1.0, sr=SR, amplitude=0.5):
    t = torch.arange(int(seconds * sr), dtype=torch.float32) / sr
    return (amplitude * torch.sin(2 * math.pi * freq * t)).view(1, 1, -1)


def peak_hz(x, sr=SR):
    x = x.flatten()
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x))).abs()
    return spectrum.argmax().item() * sr / len(x)


def rms(x):
    return x.pow(2).mean().sqrt().item()


def db(ratio):
    return 20 * math.log10(ratio)


def cfg(**overrides):
    values = dict(
        transforms_polarity=0.8,
        transforms_noise=0.01,
        transforms_gain=0.3,
        transforms_filters=0.8,
        transforms_delay=0.3,
        transforms_pitch=0.6,
        transforms_reverb=0.6,
        sample_rate=SR,
        audio_length=4096,
    )
    values.update(overrides)
    return Namespace(**values)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# --- pitch shift ---------------------------------------------------------------------------------


@pytest.mark.parametrize("semitones, expected_hz", [(12, 880.0), (-12, 220.0), (7, 440 * 2 ** (7 / 12))])
def test_pitch_shift_moves_a_sine_by_the_drawn_interval_and_keeps_its_length(semitones, expected_hz):
    x = sine(440)
    shift = PitchShift(x.shape[-1], SR, pitch_shift_min=semitones, pitch_shift_max=semitones)
    y = shift(x)
    assert shift.last_params["cents"].tolist() == [semitones * 100]
    assert y.shape == x.shape
    assert peak_hz(y) == pytest.approx(expected_hz, abs=2.0)
    # A steady tone keeps its level (within 0.5 dB) away from the edges.
    assert db(rms(y[..., 2048:-2048]) / rms(x[..., 2048:-2048])) == pytest.approx(0, abs=0.5)


def test_pitch_shift_draws_whole_cents_between_minus_and_plus_seven_semitones():
    cents = PitchShift(2048, SR).sample_params(torch.zeros(2000, 1, 1))["cents"]
    assert cents.dtype == torch.int64
    assert cents.min() >= -700 and cents.max() <= 700
    assert cents.min() < -680 and cents.max() > 680
    assert len(cents.unique()) > 1000  # whole cents, not a coarse grid


def test_pitch_shift_rejects_shifts_beyond_an_octave():
    with pytest.raises(ValueError, match="12 semitones"):
        F.pitch_shift(sine(440), torch.tensor([13.0]), SR)


def test_pitch_shift_shifts_each_example_of_a_batch_by_its_own_interval():
    x = sine(440).repeat(3, 1, 1)
    y = F.pitch_shift(x, torch.tensor([0.0, 5.0, -3.0]), SR)
    for i, semitones in enumerate([0.0, 5.0, -3.0]):
        assert peak_hz(y[i]) == pytest.approx(440 * 2 ** (semitones / 12), abs=2.0)


def test_pitch_shift_by_zero_cents_is_exactly_the_identity():
    x = torch.cat([sine(440), 0.1 * torch.randn(1, 1, SR)])  # within full scale: nothing to clip
    shift = PitchShift(SR, SR, pitch_shift_min=0, pitch_shift_max=0)
    assert torch.equal(shift(x), x)
    mixed = F.pitch_shift(x, torch.tensor([0.0, 2.0]), SR)
    assert torch.equal(mixed[0], x[0]) and not torch.allclose(mixed[1], x[1])


def test_pitch_shift_clips_its_input_and_output_to_full_scale_as_sox_does():
    loud = sine(440, amplitude=1.5)
    y = F.pitch_shift(loud, torch.tensor([3.0]), SR)
    assert y.abs().max() <= 1.0
    assert torch.equal(F.pitch_shift(loud, torch.tensor([0.0]), SR), loud.clamp(-1, 1))


# --- delay, filters, gain, noise, polarity -------------------------------------------------------


def test_delay_echoes_an_impulse_at_the_drawn_offset_with_half_its_volume():
    x = torch.zeros(4, 1, 12000)
    x[:, 0, 100] = 1.0
    delay = Delay(SR)
    y = delay(x)
    for i in range(4):
        ms = delay.last_params["delay_ms"][i].item()
        assert ms in (200, 250, 300, 350, 400, 450)
        offset = int(ms * SR / 1000)
        assert delay.last_params["offset"][i].item() == offset
        expected = torch.zeros(12000)
        expected[100] = 0.5  # (x + 0.5 * delayed) / 2
        expected[100 + offset] = 0.25
        torch.testing.assert_close(y[i, 0], expected)


@pytest.mark.parametrize("cutoff_hz", [200.0, 1200.0])
def test_high_pass_removes_a_100_hz_tone_by_at_least_20_db(cutoff_hz):
    x = sine(100)
    y = F.high_low_pass(x, SR, torch.tensor([cutoff_hz]), torch.tensor([True]))
    assert db(rms(y[..., 1000:-1000]) / rms(x[..., 1000:-1000])) < -20


@pytest.mark.parametrize("cutoff_hz", [2200.0, 4000.0])
def test_low_pass_removes_a_6_khz_tone_by_at_least_20_db(cutoff_hz):
    x = sine(6000)
    y = F.high_low_pass(x, SR, torch.tensor([cutoff_hz]), torch.tensor([False]))
    assert db(rms(y[..., 1000:-1000]) / rms(x[..., 1000:-1000])) < -20


def test_filters_match_julius_per_example():
    julius = pytest.importorskip("julius")
    x = torch.randn(3, 1, 5000)
    cutoff = torch.tensor([300.0, 1100.0, 3500.0])
    highpass = torch.tensor([True, True, False])
    y = F.high_low_pass(x, SR, cutoff, highpass)
    for i in range(3):
        apply = julius.highpass_filter if highpass[i] else julius.lowpass_filter
        torch.testing.assert_close(y[i], apply(x[i], cutoff[i].item() / SR), atol=1e-5, rtol=1e-4)


def test_high_low_pass_draws_both_kinds_within_their_ranges():
    params = HighLowPass(SR).sample_params(torch.zeros(400, 1, 1))
    highpass, cutoff = params["highpass"], params["cutoff_hz"]
    assert 150 < highpass.sum() < 250
    assert ((cutoff[highpass] >= 200) & (cutoff[highpass] <= 1200)).all()
    assert ((cutoff[~highpass] >= 2200) & (cutoff[~highpass] <= 4000)).all()


def test_gain_changes_the_rms_by_the_drawn_decibels():
    x = 0.1 * torch.randn(16, 1, 2000)
    gain = Gain()
    y = gain(x)
    drawn = gain.last_params["gain_db"]
    assert ((drawn >= -20) & (drawn <= -1)).all()
    for i in range(16):
        assert db(rms(y[i]) / rms(x[i])) == pytest.approx(drawn[i].item(), abs=1e-3)


def test_gain_clips_to_full_scale_as_torchaudio_vol_does():
    x = torch.tensor([[[2.0, -3.0, 0.5]]])
    y = F.gain(x, torch.tensor([-1.0]))
    torch.testing.assert_close(y, torch.tensor([[[1.0, -1.0, 0.5 * 10 ** (-1 / 20)]]]))


def test_noise_has_a_standard_deviation_ratio_within_the_configured_range():
    x = sine(440).repeat(32, 1, 1) * torch.linspace(0.1, 1.0, 32).view(-1, 1, 1)
    noise = Noise(min_snr=0.0001, max_snr=0.01)
    y = noise(x)
    drawn = noise.last_params["noise_ratio"]
    measured = (y - x).flatten(1).std(dim=1) / x.flatten(1).std(dim=1)
    assert ((drawn >= 0.0001) & (drawn <= 0.01)).all()
    torch.testing.assert_close(measured, drawn, rtol=0.03, atol=0)


def test_polarity_inversion_flips_the_sign():
    x = torch.randn(2, 1, 100)
    torch.testing.assert_close(PolarityInversion()(x), -x)


# --- reverb --------------------------------------------------------------------------------------


def test_reverb_lengthens_the_decay_of_a_click_and_keeps_its_length():
    x = torch.zeros(2, 1, SR)
    x[:, 0, 2205] = 1.0
    reverb = Reverb(SR, reverberance_min=50, room_size_min=50)
    y = reverb(x)
    assert y.shape == x.shape
    after = 2205 + int(0.1 * SR)  # 100 ms after the click
    tail_energy = y[..., after:].pow(2).sum(dim=-1).flatten()
    assert (tail_energy > 1e-3).all()  # dry: exactly 0
    assert y[..., :2205].abs().max() < 1e-3  # nothing before the click (no wrap-around)
    torch.testing.assert_close(y[..., 2205], torch.ones(2, 1), atol=0.05, rtol=0)  # the dry click


def test_more_reverberance_decays_more_slowly():
    x = torch.zeros(2, 1, SR)
    x[:, 0, 0] = 1.0
    y = F.reverb(x, SR, torch.tensor([10.0, 90.0]), torch.tensor([50.0, 50.0]), torch.tensor([80.0, 80.0]))
    late = y[..., int(0.3 * SR) :].pow(2).sum(dim=-1).flatten()
    assert late[1] > 100 * late[0]


def _freeverb_in_the_time_domain(x, sr, reverberance, damping, room_size):
    """freeverb as sox runs it, recursion by recursion (scipy's lfilter): per stereo side 8 damped
    combs into 4 all-passes, dry + 0.015 wet, each side clipped, the two averaged; an independent
    check of the closed-form, FFT-applied clmr.augmentations.freeverb."""
    combs, allpasses = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617), (225, 341, 441, 556)
    a = -1 / math.log(1 - 0.3)
    b = 100 / (math.log(1 - 0.98) * a + 1)
    g = 1 - math.exp((reverberance - b) / (a * b))
    d = damping / 100 * 0.3 + 0.2
    scale, rate = room_size / 100 * 0.9 + 0.1, sr / 44100
    x = np.clip(x, -1, 1)
    sides = []
    for side in (0, 1):
        wet = np.zeros(len(x))
        for i, length in enumerate(combs):  # y = z^-N / (1 - g (1 - d) z^-N / (1 - d z^-1))
            delay = int(scale * rate * (length + 12 * side * (-1) ** i) + 0.5)
            num, den = np.zeros(delay + 2), np.zeros(delay + 1)
            num[delay], num[delay + 1] = 1.0, -d
            den[0], den[1] = 1.0, -d
            den[delay] -= g * (1 - d)
            wet += scipy_signal.lfilter(num, den, x)
        for i, length in enumerate(allpasses):  # y = (1.5 z^-N - 1) / (1 - 0.5 z^-N)
            delay = int(rate * (length + 12 * side * (-1) ** i) + 0.5)
            num, den = np.zeros(delay + 1), np.zeros(delay + 1)
            num[0], num[delay] = -1.0, 1.5
            den[0], den[delay] = 1.0, -0.5
            wet = scipy_signal.lfilter(num, den, wet)
        sides.append(np.clip(x + 0.015 * wet, -1, 1))
    return 0.5 * (sides[0] + sides[1])


@pytest.mark.parametrize("reverberance, damping, room_size", [(50, 50, 50), (99, 0, 99), (0, 99, 0), (99, 50, 10)])
def test_reverb_equals_freeverb_run_as_recursions(reverberance, damping, room_size):
    sr, n = 8000, 8000 * 2
    rng = np.random.default_rng(0)
    x = np.zeros(n)
    x[10] = 0.9
    x[3000:3800] = 0.4 * rng.standard_normal(800)
    x[9000:] = 0.8 * np.sin(2 * np.pi * 220 * np.arange(n - 9000) / sr)  # loud enough to clip with a long tail
    reference = _freeverb_in_the_time_domain(x, sr, reverberance, damping, room_size)
    ours = (
        F.reverb(
            torch.tensor(x).view(1, 1, -1),
            sr,
            torch.tensor([reverberance]),
            torch.tensor([damping]),
            torch.tensor([room_size]),
        )
        .flatten()
        .numpy()
    )
    error_db = 10 * np.log10(((ours - reference) ** 2).sum() / (reference**2).sum())
    assert error_db < -80


def test_reverb_clips_its_output_to_full_scale():
    loud = sine(220, amplitude=0.95)
    y = F.reverb(loud, SR, torch.tensor([90.0]), torch.tensor([10.0]), torch.tensor([90.0]))
    assert y.abs().max() <= 1.0
    assert (y.abs() > 0.999).any()  # the wet tail pushed it to full scale


# --- RandomApply, Compose, crops -----------------------------------------------------------------


@pytest.mark.parametrize("p", [0.01, 0.3, 0.8])
def test_random_apply_applies_at_its_probability_with_a_mask_per_example(p):
    n = 4000
    x = torch.ones(n, 1, 4)
    step = RandomApply([PolarityInversion()], p=p)
    y = step(x)
    mask = step.last_mask
    applied = mask.sum().item()
    assert abs(applied - n * p) < 4.5 * math.sqrt(n * p * (1 - p))
    torch.testing.assert_close(y[:, 0, 0], torch.where(mask, -1.0, 1.0))


def test_random_apply_passes_skipped_examples_through_unchanged():
    x = torch.randn(64, 1, 300)
    step = RandomApply([Gain()], p=0.5)
    y = step(x)
    skipped = ~step.last_mask
    assert 0 < skipped.sum() < 64
    assert torch.equal(y[skipped], x[skipped])
    assert not torch.isclose(y[~skipped], x[~skipped]).all(dim=-1).any()


def test_random_apply_rejects_a_probability_outside_zero_one():
    with pytest.raises(ValueError, match="1.5"):
        RandomApply([Gain()], p=1.5)


def test_random_resized_crop_cuts_an_independent_window_per_example():
    x = torch.arange(1000.0).repeat(8, 1, 1)
    crop = RandomResizedCrop(100)
    y = crop(x)
    start = crop.last_params["start"]
    assert y.shape == (8, 1, 100)
    assert len(set(start.tolist())) > 1
    for i in range(8):
        torch.testing.assert_close(y[i, 0], torch.arange(100.0) + start[i])
    with pytest.raises(ValueError, match="1000"):
        RandomResizedCrop(2000)(x)


def test_compose_many_returns_independently_cropped_and_augmented_views():
    chain = ComposeMany([RandomResizedCrop(256), Gain()], num_augmented_samples=2)
    x = torch.randn(1, 4000)
    views = chain(x)
    assert views.shape == (2, 1, 256)
    assert not torch.allclose(views[0], views[1])
    assert chain(torch.randn(3, 1, 4000)).shape == (3, 2, 1, 256)


# --- the CLMR chain ------------------------------------------------------------------------------


def test_build_augmentation_chain_uses_the_configured_probabilities():
    chain = augmentation_chain(cfg())
    steps = list(chain.transforms)
    assert [s.p for s in steps] == [0.8, 0.01, 0.3, 0.8, 0.3, 0.6, 0.6]
    kinds = [type(s.transforms[0]) for s in steps]
    assert kinds == [PolarityInversion, Noise, Gain, HighLowPass, Delay, PitchShift, Reverb]
    cropping = augmentation_chain(cfg(), crop=True)
    assert isinstance(cropping.transforms[0], RandomResizedCrop)
    assert cropping(torch.randn(2, 1, 6000)).shape == (2, 1, 4096)


def test_chain_below_the_filters_sample_rate_is_a_config_error_unless_the_filters_are_off():
    from clmr.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"^--sample_rate 4000: the filters augmentation \(--transforms_filters 0.8\) "
        r"cuts off up to 4000 Hz and needs at least 8000 Hz",
    ):
        augmentation_chain(cfg(sample_rate=4000))
    chain = augmentation_chain(cfg(sample_rate=4000, transforms_filters=0.0))
    assert chain(0.1 * torch.randn(2, 1, 4096)).shape == (2, 1, 4096)


def test_chain_is_an_ordinary_module_with_nothing_in_its_state_dict():
    chain = augmentation_chain(cfg())
    visited = []
    chain.apply(visited.append)  # nn.Module.apply walks every submodule
    assert len(visited) > 7
    assert chain.state_dict() == {}  # nothing lands in training checkpoints


@pytest.mark.parametrize("shape", [(1, 4096), (3, 1, 4096), (2, 2, 4096)])
def test_chain_keeps_shape_and_dtype(shape):
    chain = augmentation_chain(cfg(**{k: 1.0 for k in vars(cfg()) if k.startswith("transforms_")}))
    for dtype in (torch.float32, torch.float64):
        x = (0.1 * torch.randn(shape)).to(dtype)
        y = chain(x)
        assert y.shape == x.shape and y.dtype == dtype
        assert torch.isfinite(y).all()


def test_identical_examples_in_a_batch_come_out_different():
    chain = augmentation_chain(cfg(transforms_gain=1.0, transforms_pitch=1.0))
    x = sine(440, seconds=2048 / SR).repeat(8, 1, 1)
    y = chain(x)
    gains = chain.transforms[2].transforms[0].last_params["gain_db"]
    assert len(set(gains.tolist())) == 8
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.allclose(y[i], y[j])


def _applied_parameters(chain):
    """Per RandomApply step: the mask; plus the gain (dB) and pitch (cents) of the examples they applied to."""
    steps = chain.transforms
    masks = [s.last_mask for s in steps]
    gain = steps[2].transforms[0].last_params.get("gain_db", torch.empty(0)) if masks[2].any() else torch.empty(0)
    pitch = steps[5].transforms[0].last_params.get("cents", torch.empty(0)) if masks[5].any() else torch.empty(0)
    return masks, gain, pitch.float()


def test_per_example_and_batched_chains_draw_from_the_same_distributions():
    chain = augmentation_chain(cfg(audio_length=1024))
    n = 400
    x = 0.1 * torch.randn(n, 1, 1024)
    single = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        for i in range(n):
            chain(x[i : i + 1])
            single.append(_applied_parameters(chain))
    finally:
        torch.set_num_threads(threads)
    single_masks = torch.stack([torch.cat(m) for m, _, _ in single])  # (n, 7)
    single_gain = torch.cat([g for _, g, _ in single])
    single_pitch = torch.cat([p for _, _, p in single])
    chain(x)
    batch_masks, batch_gain, batch_pitch = _applied_parameters(chain)
    batch_masks = torch.stack(batch_masks, dim=1)
    # Each step is applied at the same rate (two-proportion z test, 4.5 sigma).
    for k, p in enumerate([0.8, 0.01, 0.3, 0.8, 0.3, 0.6, 0.6]):
        a, b = single_masks[:, k].float().mean(), batch_masks[:, k].float().mean()
        assert abs(a - b) < 4.5 * math.sqrt(2 * p * (1 - p) / n) + 1e-9
    # The applied gains and pitch shifts have the same distribution (two-sample KS test).
    assert stats.ks_2samp(single_gain.numpy(), batch_gain.numpy()).pvalue > 1e-3
    assert stats.ks_2samp(single_pitch.numpy(), batch_pitch.numpy()).pvalue > 1e-3


class _AugmentedCopies(Dataset):
    """The same clip every time, through the chain (as a dataset does with augment_on: workers)."""

    def __init__(self, chain):
        self.chain = chain
        self.clip = sine(440, seconds=2048 / SR)[0]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.chain(self.clip), torch.utils.data.get_worker_info().id


def test_dataloader_workers_draw_different_augmentations():
    chain = augmentation_chain(cfg(audio_length=2048))
    loader = DataLoader(_AugmentedCopies(chain), batch_size=None, num_workers=2)
    by_worker = {0: [], 1: []}
    for view, worker in loader:
        by_worker[worker].append(view)
    assert len(by_worker[0]) == len(by_worker[1]) == 4
    # Worker 0's k-th draw differs from worker 1's k-th draw (the same draw if both were seeded alike).
    for a, b in zip(by_worker[0], by_worker[1]):
        assert not torch.allclose(a, b)


# --- functional ops ------------------------------------------------------------------------------


def test_functional_ops_are_deterministic_given_their_parameters():
    x = torch.randn(2, 1, 3000)
    noise = torch.randn(2, 1, 3000)
    calls = [
        lambda: F.random_crop(x, torch.tensor([5, 70]), 1000),
        lambda: F.invert_polarity(x),
        lambda: F.add_noise(x, noise, torch.tensor([0.01, 0.001])),
        lambda: F.gain(x, torch.tensor([-3.0, -12.0])),
        lambda: F.high_low_pass(x, SR, torch.tensor([500.0, 3000.0]), torch.tensor([True, False])),
        lambda: F.delay(x, torch.tensor([441, 882])),
        lambda: F.pitch_shift(x, torch.tensor([3.0, -5.5]), SR),
        lambda: F.reverb(x, SR, torch.tensor([40.0, 90.0]), torch.tensor([10.0, 70.0]), torch.tensor([30.0, 80.0])),
    ]
    for call in calls:
        assert torch.equal(call(), call())


def test_functional_ops_reject_unbatched_input():
    with pytest.raises(ValueError, match=r"\(batch, channels, time\)"):
        F.gain(torch.randn(1, 100), torch.tensor([-3.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_chain_runs_on_cuda():
    chain = augmentation_chain(cfg(**{k: 1.0 for k in vars(cfg()) if k.startswith("transforms_")}))
    x = 0.1 * torch.randn(4, 1, 4096, device="cuda")
    y = chain(x)
    assert y.device == x.device and y.shape == x.shape and torch.isfinite(y).all()


def test_the_chain_itself_refuses_filters_above_nyquist_without_naming_a_flag():
    from clmr.augmentations import build_augmentation_chain

    probabilities = dict(polarity=0.0, noise=0.0, gain=0.0, delay=0.0, pitch=0.0, reverb=0.0)
    with pytest.raises(ValueError, match="at least 8000 Hz, not 4000") as refused:
        build_augmentation_chain(4000, 4096, filters=0.8, **probabilities)
    assert "--" not in str(refused.value)
    assert build_augmentation_chain(4000, 4096, filters=0.0, **probabilities)(torch.zeros(1, 4096)).shape == (1, 4096)
