"""Pitch shift as sox's ``pitch`` does it, batched: a WSOLA time stretch, then resampling.

sox's ``pitch CENTS`` (then ``rate``, as the original CLMR calls it) stretches the audio in time
by the pitch ratio r with WSOLA (segments of 82 ms, cross-faded over 12 ms, each placed within a
14.68 ms search window where its start agrees best, in the least-squares sense, with what followed
the previous segment) and resamples it by 1 / r back to the input's length. The same here: the
WSOLA stretch runs for the whole batch at once (one search per segment, each example with its own
r), the resampling (band-limited, by FFT) one example at a time, since each has its own length.
It is not sample-exact to sox (its search and cross-fade details are its own); the measured
distance to sox's output is in docs/AUGMENTATIONS.md.
"""

from __future__ import annotations

import bisect
import functools
import math

import torch
import torch.nn.functional as F

from ._fft import fast_fft_size

__all__ = ["pitch_shift"]

# sox's tempo/pitch defaults, in milliseconds.
SEGMENT_MS = 82.0
SEARCH_MS = 14.68
OVERLAP_MS = 12.0
MAX_SEMITONES = 12.0
# Silence after the signal in the resampling FFT, so that its wrap-around reads zeros (sox's rate
# starts from silence too), in samples of the input.
RESAMPLE_MARGIN = 1024
RATIO_TOLERANCE = 1e-4  # 0.17 cents
SIZE_SLACK = 1.25
RATE_ROLLOFF = 0.05
SEARCH_BACK = 0.5  # the share of the search window before the nominal position (centred)
TIE_BREAK = 1e-6  # among equally good offsets, prefer the one nearest the nominal position


@functools.lru_cache(maxsize=8)
def _smooth_numbers(limit: int) -> tuple[list[int], frozenset[int]]:
    """The numbers up to limit with no prime factor above 11 (pocketfft and cuFFT have fast passes
    for those), sorted and as a set."""
    numbers = [1]
    for p in (2, 3, 5, 7, 11):
        numbers = [m * p**k for m in numbers for k in range(int(math.log(limit, p)) + 1) if m * p**k <= limit]
    numbers.sort()
    return numbers, frozenset(numbers)


@functools.lru_cache(maxsize=4096)
def resampling_sizes(n: int, ratio: float) -> tuple[int, int]:
    """FFT sizes (n_in, n_out) for resampling n samples by 1 / ratio.

    The smallest n_in in [n + margin, (n + margin) * SIZE_SLACK] for which n_in and some n_out with
    n_in / n_out within RATIO_TOLERANCE of ratio are both 11-smooth; failing that (ratios very
    near 1), a 5-smooth n_in and n_out = round(n_in / ratio), whose transform is slower.
    """
    low = n + RESAMPLE_MARGIN
    limit = 1 << math.ceil(2 * SIZE_SLACK * low * max(1.0, 1 / ratio)).bit_length()
    numbers, _ = _smooth_numbers(limit)
    for n_in in numbers[bisect.bisect_left(numbers, low) : bisect.bisect_right(numbers, low * SIZE_SLACK)]:
        target = n_in / ratio
        k = bisect.bisect_left(numbers, target * (1 - RATIO_TOLERANCE))
        if numbers[k] <= target * (1 + RATIO_TOLERANCE):
            return n_in, numbers[k]
    n_in = fast_fft_size(low)
    return n_in, max(1, round(n_in / ratio))


