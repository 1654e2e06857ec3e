"""Pure, batched audio augmentations.

Every function takes a ``(batch, channels, time)`` tensor and per-example parameter
tensors of shape ``(batch,)`` and returns a new tensor. There is no randomness and no
state here: the random draws live in :mod:`clmr.augmentations.transforms`, which calls
these functions. Because everything is tensor arithmetic on the input's device, the
same code runs per example in a DataLoader worker (batch of one) and per batch on a GPU.
Random signals an operation needs (white noise) are arguments.

Clipping to [-1, 1] happens where the original's stack clips: after ``gain`` (torchaudio's
``Vol`` clamps), and at the input and output of ``pitch_shift`` and ``reverb`` (sox's 32-bit
integer samples; the reverb clips each stereo side before the mono downmix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._fft import fast_fft_size
from .freeverb import reverb
from .pitch import pitch_shift

__all__ = [
    "random_crop",
    "invert_polarity",
    "add_noise",
    "gain",
    "lowpass_filter",
    "high_low_pass",
    "delay",
    "pitch_shift",
    "reverb",
]


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected a (batch, channels, time) tensor, got shape {tuple(x.shape)}")


def _per_example(param: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A (batch,) parameter as a (batch, 1, 1) tensor on x's device and dtype."""
    param = torch.as_tensor(param, device=x.device, dtype=x.dtype)
    if param.dim() == 0:
        param = param.expand(x.shape[0])
    if param.shape != (x.shape[0],):
        raise ValueError(f"expected a parameter of shape ({x.shape[0]},), got {tuple(param.shape)}")
    return param.view(-1, 1, 1)


def random_crop(x: torch.Tensor, start: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Crop ``n_samples`` from each example, starting at ``start`` (batch,) samples."""
    _check_batch(x)
    if x.shape[-1] < n_samples:
        raise ValueError(f"cannot crop {n_samples} samples from an input of {x.shape[-1]} samples")
    index = start.to(x.device).long().view(-1, 1, 1) + torch.arange(n_samples, device=x.device)
    return x.gather(-1, index.expand(x.shape[0], x.shape[1], n_samples))


def invert_polarity(x: torch.Tensor) -> torch.Tensor:
    """Flip the sign of the waveform."""
    _check_batch(x)
    return -x


def add_noise(x: torch.Tensor, noise: torch.Tensor, noise_ratio: torch.Tensor) -> torch.Tensor:
    """Add white noise whose standard deviation is ``noise_ratio`` times the example's.

    ``noise`` is standard normal with x's shape; the example's standard deviation is taken
    over all its channels and samples, as in torchaudio-augmentations' ``Noise``.
    """
    _check_batch(x)
    std = x.flatten(1).std(dim=1).view(-1, 1, 1)
    return x + noise * (_per_example(noise_ratio, x) * std)


def gain(x: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each example by ``gain_db`` decibels (amplitude factor 10 ** (dB / 20)), then clip
    to [-1, 1] as torchaudio's ``Vol`` (the original's Gain) does."""
    _check_batch(x)
    return (x * torch.pow(10.0, _per_example(gain_db, x) / 20)).clamp_(-1, 1)


def _fft_convolve_same(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Centred ("same") convolution of x (B, C, T) with odd-length kernels (B, K), replicate-padded."""
    batch, channels, length = x.shape
    half = (kernels.shape[-1] - 1) // 2
    padded = F.pad(x, (half, half), mode="replicate")
    n_fft = fast_fft_size(padded.shape[-1])
    spectrum = torch.fft.rfft(padded, n=n_fft) * torch.fft.rfft(kernels, n=n_fft).unsqueeze(1)
    return torch.fft.irfft(spectrum, n=n_fft)[..., 2 * half : 2 * half + length]


def lowpass_filter(x: torch.Tensor, cutoff: torch.Tensor, zeros: float = 8.0) -> torch.Tensor:
    """Windowed-sinc low-pass, one cut-off per example, identical to ``julius.lowpass_filter``.

    ``cutoff`` (batch,) is in cycles per sample (frequency / sample rate, in (0, 0.5]).
    Each example gets julius' kernel (Hann window of ``zeros`` zero crossings, normalised
    to unit DC gain, replicate padding); kernels are zero-padded to a common length and
    applied together with one FFT convolution.
    """
    _check_batch(x)
    cutoff = cutoff.to(device=x.device, dtype=torch.float64)
    if (cutoff <= 0).any() or (cutoff > 0.5).any():
        raise ValueError(f"cutoff must be in (0, 0.5] cycles per sample, got {cutoff.tolist()}")
    half = torch.floor(zeros / cutoff / 2)  # (B,), julius: int(zeros / cutoff / 2)
    max_half = int(half.max())
    t = torch.arange(-max_half, max_half + 1, device=x.device, dtype=torch.float64)
    half, c = half.unsqueeze(1), cutoff.unsqueeze(1)
    window = torch.where(t.abs() <= half, 0.5 + 0.5 * torch.cos(math.pi * t / half.clamp(min=1)), 0.0)
    kernels = window * torch.sinc(2 * c * t)  # torch.sinc(u) = sin(pi u) / (pi u)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).to(x.dtype)
    return _fft_convolve_same(x, kernels)


def high_low_pass(x: torch.Tensor, sample_rate: int, cutoff_hz: torch.Tensor, highpass: torch.Tensor) -> torch.Tensor:
    """A julius high-pass (x minus its low-pass) where ``highpass`` is True, else a low-pass."""
    low = lowpass_filter(x, cutoff_hz.to(x.device, torch.float64) / sample_rate)
    high = highpass.to(device=x.device, dtype=x.dtype).view(-1, 1, 1)  # 1.0 for a high-pass
    return low.mul_(1 - 2 * high).add_(x * high)  # x - low or low, without a slow boolean select


def delay(x: torch.Tensor, offset: torch.Tensor, volume_factor: float = 0.5) -> torch.Tensor:
    """Echo: ``(x + volume_factor * x delayed by offset samples) / 2``, as torchaudio-augmentations."""
    _check_batch(x)
    length = x.shape[-1]
    offset = offset.to(x.device).long().clamp(0, length)
    longest = int(offset.max()) if len(offset) else 0
    padded = F.pad(x, (longest, 0))  # zeros before the start
    index = torch.arange(length, device=x.device) + (longest - offset).view(-1, 1, 1)
    delayed = padded.gather(-1, index.expand(x.shape))
    return (x + volume_factor * delayed) / 2
