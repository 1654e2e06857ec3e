"""CLMR's audio augmentation chain: pure batched ops in ``functional``, random modules in ``transforms``.

chain = build_augmentation_chain(22050, 59049, polarity=0.8, noise=0.01, gain=0.3, filters=0.8,
                                 delay=0.3, pitch=0.6, reverb=0.6)   # clmr.stages.augmentation_chain(cfg)
views = chain(crops)                    # (batch, 1, audio_length) -> same shape, each example its own draws
"""

from __future__ import annotations

from torch import nn

from . import functional
from .transforms import (
    LOWPASS_HZ,
    Compose,
    ComposeMany,
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    RandomApply,
    RandomResizedCrop,
    RandomTransform,
    Reverb,
)

__all__ = [
    "build_augmentation_chain",
    "functional",
    "Compose",
    "ComposeMany",
    "Delay",
    "Gain",
    "HighLowPass",
    "Noise",
    "PitchShift",
    "PolarityInversion",
    "RandomApply",
    "RandomResizedCrop",
    "RandomTransform",
    "Reverb",
]


FILTERS_MIN_RATE = 2 * LOWPASS_HZ[1]  # the low-pass cut-off must stay below Nyquist
STEPS = ("polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")  # in the chain's order


def build_augmentation_chain(
    sample_rate: int,
    audio_length: int,
    *,
    polarity: float,
    noise: float,
    gain: float,
    filters: float,
    delay: float,
    pitch: float,
    reverb: float,
    crop: bool = False,
) -> nn.Module:
    """CLMR's augmentation chain, each step applied per example with its probability.

    The chain maps (batch, 1, audio_length) to the same shape ((1, audio_length) works too).
    With ``crop=True`` a RandomResizedCrop(audio_length) comes first, for longer inputs.
    """
    sr, n_samples = sample_rate, audio_length
    if filters > 0 and sr < FILTERS_MIN_RATE:
        raise ValueError(
            f"the filters augmentation (p {filters:g}) cuts off up to {LOWPASS_HZ[1]} Hz and needs a "
            f"sample rate of at least {FILTERS_MIN_RATE} Hz, not {sr}"
        )
    high_low = [HighLowPass(sample_rate=sr)] if sr >= FILTERS_MIN_RATE else []  # else never applied (p = 0)
    steps = [RandomResizedCrop(n_samples)] if crop else []
    steps += [
        RandomApply([PolarityInversion()], p=polarity),
        RandomApply([Noise(min_snr=0.0001, max_snr=0.01)], p=noise),
        RandomApply([Gain()], p=gain),
        RandomApply(high_low, p=filters),
        RandomApply([Delay(sample_rate=sr)], p=delay),
        RandomApply([PitchShift(n_samples=n_samples, sample_rate=sr)], p=pitch),
        RandomApply([Reverb(sample_rate=sr)], p=reverb),
    ]
    return Compose(steps)