def _resample(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """(rows, time) read ratio times as fast, band-limited by FFT: (rows, about time / ratio).

    The spectrum is cut at the lower of the two Nyquist frequencies with a raised-cosine roll-off
    over its top RATE_ROLLOFF, as sox's ``rate`` (95 % bandwidth) rolls off.
    """
    n = x.shape[-1]
    n_in, n_out = resampling_sizes(n, ratio)
    bins = min(n_in, n_out) // 2 + 1
    spectrum = torch.fft.rfft(x, n=n_in)[..., :bins]
    edge = torch.linspace(0, 1, bins, device=x.device, dtype=torch.float64)
    rolloff = ((edge - (1 - RATE_ROLLOFF)) / RATE_ROLLOFF).clamp(0, 1)
    spectrum = spectrum * (0.5 + 0.5 * torch.cos(math.pi * rolloff)).to(x.dtype)
    return torch.fft.irfft(spectrum, n=n_out)[..., : round(n * n_out / n_in)] * (n_out / n_in)


def _wsola(u: torch.Tensor, stretch: torch.Tensor, n_out: int, segment: int, search: int, overlap: int) -> torch.Tensor:
    """Stretch each row of u (rows, time) in time by its factor stretch (rows,), to n_out samples (the
    longest; each row's own length is about time * stretch), by WSOLA."""
    rows = u.shape[0]
    device, dtype = u.device, u.dtype
    hop = segment - overlap
    n_segments = max(1, math.ceil((n_out - overlap) / hop))
    rate = 1 / stretch.to(device=device, dtype=torch.float64)  # input samples per output sample, (rows,)
    # Zeros before and after, so that every candidate window can be read.
    before = search
    after = segment + 2 * search + hop * n_segments
    padded = F.pad(u, (before, max(0, after + before - u.shape[-1] + n_out)))
    energy = F.pad(torch.cumsum(padded.double() ** 2, dim=-1), (1, 0))  # prefix sums, exact enough in float64
    back = round(SEARCH_BACK * search)
    offsets = torch.arange(-back, search - back + 1, device=device)
    window = torch.arange(overlap, device=device)
    # What depends only on the nominal positions: every segment's candidate region and energies.
    nominal = torch.round(torch.arange(n_segments, device=device) * hop * rate.unsqueeze(1)).long()  # (rows, J)
    first = before + nominal - back  # candidates of segment j start at first .. first + search
    span = torch.arange(search + overlap, device=device)
    regions = padded.gather(1, (first.unsqueeze(-1) + span).flatten(1)).view(rows, n_segments, -1)
    candidate = first.unsqueeze(-1) + offsets + back  # (rows, J, candidates)
    candidate_energy = energy.gather(1, (candidate + overlap).flatten(1)) - energy.gather(1, candidate.flatten(1))
    candidate_energy = candidate_energy.view(rows, n_segments, -1)
    bias = TIE_BREAK * offsets.abs() * (candidate_energy.mean(dim=-1, keepdim=True) + 1e-12)
    candidate_energy = (candidate_energy + bias).to(dtype)
    starts = nominal.clone()
    for j in range(1, n_segments):
        # The overlap that follows the previous segment in the input is what the new one should match.
        follow = before + hop + starts[:, j - 1 : j] + window  # (rows, overlap)
        reference = padded.gather(1, follow)
        correlation = F.conv1d(regions[:, j].unsqueeze(0), reference.unsqueeze(1), groups=rows).squeeze(0)
        best = torch.argmin(candidate_energy[:, j] - 2 * correlation, dim=1)
        starts[:, j] = nominal[:, j] + offsets[best]

    # Overlap-add the chosen segments with linear cross-fades, normalised by the sum of the fades.
    ramp = (torch.arange(overlap, device=device, dtype=dtype) + 0.5) / overlap
    fade = torch.cat([ramp, torch.ones(segment - 2 * overlap, device=device, dtype=dtype), ramp.flip(0)])
    index = before + starts.unsqueeze(-1) + torch.arange(segment, device=device)  # (rows, J, segment)
    pieces = padded.gather(1, index.flatten(1)).view(rows, n_segments, segment) * fade
    total = (n_segments - 1) * hop + segment
    out = F.fold(pieces.transpose(1, 2), (1, total), (1, segment), stride=(1, hop)).view(rows, total)
    envelope = F.fold(
        fade.view(1, segment, 1).expand(1, segment, n_segments), (1, total), (1, segment), stride=(1, hop)
    ).view(1, total)
    # The first segment has no predecessor: its fade-in divides out against the envelope.
    return (out / envelope.clamp(min=1e-6))[:, :n_out]


def pitch_shift(
    x: torch.Tensor,
    n_steps: torch.Tensor,
    sample_rate: int,
    segment_ms: float = SEGMENT_MS,
    search_ms: float = SEARCH_MS,
    overlap_ms: float = OVERLAP_MS,
) -> torch.Tensor:
    """Shift each example by ``n_steps`` (batch,) semitones, fractions allowed; tempo and length kept.

    As through sox, the input is clipped to [-1, 1] on its way in and the output on its way out;
    0 semitones returns the (clipped) input exactly. Each example is stretched in time by
    r = 2 ** (n_steps / 12) with WSOLA (sox's segment, search and overlap lengths), then resampled
    by 1 / r back to its length (FFT, band-limited as sox's ``rate``).
    """
    if x.dim() != 3:
        raise ValueError(f"expected a (batch, channels, time) tensor, got shape {tuple(x.shape)}")
    batch, channels, length = x.shape
    steps = torch.as_tensor(n_steps, dtype=torch.float64).to(x.device).expand(batch)
    if (steps.abs() > MAX_SEMITONES + 1e-9).any():
        raise ValueError(f"pitch shifts must lie within +-{MAX_SEMITONES:g} semitones; got {steps.tolist()}")
    clipped = x.clamp(-1, 1)
    ratios = torch.pow(2.0, steps.cpu() / 12).repeat_interleave(channels).tolist()  # per row
    rows = clipped.reshape(batch * channels, length)
    shifted = [i for i, r in enumerate(ratios) if r != 1]
    if not shifted:
        return clipped
    segment, search, overlap = (max(1, round(ms * sample_rate / 1000)) for ms in (segment_ms, search_ms, overlap_ms))
    # As sox: stretch in time by the ratio first, then resample back to the input's length.
    stretch = torch.tensor([ratios[i] for i in shifted], dtype=torch.float64)
    lengths = [round(length * ratios[i]) for i in shifted]
    stretched = _wsola(rows[shifted], stretch, max(lengths), segment, search, overlap)
    out = rows.clone()
    for k, (i, n) in enumerate(zip(shifted, lengths)):
        resampled = _resample(stretched[k : k + 1, :n], ratios[i])[0, :length]
        out[i, : len(resampled)] = resampled.clamp(-1, 1).to(x.dtype)
        out[i, len(resampled) :] = 0
    return out.view(batch, channels, length)
