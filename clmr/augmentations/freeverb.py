"""sox's ``reverb`` effect, exactly: freeverb evaluated in closed form and applied by FFT convolution.

sox's ``reverb R H S`` (as the original CLMR calls it, through WavAugment and torchaudio's sox
effects: ``reverb R H S`` then ``channels 1``, stereo depth 100 %, pre-delay 0 ms, wet gain 0 dB)
runs Jezar's freeverb on each of two stereo sides: 8 parallel comb filters, each with a one-pole
low-pass in its feedback loop, summed and passed through 4 all-pass filters in series. For fixed
parameters this is linear and time-invariant, so each example's transfer function is evaluated at
the FFT bins from the filters' formulas (no recursion is run) and applied with one FFT
convolution on the input's device. The constants below were checked against the sox 14.4.2
binary, sample for sample (tests/test_augmentations_sox.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch

from ._fft import fast_fft_size

__all__ = ["reverb", "freeverb_delays"]

# Delay lengths in samples at 44.1 kHz (freeverb's tuning).
COMB_LENGTHS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_LENGTHS = (225, 341, 441, 556)
REFERENCE_RATE = 44100
# sox's stereo spread: the right side's delays are longer or shorter (alternating, filter by
# filter) by 12 samples at 44.1 kHz times the stereo depth (100 % as the original calls sox).
STEREO_SPREAD = 12
STEREO_DEPTH = 1.0
ALLPASS_FEEDBACK = 0.5
WET_GAIN = 0.015  # freeverb's fixed input gain of the tank; sox's wet gain of 0 dB keeps it
# Reverberance 0..100 % maps onto comb feedback 0.3..0.98, HF damping 0..100 % onto 0.2..0.5,
# room scale 0..100 % onto comb delays scaled by 0.1..1.
FEEDBACK_RANGE = (0.3, 0.98)
DAMPING_RANGE = (0.2, 0.5)
ROOM_SCALE_RANGE = (0.1, 1.0)
# The FFT is at least twice the input and evaluated on a circle of radius r > 1 with
# r ** -n_fft = ALIAS_ATTENUATION: the part of the response beyond the FFT that wraps around
# is 80 dB down before it folds, while the float32 rounding noise grows by at most 1e4 ** 0.5.
ALIAS_ATTENUATION = 1e-4
FFT_FACTOR = 1.25
PHASOR_BLOCK = 256  # the bins' phasors are an outer product of two short tables (exact phases)
CPU_ROWS = 1  # examples whose comb responses are computed together on a CPU
MIN_SAMPLE_RATE = 1000  # below it the shortest comb delay would round to nothing


def _check_percent(name: str, value: torch.Tensor) -> None:
    if ((value < 0) | (value > 100)).any():
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value.tolist()}")


def freeverb_delays(lengths: tuple[int, ...], scale: torch.Tensor, side: int) -> torch.Tensor:
    """Delays in samples, (batch, filters), for one stereo side: round(scale * (length +- spread)).

    ``scale`` (batch, 1) is the room scale times sample rate / 44.1 kHz for the combs and
    sample rate / 44.1 kHz alone for the all-passes; the spread alternates in sign from filter
    to filter and applies to side 1 (the right channel) only.
    """
    sign = torch.tensor([(-1.0) ** i for i in range(len(lengths))], dtype=torch.float64, device=scale.device)
    base = torch.tensor(lengths, dtype=torch.float64, device=scale.device)
    return torch.floor(scale * (base + STEREO_SPREAD * STEREO_DEPTH * side * sign) + 0.5).long()


def _phasor_factors(delays: torch.Tensor, n_fft: int, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(+2 pi i k D / n_fft) at bins k = q * PHASOR_BLOCK + s as two factors, (..., Q) and (..., S).

    Their outer product is the conjugate phasor of delay D at every bin (and a few past the
    last); the phases are reduced modulo n_fft exactly in float64 before the cosines are taken.
    """
    device = delays.device
    blocks = -(-n_bins // PHASOR_BLOCK)
    coarse = torch.arange(blocks, device=device, dtype=torch.float64) * PHASOR_BLOCK
    fine = torch.arange(PHASOR_BLOCK, device=device, dtype=torch.float64)
    d = delays.to(torch.float64).unsqueeze(-1)
    unit = torch.ones((), dtype=torch.float64, device=device)
    step = 2 * math.pi / n_fft
    outer = torch.polar(unit, torch.remainder(d * coarse, n_fft) * step)
    inner = torch.polar(unit, torch.remainder(d * fine, n_fft) * step)
    return outer, inner


def _z_power(delay: int, log_r: float, n_fft: int, n_bins: int, device: torch.device) -> torch.Tensor:
    """z ** -delay at the bins on the circle of radius r = exp(log_r), complex128."""
    outer, inner = _phasor_factors(torch.tensor([delay], device=device), n_fft, n_bins)
    return (outer[0].unsqueeze(-1) * inner[0].unsqueeze(-2)).flatten()[:n_bins].conj() * math.exp(-log_r * delay)


@dataclasses.dataclass(frozen=True)
class _Tables:
    """What no parameter changes, for one sample rate, length, FFT size, device and dtype."""

    log_r: float  # log of the circle's radius
    weighting: torch.Tensor  # r ** -n, (length,)
    unweighting: torch.Tensor  # r ** n
    z_inverse: torch.Tensor  # z ** -1 at the bins, (bins,)
    wet_allpass: torch.Tensor  # per side, the wet gain times the all-pass chain's response, (2, bins)
    outer: torch.Tensor  # _phasor_factors of every delay 0..longest comb, (delays, Q)
    inner: torch.Tensor  # (delays, S)


@functools.lru_cache(maxsize=8)
def _tables(sample_rate: int, length: int, n_fft: int, device: torch.device, dtype: torch.dtype) -> _Tables:
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    log_r = math.log(1 / ALIAS_ATTENUATION) / n_fft
    n_bins = n_fft // 2 + 1
    weighting = torch.exp(-log_r * torch.arange(length, device=device, dtype=torch.float64))
    rate = torch.full((1, 1), sample_rate / REFERENCE_RATE, dtype=torch.float64, device=device)
    sides = []
    for side in (0, 1):
        response = torch.full((n_bins,), WET_GAIN, dtype=torch.complex128, device=device)
        for delay in freeverb_delays(ALLPASS_LENGTHS, rate, side)[0].tolist():
            z = _z_power(delay, log_r, n_fft, n_bins, device)
            response = response * ((1 + ALLPASS_FEEDBACK) * z - 1) / (1 - ALLPASS_FEEDBACK * z)
        sides.append(response)
    longest = int(freeverb_delays(COMB_LENGTHS, rate * ROOM_SCALE_RANGE[1], 1).max())
    outer, inner = _phasor_factors(torch.arange(longest + 1, device=device), n_fft, n_bins)
    return _Tables(
        log_r=log_r,
        weighting=weighting.to(dtype),
        unweighting=(1 / weighting).to(dtype),
        z_inverse=_z_power(1, log_r, n_fft, n_bins, device).to(complex_dtype),
        wet_allpass=torch.stack(sides).to(complex_dtype),
        outer=outer.to(complex_dtype),
        inner=inner.to(complex_dtype),
    )


def _complex_matmul(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ right for complex (..., m, k) and (..., k, n) as one real product (faster than complex bmm)."""
    left_real = torch.cat([left.real, -left.imag], dim=-1)  # (..., m, 2k): [A, -B]
    columns = (torch.cat([right.real, right.imag], dim=-2), torch.cat([right.imag, right.real.neg()], dim=-2))
    right_real = torch.stack(columns, dim=-1).flatten(-2)  # (..., 2k, 2n): (re, im) columns interleaved
    product = torch.matmul(left_real, right_real)
    return torch.view_as_complex(product.view(*product.shape[:-1], -1, 2))


def _comb_bank(tables: _Tables, delays: torch.Tensor, feedback: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Sum of the 8 damped combs' responses at the bins (padded to Q * S), (rows, Q * S).

    A comb of delay D is z^-D p / (p - g (1 - d) z^-D) with p = 1 - d z^-1; with the conjugate
    phasor c = exp(i w D) and decay r^-D it is p decay / den, den = p c - g (1 - d) decay, and
    den = c - d r^-1 c' - g (1 - d) decay (c' the phasor of D - 1) is a sum of three outer
    products over (coarse, fine) bins: one batched matrix product gives every comb's den.
    The factor p is left to the caller.
    """
    complex_dtype = tables.outer.dtype
    real_dtype = tables.weighting.dtype
    decay = torch.exp(-tables.log_r * delays.to(torch.float64))  # (rows, 8)
    step = (-d * math.exp(-tables.log_r)).to(complex_dtype).unsqueeze(-1)  # (rows, 1, 1)
    constant = (-feedback * (1 - d) * decay).to(complex_dtype).unsqueeze(-1)  # (rows, 8, 1)
    outer, outer_before = tables.outer[delays], tables.outer[delays - 1]  # (rows, 8, Q)
    inner, inner_before = tables.inner[delays], tables.inner[delays - 1]  # (rows, 8, S)
    left = torch.stack([outer, step * outer_before, constant.expand_as(outer)], dim=-1)  # (rows, 8, Q, 3)
    right = torch.stack([inner, inner_before, torch.ones_like(inner)], dim=-2)  # (rows, 8, 3, S)
    reciprocal = _complex_matmul(left, right).reciprocal_().flatten(-2)  # (rows, 8, Q * S)
    # The decay-weighted sum over the combs, as a real matrix product on (re, im) pairs.
    pairs = torch.view_as_real(reciprocal).flatten(-2)  # (rows, 8, 2 Q S)
    summed = torch.matmul(decay.to(real_dtype).unsqueeze(1), pairs).squeeze(1)
    return torch.view_as_complex(summed.view(*summed.shape[:-1], -1, 2))


def reverb(
    x: torch.Tensor,
    sample_rate: int,
    reverberance: torch.Tensor,
    damping: torch.Tensor,
    room_size: torch.Tensor,
) -> torch.Tensor:
    """sox's ``reverb reverberance damping room_size`` then ``channels 1``, one set per example.

    ``reverberance``, ``damping`` (HF damping) and ``room_size`` (room scale) are percentages
    in [0, 100], shape (batch,). As through sox, the input is clipped to [-1, 1] on its way in,
    each stereo side (dry + wet) is clipped to [-1, 1] on its way out, and the two sides are
    averaged; the output has the input's length (sox does not add the tail). Matches the sox
    binary within -80 dB error energy on the original's parameter grid (see the tests).
    """
    if x.dim() != 3:
        raise ValueError(f"expected a (batch, channels, time) tensor, got shape {tuple(x.shape)}")
    if sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(f"reverb needs a sample rate of at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
    batch, channels, length = x.shape
    device = x.device
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    columns = []
    for name, value in (("reverberance", reverberance), ("damping", damping), ("room_size", room_size)):
        value = torch.as_tensor(value, device=device, dtype=torch.float64).expand(batch)
        _check_percent(name, value)
        columns.append(value.reshape(batch, 1))
    reverberance, damping, room_size = columns
    a = -1 / math.log(1 - FEEDBACK_RANGE[0])
    b = 100 / (math.log(1 - FEEDBACK_RANGE[1]) * a + 1)
    feedback = 1 - torch.exp((reverberance - b) / (a * b))  # (B, 1)
    d = DAMPING_RANGE[0] + (DAMPING_RANGE[1] - DAMPING_RANGE[0]) * damping / 100
    room = ROOM_SCALE_RANGE[0] + (ROOM_SCALE_RANGE[1] - ROOM_SCALE_RANGE[0]) * room_size / 100
    scale = room * (sample_rate / REFERENCE_RATE)

    n_fft = fast_fft_size(int(FFT_FACTOR * length))
    n_bins = n_fft // 2 + 1
    tables = _tables(sample_rate, length, n_fft, device, work)
    dry = x.to(work).clamp(-1, 1)
    spectrum = torch.fft.rfft(dry * tables.weighting, n=n_fft)  # (B, C, bins)
    lowpass = (1 - d.to(work) * tables.z_inverse).to(spectrum.dtype)  # p, (B, bins)
    responses = torch.empty(batch, 2, n_bins, dtype=spectrum.dtype, device=device)
    rows = CPU_ROWS if device.type == "cpu" else batch  # on a CPU a few rows at a time stay in cache
    for side in (0, 1):
        delays = freeverb_delays(COMB_LENGTHS, scale, side)  # (B, 8)
        for i in range(0, batch, rows):
            part = slice(i, i + rows)
            bank = _comb_bank(tables, delays[part], feedback[part], d[part])[:, :n_bins]
            responses[part, side] = bank.mul_(lowpass[part]).mul_(tables.wet_allpass[side])
    wet = torch.fft.irfft(spectrum.unsqueeze(1) * responses.unsqueeze(2), n=n_fft)[..., :length]
    sides = wet.mul_(tables.unweighting).add_(dry.unsqueeze(1)).clamp_(-1, 1)  # (B, 2, C, T)
    return sides.mean(dim=1).to(x.dtype)
