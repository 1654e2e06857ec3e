"""Runs inside the side environment of bench/parity_original.py (torch 2.0.1, torchaudio-augmentations 0.2.4).

    python _parity_worker.py transforms REQUEST.json INPUTS.npz OUTPUTS.npz

Applies the original library's transforms with their parameters pinned (ranges of width zero, or the
attribute the draw reads set by hand), so that its output can be compared with ours for the same
parameters. Imports nothing from clmr: this interpreter has the original's stack, not ours.
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import torch
import torchaudio_augmentations as original


def pinned(case: dict, sample_rate: int, n_samples: int):
    """The original transform for one case, its random draw fixed to the case's parameters."""
    kind, p = case["transform"], case["params"]
    if kind == "polarity":
        return original.PolarityInversion()
    if kind == "noise":
        return original.Noise(min_snr=p["noise_ratio"], max_snr=p["noise_ratio"])
    if kind == "gain":
        return original.Gain(min_gain=p["gain_db"], max_gain=p["gain_db"])
    if kind == "highpass":
        return original.HighPassFilter(sample_rate, p["cutoff_hz"], p["cutoff_hz"])
    if kind == "lowpass":
        return original.LowPassFilter(sample_rate, p["cutoff_hz"], p["cutoff_hz"])
    if kind == "delay":
        return original.Delay(sample_rate, min_delay=p["delay_ms"], max_delay=p["delay_ms"] + 1)
    if kind == "pitch":
        shift = original.PitchShift(n_samples=n_samples, sample_rate=sample_rate)
        shift.pitch_shift_cents_min = shift.pitch_shift_cents_max = p["cents"]
        return shift
    if kind == "reverb":
        r, h, s = p["reverberance"], p["damping"], p["room_size"]
        return original.Reverb(sample_rate, r, r + 1, h, h + 1, s, s + 1)
    raise ValueError(f"unknown transform {kind!r}")


def transforms(request_path: str, inputs_path: str, outputs_path: str) -> None:
    request = json.loads(open(request_path).read())
    inputs = np.load(inputs_path)
    outputs = {}
    for i, case in enumerate(request["cases"]):
        x = torch.from_numpy(inputs[case["input"]].astype(np.float32)).view(1, -1)
        random.seed(i)
        np.random.seed(case.get("seed", i))
        y = pinned(case, request["sample_rate"], x.shape[-1])(x.clone())
        outputs[f"case{i}"] = y.numpy().reshape(-1)
        if case["transform"] == "noise":  # the standard normal draw behind the original's noise, for our side
            np.random.seed(case.get("seed", i))
            outputs[f"noise{i}"] = np.random.standard_normal(x.shape[-1])
    np.savez(outputs_path, **outputs)


MODES = {"transforms": transforms}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
