"""Random audio augmentations as small modules, after torchaudio-augmentations 0.2.4.

Each module draws its random parameters, one set per example, with the torch RNG on the
input's device (so DataLoader workers, which PyTorch seeds differently, draw differently),
then calls the pure function in :mod:`clmr.augmentations.functional`. Inputs are
``(batch, channels, time)``, or ``(channels, time)`` treated as a batch of one. The same
module therefore serves as the per-example chain in DataLoader workers and as the batched
chain on the training device.

Parameters and defaults follow torchaudio-augmentations 0.2.4 as CLMR uses it, and so does the
clipping to [-1, 1]: after Gain (torchaudio's ``Vol`` clamps), and where sox clips in PitchShift
and Reverb. For tests and logging, every random module keeps the parameters of its last call in
``last_params`` (per-example tensors), and :class:`RandomApply` keeps its mask in ``last_mask``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import functional as F

__all__ = [
    "RandomTransform",
    "RandomResizedCrop",
    "PolarityInversion",
    "Noise",
    "Gain",
    "HighLowPass",
    "Delay",
    "PitchShift",
    "Reverb",
    "RandomApply",
    "Compose",
    "ComposeMany",
]

Params = dict[str, torch.Tensor]


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        return x.unsqueeze(0)
    if x.dim() == 3:
        return x
    raise ValueError(f"expected (channels, time) or (batch, channels, time) audio, got shape {tuple(x.shape)}")


def _like_input(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return y.squeeze(0) if x.dim() == 2 else y


def _uniform(low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=device)


class RandomTransform(nn.Module):
    """Base class: ``sample_params`` draws per-example parameters, ``apply_params`` is deterministic.

    (Not ``apply``: that is nn.Module.apply, which walks the submodules.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_params: Params = {}

    def sample_params(self, x: torch.Tensor) -> Params:
        """Random parameters for the (batch, channels, time) input x."""
        return {}

    def apply_params(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = _as_batch(x)
        params = self.sample_params(batch)
        # Keep the per-example parameters, not the noise signals.
        self.last_params = {k: v for k, v in params.items() if v.dim() <= 1}
        return _like_input(self.apply_params(batch, params), x)


class RandomResizedCrop(RandomTransform):
    """A random window of ``n_samples`` samples, its start drawn independently per example."""

    def __init__(self, n_samples: int):
        super().__init__()
        self.n_samples = n_samples

    def sample_params(self, x):
        length = x.shape[-1]
        if length < self.n_samples:
            raise ValueError(f"cannot crop {self.n_samples} samples from audio of {length} samples")
        start = torch.randint(0, length - self.n_samples + 1, (x.shape[0],), device=x.device)
        return {"start": start}

    def apply_params(self, x, params):
        return F.random_crop(x, params["start"], self.n_samples)

    def extra_repr(self):
        return f"n_samples={self.n_samples}"


class PolarityInversion(RandomTransform):
    """Flip the sign of the waveform (deterministic; wrap in RandomApply)."""

    def apply_params(self, x, params):
        return F.invert_polarity(x)


class Noise(RandomTransform):
    """White noise with standard deviation U(min_snr, max_snr) times the example's.

    The names follow torchaudio-augmentations: "snr" is the noise-to-signal ratio of
    standard deviations.
    """

    def __init__(self, min_snr: float = 0.0001, max_snr: float = 0.01):
        super().__init__()
        if not 0 <= min_snr <= max_snr:
            raise ValueError(f"expected 0 <= min_snr <= max_snr, got {min_snr}, {max_snr}")
        self.min_snr, self.max_snr = min_snr, max_snr

    def sample_params(self, x):
        ratio = _uniform(self.min_snr, self.max_snr, x.shape[0], x.device)
        return {"noise_ratio": ratio, "noise": torch.randn_like(x)}

    def apply_params(self, x, params):
        return F.add_noise(x, params["noise"], params["noise_ratio"])

    def extra_repr(self):
        return f"min_snr={self.min_snr}, max_snr={self.max_snr}"


class Gain(RandomTransform):
    """Gain of U(min_gain, max_gain) dB, then clipped to [-1, 1] as torchaudio's ``Vol`` (the
    original's Gain) clips."""

    def __init__(self, min_gain: float = -20.0, max_gain: float = -1.0):
        super().__init__()
        if min_gain > max_gain:
            raise ValueError(f"expected min_gain <= max_gain, got {min_gain}, {max_gain}")
        self.min_gain, self.max_gain = min_gain, max_gain

    def sample_params(self, x):
        return {"gain_db": _uniform(self.min_gain, self.max_gain, x.shape[0], x.device)}

    def apply_params(self, x, params):
        return F.gain(x, params["gain_db"])

    def extra_repr(self):
        return f"min_gain={self.min_gain}, max_gain={self.max_gain}"


LOWPASS_HZ = (2200, 4000)  # HighLowPass's cut-off ranges (torchaudio-augmentations' defaults)
HIGHPASS_HZ = (200, 1200)


class HighLowPass(RandomTransform):
    """Either a high-pass (cut-off U(200, 1200) Hz) or a low-pass (U(2200, 4000) Hz), 50/50.

    The filters are julius' windowed-sinc filters, as in torchaudio-augmentations.
    """

    def __init__(
        self,
        sample_rate: int,
        lowpass_freq_low: float = LOWPASS_HZ[0],
        lowpass_freq_high: float = LOWPASS_HZ[1],
        highpass_freq_low: float = HIGHPASS_HZ[0],
        highpass_freq_high: float = HIGHPASS_HZ[1],
    ):
        super().__init__()
        nyquist = sample_rate / 2
        for low, high in ((lowpass_freq_low, lowpass_freq_high), (highpass_freq_low, highpass_freq_high)):
            if not 0 < low <= high <= nyquist:
                raise ValueError(f"expected 0 < {low} <= {high} <= Nyquist ({nyquist} Hz)")
        self.sample_rate = sample_rate
        self.lowpass_range = (lowpass_freq_low, lowpass_freq_high)
        self.highpass_range = (highpass_freq_low, highpass_freq_high)

    def sample_params(self, x):
        n = x.shape[0]
        highpass = torch.rand(n, device=x.device) < 0.5
        cutoff = torch.where(
            highpass,
            _uniform(*self.highpass_range, n, x.device),
            _uniform(*self.lowpass_range, n, x.device),
        )
        return {"highpass": highpass, "cutoff_hz": cutoff}

    def apply_params(self, x, params):
        return F.high_low_pass(x, self.sample_rate, params["cutoff_hz"], params["highpass"])

    def extra_repr(self):
        return f"sample_rate={self.sample_rate}, lowpass={self.lowpass_range}, highpass={self.highpass_range}"


class Delay(RandomTransform):
    """Echo after a delay drawn from range(min_delay, max_delay, delay_interval) ms (200..450).

    Output = (x + volume_factor * delayed x) / 2, as in torchaudio-augmentations.
    """

    def __init__(
        self,
        sample_rate: int,
        volume_factor: float = 0.5,
        min_delay: int = 200,
        max_delay: int = 500,
        delay_interval: int = 50,
    ):
        super().__init__()
        choices = torch.arange(min_delay, max_delay, delay_interval)
        if len(choices) == 0:
            raise ValueError(f"no delay in range({min_delay}, {max_delay}, {delay_interval}) ms")
        self.sample_rate = sample_rate
        self.volume_factor = volume_factor
        self.register_buffer("delays_ms", choices, persistent=False)

    def sample_params(self, x):
        choice = torch.randint(0, len(self.delays_ms), (x.shape[0],), device=x.device)
        delay_ms = self.delays_ms.to(x.device)[choice]
        # int(ms * sample_rate / 1000) in double precision, as in the original
        offset = torch.floor(delay_ms.double() * (self.sample_rate / 1000)).long()
        return {"delay_ms": delay_ms, "offset": offset}

    def apply_params(self, x, params):
        return F.delay(x, params["offset"], self.volume_factor)

    def extra_repr(self):
        return (
            f"sample_rate={self.sample_rate}, volume_factor={self.volume_factor}, delays_ms={self.delays_ms.tolist()}"
        )


class PitchShift(RandomTransform):
    """Pitch shift by a whole number of cents in [pitch_shift_min, pitch_shift_max] semitones.

    Tempo and length are kept, input and output clipped to [-1, 1]: sox's ``pitch`` then ``rate``
    in the original, a batched WSOLA stretch and resampling after it here (see
    :mod:`clmr.augmentations.pitch`). ``n_samples`` is kept for torchaudio-augmentations'
    signature; the output always has the input's length.
    """

    def __init__(
        self,
        n_samples: int | None,
        sample_rate: int,
        pitch_shift_min: float = -7.0,
        pitch_shift_max: float = 7.0,
    ):
        super().__init__()
        if pitch_shift_min > pitch_shift_max:
            raise ValueError(f"expected pitch_shift_min <= pitch_shift_max, got {pitch_shift_min}, {pitch_shift_max}")
        self.n_samples = n_samples
        self.sample_rate = sample_rate
        self.cents_range = (int(pitch_shift_min * 100), int(pitch_shift_max * 100))

    def sample_params(self, x):
        low, high = self.cents_range
        cents = torch.randint(low, high + 1, (x.shape[0],), device=x.device)
        return {"cents": cents}

    def apply_params(self, x, params):
        return F.pitch_shift(x, params["cents"] / 100, self.sample_rate)

    def extra_repr(self):
        return f"sample_rate={self.sample_rate}, cents={self.cents_range}"


class Reverb(RandomTransform):
    """sox's reverb with reverberance, HF damping and room size drawn from [min, max) percent.

    Integer percentages, drawn as the original draws them (``torch.randint(min, max)``), applied
    as the original applies them (``reverb R H S`` then ``channels 1``, clipped; the same output
    as the sox binary, see :mod:`clmr.augmentations.freeverb`). The original's
    ``dumping_factor_*`` arguments are spelt ``damping_factor_*`` here.
    """

    def __init__(
        self,
        sample_rate: int,
        reverberance_min: int = 0,
        reverberance_max: int = 100,
        damping_factor_min: int = 0,
        damping_factor_max: int = 100,
        room_size_min: int = 0,
        room_size_max: int = 100,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.ranges = {
            "reverberance": (reverberance_min, reverberance_max),
            "damping": (damping_factor_min, damping_factor_max),
            "room_size": (room_size_min, room_size_max),
        }
        for name, (low, high) in self.ranges.items():
            if not 0 <= low < high <= 100:
                raise ValueError(f"expected 0 <= {name}_min < {name}_max <= 100, got {low}, {high}")

    def sample_params(self, x):
        n = x.shape[0]
        return {
            name: torch.randint(low, high, (n,), device=x.device).to(x.dtype)
            for name, (low, high) in self.ranges.items()
        }

    def apply_params(self, x, params):
        return F.reverb(x, self.sample_rate, params["reverberance"], params["damping"], params["room_size"])

    def extra_repr(self):
        return f"sample_rate={self.sample_rate}, " + ", ".join(f"{k}={v}" for k, v in self.ranges.items())


class RandomApply(nn.Module):
    """Apply ``transforms`` in sequence to each example with probability ``p``, independently.

    The mask of the last call is kept in ``last_mask``. Only the selected examples are
    computed; the others are passed through unchanged.
    """

    def __init__(self, transforms: Sequence[nn.Module], p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"expected a probability in [0, 1], got p={p}")
        self.transforms = nn.ModuleList(transforms)
        self.p = p
        self.last_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = _as_batch(x)
        mask = torch.rand(batch.shape[0], device=batch.device) < self.p
        self.last_mask = mask
        selected = mask.nonzero().squeeze(1)
        if len(selected) == 0:
            return x
        out = batch if len(selected) == len(mask) else batch[selected]
        for transform in self.transforms:
            out = transform(out)
        if len(selected) < len(mask):
            out = batch.index_copy(0, selected, out)
        return _like_input(out, x)

    def extra_repr(self):
        return f"p={self.p}"


class Compose(nn.Module):
    """Apply ``transforms`` one after the other."""

    def __init__(self, transforms: Sequence[nn.Module]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x


class ComposeMany(Compose):
    """``num_augmented_samples`` independently augmented views of each input.

    (channels, time) -> (views, channels, time'); (batch, channels, time) ->
    (batch, views, channels, time'). All views of all examples go through the chain
    as one batch, so a crop at the head of ``transforms`` cuts each view separately.
    """

    def __init__(self, transforms: Sequence[nn.Module], num_augmented_samples: int):
        super().__init__(transforms)
        if num_augmented_samples < 1:
            raise ValueError(f"expected num_augmented_samples >= 1, got {num_augmented_samples}")
        self.num_augmented_samples = num_augmented_samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = _as_batch(x)
        views = super().forward(batch.repeat_interleave(self.num_augmented_samples, dim=0))
        views = views.view(batch.shape[0], self.num_augmented_samples, *views.shape[1:])
        return _like_input(views, x)

    def extra_repr(self):
        return f"num_augmented_samples={self.num_augmented_samples}"
