"""How hard is the `synthetic` dataset? Linear probes on a random SampleCNN and on hand-made features.

A random encoder should leave the dataset unsolved (macro ROC-AUC well below 0.9), while features
built for the tags (band energies, an onset autocorrelation, key-invariant chroma statistics) show
that a supervised signal exists. One crop per track, one logistic regression per tag, AUC on test.

    python bench/bench_synthetic_difficulty.py --n_tracks 1200
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from clmr.datasets.synthetic import SyntheticDataset
from clmr.models import SampleCNN
from clmr.representations import calibrate_batchnorm


def crops(ds: SyntheticDataset, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([ds.random_crop(i, generator) for i in range(len(ds))])  # (tracks, 1, samples)


@torch.no_grad()
def random_encoder_features(audio: torch.Tensor, seed: int, calibrate_on: SyntheticDataset | None) -> np.ndarray:
    """512-d features of a seeded random SampleCNN; BatchNorm statistics from 128 crops of `calibrate_on`
    as the project's random baseline has them (clmr.representations), or the initial ones if None."""
    torch.manual_seed(seed)
    encoder = SampleCNN()
    encoder.fc = torch.nn.Identity()
    encoder.eval()
    if calibrate_on is not None:
        rng = np.random.default_rng(seed)
        tracks = rng.choice(len(calibrate_on), min(128, len(calibrate_on)), replace=False)
        slack = [calibrate_on.num_frames(i) - calibrate_on.audio_length for i in tracks]
        calibrate_batchnorm(encoder, calibrate_on, tracks, rng.integers(0, np.add(slack, 1)), batch_size=32)
    return torch.cat([encoder(batch) for batch in audio.split(32)]).numpy()


def handmade_features(audio: torch.Tensor, sr: int) -> np.ndarray:
    """Log band energies (mean, std), an onset-strength autocorrelation and key-invariant chroma triples."""
    x = audio[:, 0].numpy().astype(np.float64)
    n_fft, hop = 2048, 512
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=1)[:, ::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1))  # (tracks, frames, bins)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = np.geomspace(40, sr / 2, 33)
    bands = np.stack([mag[..., (freqs >= lo) & (freqs < hi)].sum(-1) for lo, hi in zip(edges[:-1], edges[1:])], -1)
    logb = np.log(bands + 1e-6)
    logb -= logb.max(axis=(1, 2), keepdims=True)  # loudness-invariant
    flux = np.maximum(np.diff(np.log(mag + 1e-6), axis=1), 0).mean(-1)
    flux -= flux.mean(1, keepdims=True)
    lags = np.arange(4, 40)  # 0.09 to 0.9 s at hop 512
    acf = np.stack([(flux[:, :-lag] * flux[:, lag:]).mean(1) for lag in lags], 1) / (
        (flux**2).mean(1, keepdims=True) + 1e-9
    )
    pitched = (freqs > 60) & (freqs < 2000)
    pc = np.round(12 * np.log2(freqs[pitched] / 440)).astype(int) % 12
    chroma = np.stack([mag[..., pitched][..., pc == c].sum(-1) for c in range(12)], -1).mean(1)
    chroma /= chroma.sum(1, keepdims=True)
    triples = [
        np.sum(chroma * np.roll(chroma, -a, 1) * np.roll(chroma, -b, 1), 1)
        for a in range(1, 12)
        for b in range(a + 1, 12)
    ]
    return np.concatenate([logb.mean(1), logb.std(1), acf, np.stack(triples, 1) * 1e3], 1)


def probe(train_x, train_y, test_x, test_y) -> tuple[np.ndarray, np.ndarray]:
    scaler = StandardScaler().fit(train_x)
    train_x, test_x = scaler.transform(train_x), scaler.transform(test_x)
    aucs, aps = [], []
    for tag in range(train_y.shape[1]):
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(train_x, train_y[:, tag])
        score = clf.decision_function(test_x)
        aucs.append(roc_auc_score(test_y[:, tag], score))
        aps.append(average_precision_score(test_y[:, tag], score))
    return np.array(aucs), np.array(aps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", default=None, help="default: a temporary folder")
    parser.add_argument("--n_tracks", type=int, default=240)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoder_seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--batchnorm",
        choices=["calibrated", "initial", "both"],
        default="calibrated",
        help="the random encoder's BatchNorm statistics: from 128 training crops, or as initialised",
    )
    args = parser.parse_args()
    root = args.dataset_dir or tempfile.mkdtemp()

    began = time.perf_counter()
    options = dict(n_tracks=args.n_tracks, duration=args.duration, seed=args.seed)
    train, test = (SyntheticDataset(root, s, **options) for s in ("train", "test"))
    print(f"dataset: {len(train)} train / {len(test)} test tracks ({time.perf_counter() - began:.1f} s)")
    train_audio, test_audio = crops(train, 0), crops(test, 1)

    rows = {}
    for seed in args.encoder_seeds:
        for batchnorm in ("calibrated", "initial") if args.batchnorm == "both" else (args.batchnorm,):
            began = time.perf_counter()
            calibrate_on = train if batchnorm == "calibrated" else None
            rows[f"random SampleCNN {seed}, BN {batchnorm}"] = probe(
                random_encoder_features(train_audio, seed, calibrate_on),
                train.targets,
                random_encoder_features(test_audio, seed, calibrate_on),
                test.targets,
            )
            print(f"random encoder {seed}, BatchNorm {batchnorm}: {time.perf_counter() - began:.1f} s")
    rows["hand-made features"] = probe(
        handmade_features(train_audio, train.sample_rate),
        train.targets,
        handmade_features(test_audio, test.sample_rate),
        test.targets,
    )

    print(f"\nROC-AUC on test ({len(test)} tracks); macro ROC-AUC / PR-AUC at the end")
    print(f"{'':34s}" + "".join(f"{t:>8s}" for t in train.tag_names) + f"{'ROC':>8s}{'PR':>8s}")
    for name, (aucs, aps) in rows.items():
        print(f"{name:34s}" + "".join(f"{a:8.3f}" for a in aucs) + f"{aucs.mean():8.3f}{aps.mean():8.3f}")


if __name__ == "__main__":
    main()
