"""CLMR's audio augmentation chain: pure batched ops in ``functional``, random modules in ``transforms``.

    chain = build_augmentation_chain(cfg)   # cfg: the argparse.Namespace of the YAML config
    views = chain(crops)                    # (batch, 1, audio_length) -> same shape, each example its own draws
"""

from __future__ import annotations

from argparse import Namespace

from torch import nn

from clmr.config import ConfigError

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


def build_augmentation_chain(cfg: Namespace, crop: bool = False) -> nn.Module:
    """CLMR's augmentation chain, each step applied per example with its configured probability.

    ``cfg`` needs ``transforms_polarity``, ``transforms_noise``, ``transforms_gain``,
    ``transforms_filters``, ``transforms_delay``, ``transforms_pitch``,
    ``transforms_reverb`` (probabilities), ``sample_rate`` and ``audio_length``. The
    chain maps (batch, 1, audio_length) to the same shape ((1, audio_length) works too).
    With ``crop=True`` a RandomResizedCrop(audio_length) comes first, for longer inputs.
    """
    sr, n_samples = cfg.sample_rate, cfg.audio_length
    filters_min_rate = 2 * LOWPASS_HZ[1]  # the low-pass cut-off must stay below Nyquist
    if cfg.transforms_filters > 0 and sr < filters_min_rate:
        raise ConfigError(f"--sample_rate {sr}: the filters augmentation (--transforms_filters "
                          f"{cfg.transforms_filters:g}) cuts off up to {LOWPASS_HZ[1]} Hz and needs at least "
                          f"{filters_min_rate} Hz; pass --transforms_filters 0 to pre-train at {sr} Hz")
    filters = [HighLowPass(sample_rate=sr)] if sr >= filters_min_rate else []  # else never applied (p = 0)
    steps = [RandomResizedCrop(n_samples)] if crop else []
    steps += [
        RandomApply([PolarityInversion()], p=cfg.transforms_polarity),
        RandomApply([Noise(min_snr=0.0001, max_snr=0.01)], p=cfg.transforms_noise),
        RandomApply([Gain()], p=cfg.transforms_gain),
        RandomApply(filters, p=cfg.transforms_filters),
        RandomApply([Delay(sample_rate=sr)], p=cfg.transforms_delay),
        RandomApply([PitchShift(n_samples=n_samples, sample_rate=sr)], p=cfg.transforms_pitch),
        RandomApply([Reverb(sample_rate=sr)], p=cfg.transforms_reverb),
    ]
    return Compose(steps)
