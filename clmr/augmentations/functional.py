"""Pure, batched audio augmentations.

Every function takes a ``(batch, channels, time)`` tensor and per-example parameter
tensors of shape ``(batch,)`` and returns a new tensor. There is no randomness and no
state here: the random draws live in :mod:`clmr.augmentations.transforms`, which calls
these functions. Because everything is tensor arithmetic on the input's device, the
same code runs per example in a DataLoader worker (batch of one) and per batch on a GPU.
Random signals an operation needs (white noise, the reverb's noise tail) are arguments.
"""

import functools
import math

import torch
import torch.nn.functional as F

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


def _per_example(param, x: torch.Tensor) -> torch.Tensor:
    """A (batch,) parameter as a (batch, 1, 1) tensor on x's device and dtype."""
    param = torch.as_tensor(param, device=x.device, dtype=x.dtype)
    if param.dim() == 0:
        param = param.expand(x.shape[0])
    if param.shape != (x.shape[0],):
        raise ValueError(f"expected a parameter of shape ({x.shape[0]},), got {tuple(param.shape)}")
    return param.view(-1, 1, 1)


def _fast_fft_size(n: int) -> int:
    """Smallest m >= n whose only prime factors are 2, 3 and 5 (fast for every FFT backend)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


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
    """Scale each example by ``gain_db`` decibels (amplitude factor 10 ** (dB / 20))."""
    _check_batch(x)
    return x * torch.pow(10.0, _per_example(gain_db, x) / 20)


def _fft_convolve_same(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Centred ("same") convolution of x (B, C, T) with odd-length kernels (B, K), replicate-padded."""
    batch, channels, length = x.shape
    half = (kernels.shape[-1] - 1) // 2
    padded = F.pad(x, (half, half), mode="replicate")
    n_fft = _fast_fft_size(padded.shape[-1])
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


def high_low_pass(
    x: torch.Tensor, sample_rate: int, cutoff_hz: torch.Tensor, highpass: torch.Tensor
) -> torch.Tensor:
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


def pitch_shift(
    x: torch.Tensor, n_steps: torch.Tensor, n_fft: int = 1024, hop_length: int = 256
) -> torch.Tensor:
    """Shift each example by ``n_steps`` (batch,) semitones, fractions allowed; tempo and length kept.

    A batched phase vocoder doing time-stretch and resampling in one pass, with its own
    ratio r = 2 ** (n_steps / 12) per example (no grouping, no quantisation):

    1. STFT with a Hann window of ``n_fft * min(1, r)`` samples inside ``n_fft``-sample
       frames every ``hop_length`` samples (reflect-padded at the ends); each bin's true
       frequency comes from its phase advance between frames.
    2. Time-stretch by r: a bin's output phase advances by r times its frequency per hop,
       with identity phase locking (each bin keeps its phase offset from the loudest bin
       within two bins), so that the bins of one partial stay coherent.
    3. Resample by 1/r in the frequency domain: output bin k reads the stretched
       spectrum at bin k / r (magnitude interpolated linearly, phase of the nearest bin;
       nothing above Nyquist, which is the anti-aliasing filter). The frame then carries
       the analysis window compressed by r; it is windowed again and overlap-added, and
       the sum is divided by the exact (per-example, hop-periodic) window envelope.

    The output RMS of a steady tone is within about 0.3 dB of the input's. On CPU the
    rows are processed a few at a time, which keeps the working set in cache.
    """
    _check_batch(x)
    if n_fft % (2 * hop_length):
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of 2 * hop_length ({2 * hop_length})")
    batch, channels, length = x.shape
    ratio = torch.pow(2.0, _per_example(n_steps, x).view(-1) / 12).repeat_interleave(channels)
    # Beyond n_fft / (2 hop) the compressed synthesis windows stop overlapping (+-12 semitones at hop n_fft / 4).
    limit = n_fft / (2 * hop_length)
    if (ratio > limit * (1 + 1e-6)).any() or (ratio < (1 - 1e-6) / limit).any():
        raise ValueError(f"pitch shifts must lie within +-{12 * math.log2(limit):g} semitones for "
                         f"n_fft={n_fft}, hop_length={hop_length}; got {n_steps}")
    rows = x.reshape(batch * channels, length)
    chunk = 4 if x.device.type == "cpu" else len(rows)
    out = [
        _phase_vocoder_shift(rows[i : i + chunk], ratio[i : i + chunk], n_fft, hop_length)
        for i in range(0, len(rows), chunk)
    ]
    return torch.cat(out).view(batch, channels, length)


