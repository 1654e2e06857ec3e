"""Runs inside the side environment of bench/parity_original.py (torch 2.0.1, torchaudio-augmentations 0.2.4).

    python _parity_worker.py transforms REQUEST.json INPUTS.npz OUTPUTS.npz
    python _parity_worker.py views CHAIN.json        # a server on stdin/stdout, for pre-training

`transforms` applies the original library's transforms with their parameters pinned (ranges of width zero,
or the attribute the draw reads set by hand), so that its output can be compared with ours for the same
parameters. `views` builds the original CLMR's chain (torchaudio-augmentations' RandomApply of each step,
with the probabilities CHAIN.json gives) and answers requests until stdin closes: each request is a
header of three little-endian int64 (seed, n, time) and n * time float32 samples (the crops); the answer
is n * time float32 samples on stdout, the views, each made from its crop by the chain per example, as the
original's dataset does. Imports nothing from clmr: this interpreter has the original's stack, not ours.
"""

from __future__ import annotations

import json
import random
import struct
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


def original_chain(chain: dict):
    """The original CLMR's training chain after its crop (the crop comes from our loader, same draws)."""
    sr, n, p = chain["sample_rate"], chain["audio_length"], chain["probabilities"]
    return original.Compose(
        [
            original.RandomApply([original.PolarityInversion()], p=p["polarity"]),
            original.RandomApply([original.Noise(min_snr=0.0001, max_snr=0.01)], p=p["noise"]),
            original.RandomApply([original.Gain()], p=p["gain"]),
            original.RandomApply([original.HighLowPass(sample_rate=sr)], p=p["filters"]),
            original.RandomApply([original.Delay(sample_rate=sr)], p=p["delay"]),
            original.RandomApply([original.PitchShift(n_samples=n, sample_rate=sr)], p=p["pitch"]),
            original.RandomApply([original.Reverb(sample_rate=sr)], p=p["reverb"]),
        ]
    )


HEADER = struct.Struct("<qqq")  # seed, number of crops, samples per crop


def read_exactly(source, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise SystemExit(f"the request ended after {len(data)} of {size} bytes")
    return data


def views(chain_path: str) -> None:
    torch.set_num_threads(1)
    chain = original_chain(json.loads(open(chain_path).read()))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while header := source.read(HEADER.size):
        seed, n, length = HEADER.unpack(header)
        crops = np.frombuffer(read_exactly(source, 4 * n * length), dtype="<f4").reshape(n, length)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        out = np.empty_like(crops)
        for i, crop in enumerate(crops):
            view = chain(torch.from_numpy(crop.copy()).view(1, -1)).reshape(-1)
            if view.shape[0] != crops.shape[1]:
                raise SystemExit(f"the original chain changed a crop's length: {crops.shape[1]} -> {view.shape[0]}")
            out[i] = view.numpy()
        sink.write(out.astype("<f4").tobytes())
        sink.flush()


MODES = {"transforms": transforms, "views": views}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