def _phase_vocoder_shift(signal: torch.Tensor, ratio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """pitch_shift on (rows, time) with a ratio per row."""
    rows, length = signal.shape
    device, dtype = signal.device, signal.dtype
    n_bins = n_fft // 2 + 1
    bins = torch.arange(n_bins, device=device)
    r = ratio.view(-1, 1, 1)

    # Frames centred at multiples of hop, plus margin frames so that each output sample
    # gets all the frames that overlap it.
    margin = n_fft // (2 * hop)
    n_frames = math.ceil((length - 1) / hop) + 2 * margin + 1
    pad_left = margin * hop + n_fft // 2
    pad_right = (n_frames - 1) * hop + n_fft - pad_left - length
    mode = "reflect" if max(pad_left, pad_right) < length else "constant"
    padded = F.pad(signal.unsqueeze(1), (pad_left, pad_right), mode=mode).squeeze(1)
    width = n_fft * ratio.clamp(max=1).view(-1, 1)  # analysis window length per row
    centred = torch.arange(n_fft, device=device, dtype=dtype) - n_fft // 2
    window = torch.where(centred.abs() < width / 2, 0.5 + 0.5 * torch.cos(2 * math.pi * centred / width), 0.0)
    spectrum = torch.fft.rfft(padded.unfold(-1, n_fft, hop) * window.unsqueeze(1))
    real, imag = spectrum.real.contiguous(), spectrum.imag.contiguous()
    magnitude = torch.hypot(real, imag)
    # Phases with the frame start as time origin; with the window centre as origin
    # ("zero-phase", where the bins of one partial share a phase) they would be + pi * k.
    phase = torch.atan2(imag, real)

    # Phase advance per hop, unwrapped around the bin centre, stretched by r; accumulated.
    expected = bins.to(dtype) * (hop / n_fft)  # bin centre advance per hop, in turns
    steps = torch.empty_like(phase)
    steps[:, :1] = phase[:, :1]
    advance = torch.diff(phase, dim=1)
    turns = torch.round(advance / (2 * math.pi) - expected)
    steps[:, 1:] = advance.sub_(turns, alpha=2 * math.pi).mul_(r)
    offset = steps.cumsum_(dim=1).sub_(phase)  # output phase minus input phase
    # Identity phase locking: take the offset of the loudest bin within +-2 bins.
    padded_magnitude = F.pad(magnitude, (2, 2), value=-1.0)
    padded_offset = F.pad(offset, (2, 2))
    loudest = magnitude
    for d in (-2, -1, 1, 2):
        neighbour = padded_magnitude[..., 2 + d : 2 + d + n_bins]
        louder = (neighbour - loudest).clamp_(min=0).sign_()  # 1.0 where strictly louder (no bool masks: slow on CPU)
        offset = torch.lerp(offset, padded_offset[..., 2 + d : 2 + d + n_bins], louder)
        loudest = torch.maximum(loudest, neighbour)
    locked = phase.add_(offset)

    # Resample by 1/r: output bin k takes the stretched spectrum at bin k / r.
    position = bins.to(dtype) / ratio.unsqueeze(1)  # (rows, bins)
    lower = position.floor().long().clamp(max=n_bins - 1)
    upper = (lower + 1).clamp(max=n_bins - 1)
    fraction = position - lower
    nearest = torch.where(fraction < 0.5, lower, upper)
    take = lambda values, index: values.gather(-1, index.unsqueeze(1).expand(-1, n_frames, -1))
    # Zero-phase input bin `nearest`, back to frame-centred output bin k: pi * (nearest + k).
    parity = math.pi * ((nearest + bins) % 2).to(dtype).unsqueeze(1)
    new_phase = take(locked, nearest).add_(parity)
    new_magnitude = torch.lerp(take(magnitude, lower), take(magnitude, upper), fraction.unsqueeze(1))
    new_magnitude.mul_(((position <= n_bins - 1) / ratio.unsqueeze(1)).unsqueeze(1))
    resampled = torch.complex(new_magnitude * torch.cos(new_phase), new_magnitude.mul_(torch.sin_(new_phase)))

    # The resampled frame carries the analysis window compressed by r: window it with that
    # again and overlap-add. Linear interpolation in frequency tapers the frame by up to
    # sinc^2 (not at all on an integer bin grid); the envelope uses |sinc|, the middle.
    stretched_time = centred * ratio.view(-1, 1)
    synthesis = torch.where(
        stretched_time.abs() < width / 2, 0.5 + 0.5 * torch.cos(2 * math.pi * stretched_time / width), 0.0
    )
    out_frames = torch.fft.irfft(resampled, n=n_fft).mul_(synthesis.unsqueeze(1))
    # Overlap-add: n_fft is a whole number of hops, so add each quarter (etc.) of every frame in place.
    per_frame = n_fft // hop
    out_frames = out_frames.view(rows, n_frames, per_frame, hop)
    out = out_frames.new_zeros(rows, n_frames + per_frame - 1, hop)
    for j in range(per_frame):
        out[:, j : j + n_frames] += out_frames[:, :, j]
    out = out.view(rows, -1)
    start = n_fft // 2 + margin * hop
    out = out[:, start : start + length]
    # Frames sit at multiples of hop and cover every output sample: the envelope has period hop.
    taper = torch.sinc(stretched_time / n_fft).abs()
    envelope = (synthesis * synthesis * taper).view(rows, n_fft // hop, hop).sum(dim=1)
    return out / envelope.repeat(1, math.ceil(length / hop))[:, :length]


# sox's reverb (freeverb): comb and all-pass delay lengths in samples at 44.1 kHz, wet gain.
_COMB_LENGTHS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
_ALLPASS_LENGTHS = (225, 341, 441, 556)
_WET_GAIN = 0.015


def reverb(
    x: torch.Tensor,
    sample_rate: int,
    reverberance: torch.Tensor,
    damping: torch.Tensor,
    room_size: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Reverb after sox's ``reverb`` (freeverb): x plus x convolved with a synthetic tail.

    ``reverberance``, ``damping`` and ``room_size`` are sox's percentages in [0, 100], one
    per example, mapped as sox maps them: comb feedback g in [0.3, 0.98], the comb loop's
    one-pole low-pass coefficient d in [0.2, 0.5] (HF damping), and the comb delays
    (25 to 37 ms) scaled by 0.1 to 1. sox runs 8 parallel damped combs into 4 all-pass
    filters, sample by sample; here the combs are replaced by their statistics:
    ``noise`` (batch, time), standard normal, starts at the shortest comb delay and
    decays in two bands, as the combs decay at DC (g per mean comb delay) and at Nyquist
    (g (1 - d) / (1 + d) per mean comb delay), mixed per frequency so that the tail's
    power spectrum is the comb bank's, 8 * 0.015^2 / (1 - g^2 |low-pass|^2) / 2 (two
    decorrelated stereo sides averaged, as sox then mixes to mono). The all-pass chain,
    which does not depend on the parameters, is applied exactly. Decay times come out
    within about 25 % of sox's, wet energy within about 2 dB (see the tests).

    Output = dry + wet, same length as x; one circular FFT convolution of about the
    input's length, with exponential weighting keeping its wrap-around below -60 dB.
    """
    _check_batch(x)
    batch, channels, length = x.shape
    device = x.device
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    as_column = lambda p: torch.as_tensor(p, device=device, dtype=work).expand(batch).reshape(batch, 1)
    a = -1 / math.log(1 - 0.3)
    b = 100 / (math.log(1 - 0.98) * a + 1)
    feedback = 1 - torch.exp((as_column(reverberance) - b) / (a * b))
    d = as_column(damping) / 100 * 0.3 + 0.2
    rate = sample_rate / 44100
    scale = (as_column(room_size) / 100 * 0.9 + 0.1) * rate
    onset = torch.round(scale * min(_COMB_LENGTHS))
    # Comb loop gain at DC and at Nyquist, and the log-amplitude decay per sample it gives.
    loop_gain = torch.cat([feedback, feedback * (1 - d) / (1 + d)], dim=1)  # (B, 2)
    decay = loop_gain.log() / (scale * (sum(_COMB_LENGTHS) / len(_COMB_LENGTHS)))
    bank_power = len(_COMB_LENGTHS) * _WET_GAIN**2 / 2
    band_power = bank_power / (1 - loop_gain**2)  # the comb bank's power spectrum at DC, at Nyquist
    level = torch.sqrt(band_power * (1 - torch.exp(2 * decay)))  # noise level giving that power

    # The band mix below is a zero-phase filter (a few samples either side of 0): the margin
    # keeps what it wraps around out of the kept samples.
    n_fft = _fast_fft_size(length + 64)
    weight = math.log(1e3) / n_fft  # exp(-weight * n) on both signals: wrap-around at -60 dB
    # Envelope level * exp(decay * (n - onset) - weight * n) from the onset on, as an outer
    # product exp(rate * block start) * exp(rate * within block): one multiply, few exponentials.
    slope = (decay - weight).unsqueeze(-1)  # (B, 2, 1)
    block = 256
    within = torch.arange(block, device=device, dtype=work)
    starts = torch.arange(-(-length // block), device=device, dtype=work) * block
    envelope = (torch.exp(slope * starts) * (level * torch.exp(-decay * onset)).unsqueeze(-1)).unsqueeze(-1)
    envelope = (envelope * torch.exp(slope * within).unsqueeze(-2)).flatten(-2)[..., :length]  # (B, 2, length)
    n = torch.arange(length, device=device, dtype=work)
    started = (n - onset + 0.5).clamp_(min=0).sign_()  # 1 from the onset on (no bool masks: slow on CPU)
    tail = torch.fft.rfft((noise.to(work) * started).unsqueeze(1) * envelope, n=n_fft)

    # Mix the bands so that the power at each frequency is the comb bank's.
    omega = torch.arange(tail.shape[-1], device=device, dtype=work) * (2 * math.pi / n_fft)
    lowpass_power = (1 - d) ** 2 / (1 - 2 * d * torch.cos(omega) + d**2)  # (B, n_bins)
    power = bank_power / (1 - feedback**2 * lowpass_power)
    slow = ((power - band_power[:, 1:]) / (band_power[:, :1] - band_power[:, 1:]).clamp(min=1e-12)).clamp_(0, 1)
    response = slow.sqrt() * tail[:, 0] + (1 - slow).sqrt() * tail[:, 1]
    weighting, allpass = _reverb_constants(sample_rate, length, n_fft, weight, device, work)
    response = response * allpass

    dry = x.to(work)
    wet = torch.fft.irfft(torch.fft.rfft(dry * weighting, n=n_fft) * response.unsqueeze(1), n=n_fft)
    return (dry + wet[..., :length] / weighting).to(x.dtype)


@functools.lru_cache(maxsize=8)
def _reverb_constants(sample_rate: int, length: int, n_fft: int, weight: float, device, dtype):
    """The weighting exp(-weight n) and sox's all-pass chain at the weighted z (no parameters in either)."""
    weighting = torch.exp(-weight * torch.arange(length, device=device, dtype=dtype))
    omega = torch.arange(n_fft // 2 + 1, device=device, dtype=dtype) * (2 * math.pi / n_fft)
    response = torch.ones_like(omega, dtype=torch.complex128 if dtype == torch.float64 else torch.complex64)
    for length_44k in _ALLPASS_LENGTHS:  # (1.5 z^-N - 1) / (1 - 0.5 z^-N)
        delay_n = int(sample_rate / 44100 * length_44k + 0.5)
        z = torch.polar(torch.full_like(omega, math.exp(-weight * delay_n)), -omega * delay_n)
        response = response * ((1.5 * z - 1) / (1 - 0.5 * z))
    return weighting, response
