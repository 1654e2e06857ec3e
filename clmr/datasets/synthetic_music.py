"""The synthetic dataset's music: what a track is (`Track`, drawn from a seed), its instruments, score and mix.

`make_track(seed, index, sample_rate, duration)` is track `index` of a dataset with that seed; see
`clmr.datasets.synthetic` for the tags, the folder on disk and the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERSION = 1  # bump when the generator changes: old folders are then left alone and a new one is made
TAGS = ["piano", "strings", "synth", "bells", "bass", "drums", "hihat", "fast", "high", "minor", "reverb"]
MELODIC = ("piano", "strings", "synth", "bells")

SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 10)}  # major, natural minor
# Risset's bell: (frequency ratio, amplitude, relative decay time) of each partial.
BELL = (
    (0.56, 1.0, 1.0),
    (0.92, 0.67, 0.9),
    (1.19, 1.0, 0.65),
    (1.71, 1.8, 0.55),
    (2.0, 2.67, 0.325),
    (2.74, 1.67, 0.35),
    (3.0, 1.46, 0.25),
    (3.76, 1.33, 0.2),
    (4.07, 1.33, 0.15),
)


# -- what a track is --------------------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    """Everything drawn for one track; the tags follow from it."""

    tempo: float
    tonic: int  # pitch class of the key, 0 = C
    minor: bool
    high: bool
    instruments: tuple[str, ...]  # melodic instruments, the first plays the melody
    bass: bool
    drums: bool
    hihat: bool
    reverb: bool
    tuning: float  # cents off A440

    def tags(self) -> list[str]:
        present = set(self.instruments)
        present |= {name for name in ("bass", "drums", "hihat", "high", "minor", "reverb") if getattr(self, name)}
        if self.tempo >= 120:
            present.add("fast")
        return [tag for tag in TAGS if tag in present]


def draw_track(rng: np.random.Generator) -> Track:
    fast = rng.random() < 0.5
    n_instruments = int(rng.integers(1, 4))
    instruments = tuple(MELODIC[i] for i in rng.permutation(len(MELODIC))[:n_instruments])
    return Track(
        tempo=float(rng.uniform(125, 170) if fast else rng.uniform(60, 95)),
        tonic=int(rng.integers(12)),
        minor=bool(rng.random() < 0.5),
        high=bool(rng.random() < 0.5),
        instruments=instruments,
        bass=bool(rng.random() < 0.5),
        drums=bool(rng.random() < 0.5),
        hihat=bool(rng.random() < 0.4),
        reverb=bool(rng.random() < 0.4),
        tuning=float(rng.uniform(-40, 40)),
    )


def make_track(seed: int, index: int, sample_rate: int, duration: float) -> tuple[Track, np.ndarray]:
    """Track `index` of the dataset with this seed: its parameters and its float32 audio."""
    rng = np.random.default_rng([seed, index])
    track = draw_track(rng)
    return track, render(track, sample_rate, duration, rng)


# -- instruments: one note as a float32 array -------------------------------------------------
def _partials(
    freqs: np.ndarray,
    amps: np.ndarray,
    decays: np.ndarray | None,
    n: int,
    sr: int,
    rng: np.random.Generator,
    vibrato: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Sum of sines at `freqs` (Hz, those below 0.45 sr) with exponential `decays` (seconds; None: none)."""
    keep = freqs < 0.45 * sr
    freqs, amps = freqs[keep], amps[keep]
    decays = decays[keep] if decays is not None else None
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    rate, depth = vibrato
    warp = t - depth * (np.cos(2 * np.pi * rate * t) - 1) / (2 * np.pi * rate) if depth else t
    phases = rng.uniform(0, 2 * np.pi, len(freqs)).astype(np.float32)
    out = np.zeros(n, np.float32)
    for i, (f, a, phase) in enumerate(zip(freqs.astype(np.float32), amps.astype(np.float32), phases)):
        wave = np.sin(np.float32(2 * np.pi) * f * warp + phase)
        if decays is not None:
            wave *= np.exp(-t / np.float32(decays[i]))
        out += a * wave
    return out


def _envelope(n: int, sr: int, attack: float, hold: int, release: float) -> np.ndarray:
    """Linear attack, flat until sample `hold`, then an exponential release."""
    env = np.ones(n, np.float32)
    a = max(int(attack * sr), 1)
    env[:a] = np.linspace(0, 1, a, dtype=np.float32)
    if hold < n:
        env[hold:] *= np.exp(-np.arange(n - hold, dtype=np.float32) / np.float32(release * sr))
    return env


def _note(instrument: str, f: float, dur: float, sr: int, rng: np.random.Generator, variant: int) -> np.ndarray:
    hold = int(dur * sr)
    k = np.arange(1, 13, dtype=np.float64)
    if instrument == "piano":
        n = int(min(dur + 0.3, 3.0) * sr)
        tau = float(np.clip(1.6 * (220 / f) ** 0.5, 0.4, 3.0))
        wave = _partials(k * f * np.sqrt(1 + 3e-4 * k**2), k**-1.3, tau / (1 + 0.7 * (k - 1)), n, sr, rng)
        return wave * _envelope(n, sr, 0.002, hold, 0.08)
    if instrument == "strings":
        n = int((dur + 0.3) * sr)
        amps = np.exp(-k / 6) / k
        wave = sum(_partials(k * f * 2 ** (c / 1200), amps, None, n, sr, rng, vibrato=(5.5, 0.006)) for c in (-7, 7))
        return wave * _envelope(n, sr, 0.15, hold, 0.12)
    if instrument == "synth":
        n = int((dur + 0.1) * sr)
        amps = np.where(k % 2 == 1, 1 / k, 0.0) if variant == 0 else 1 / k  # square or sawtooth
        return _partials(k * f, amps, None, n, sr, rng) * _envelope(n, sr, 0.005, hold, 0.03)
    if instrument == "bells":
        n = int(max(dur, 1.2) * sr)
        ratios, amps, decays = (np.array(col) for col in zip(*BELL))
        return _partials(ratios * 2 * f, amps, 0.8 * decays, n, sr, rng) * _envelope(n, sr, 0.001, n, 1)
    if instrument == "bass":
        n = int((dur + 0.1) * sr)
        amps = np.array([1.0, 0.6, 0.35, 0.2, 0.1])
        wave = _partials(k[:5] * f, amps, np.full(5, 0.6) / k[:5], n, sr, rng)
        return wave * _envelope(n, sr, 0.004, hold, 0.04)
    raise ValueError(f"unknown instrument {instrument!r}")


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.35 * sr)) / sr
    low, sweep, decay = rng.uniform(40, 60), rng.uniform(60, 110), rng.uniform(0.12, 0.3)
    return (np.sin(2 * np.pi * (low * t + sweep * 0.03 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / decay)).astype(
        np.float32
    )


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.3 * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 1)) * 0.5 * np.exp(-t / rng.uniform(0.06, 0.15))
    tone = np.sin(2 * np.pi * rng.uniform(160, 230) * t) * np.exp(-t / 0.05)
    return (noise + 0.6 * tone).astype(np.float32)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.12 * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 2), 2) * 0.25  # second difference: mostly above 5 kHz
    return (noise * np.exp(-t / rng.uniform(0.015, 0.05))).astype(np.float32)


# -- the score: (onset in beats, MIDI pitch, length in beats) per instrument -------------------
def _midi_hz(midi: float, tuning: float) -> float:
    return 440.0 * 2 ** ((midi - 69 + tuning / 100) / 12)


def _score(track: Track, n_beats: int, rng: np.random.Generator) -> dict[str, list[tuple[float, int, float]]]:
    scale = SCALES[track.minor]
    low_root = 48 + track.tonic  # C3..B3
    root = low_root + (19 if track.high else 0)

    def pitch(degree: int, base: int = root) -> int:
        return base + 12 * (degree // 7) + scale[degree % 7]

    # One chord per bar: starts on the tonic, which returns often; the other degrees as in pop music.
    n_bars = -(-n_beats // 4)
    chords = [0] + [int(rng.choice([0, 3, 4, 5], p=[0.4, 0.2, 0.25, 0.15])) for _ in range(n_bars - 1)]
    score: dict[str, list[tuple[float, int, float]]] = {}

    melody, beat, degree = [], 0.0, int(rng.choice([0, 2, 4, 7]))
    while beat < n_beats:
        length = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
        chord = chords[int(beat) // 4]
        if beat % 4 == 0:  # bar starts land on a chord tone
            degree = min((chord + c + 7 * o for c in (0, 2, 4) for o in (-1, 0, 1)), key=lambda d: abs(d - degree))
        else:
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -2, 9))
        if rng.random() > 0.1:
            melody.append((beat, pitch(degree), length))
        beat += length
    score[track.instruments[0]] = melody

    for instrument in track.instruments[1:]:
        style = "block" if instrument == "strings" else str(rng.choice(["block", "halves", "arpeggio"]))
        notes = []
        for bar, chord in enumerate(chords):
            tones = [pitch(chord + c - 7) for c in (0, 2, 4)]
            if style == "block":
                notes += [(4.0 * bar, p, 4.0) for p in tones]
            elif style == "halves":
                notes += [(4.0 * bar + h, p, 2.0) for h in (0, 2) for p in tones]
            else:
                notes += [(4.0 * bar + 0.5 * i, tones[j], 0.5) for i, j in enumerate([0, 1, 2, 1, 0, 1, 2, 1])]
        score[instrument] = notes

    if track.bass:
        step = float(rng.choice([1.0, 2.0, 0.5]))
        score["bass"] = [
            (4.0 * bar + step * i, pitch(chord + (4 if step == 0.5 and i % 2 else 0), 33 + track.tonic), step)
            for bar, chord in enumerate(chords)
            for i in range(int(4 / step))
        ]
    return score


# -- the mix ------------------------------------------------------------------------------------
def _place(out: np.ndarray, sound: np.ndarray, start: int, gain: float = 1.0) -> None:
    if start < len(out):
        end = min(start + len(sound), len(out))
        out[start:end] += gain * sound[: end - start]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-9)


def render(track: Track, sample_rate: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """The track's audio: float32, `duration` seconds at `sample_rate`, peak below 1.

    Each part draws from its own random stream (spawned from `rng`), so the same track with one tag
    flipped (drums added, the register raised) keeps everything else: the notes, the levels, the room.
    """
    sr, n = sample_rate, int(round(duration * sample_rate))
    beat = 60.0 / track.tempo
    n_beats = int(np.ceil(duration / beat)) + 1
    score_rng, level_rng, drums_rng, hihat_rng, room_rng, *part_rngs = rng.spawn(5 + len(MELODIC) + 1)
    part_rng = dict(zip(MELODIC + ("bass",), part_rngs))
    levels = {name: level_rng.uniform(-7, 0) for name in MELODIC}
    levels.update(bass=level_rng.uniform(-8, -2), drums=level_rng.uniform(-6, 0), hihat=level_rng.uniform(-14, -4))
    levels[track.instruments[0]] += 3.0  # the melody leads

    stems = {
        name: _pitched_stem(name, notes, track.tuning, beat, n, sr, part_rng[name])
        for name, notes in _score(track, n_beats, score_rng).items()
    }
    if track.drums:
        stems["drums"] = _drum_stem(beat, n_beats, n, sr, drums_rng)
    if track.hihat:
        stems["hihat"] = _hihat_stem(beat, n_beats, n, sr, hihat_rng)
    mix = sum(_normalise(stem) * np.float32(10 ** (levels[name] / 20)) for name, stem in stems.items())
    return _room_and_nuisances(mix, track.reverb, sr, room_rng)


def _pitched_stem(
    instrument: str,
    notes: list[tuple[float, int, float]],
    tuning: float,
    beat: float,
    n: int,
    sr: int,
    rng: np.random.Generator,
) -> np.ndarray:
    variant = int(rng.integers(2))
    gains = rng.uniform(0.6, 1.0, len(notes))
    stem, cache = np.zeros(n, np.float32), {}
    for (onset, midi, length), gain in zip(notes, gains):
        if (midi, length) not in cache:
            cache[midi, length] = _note(instrument, _midi_hz(midi, tuning), length * beat, sr, rng, variant)
        _place(stem, cache[midi, length], int(onset * beat * sr), gain)
    return stem


def _drum_stem(beat: float, n_beats: int, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Kick on beats 1 and 3 (sometimes also on 2-and, 3-and), snare on 2 and 4."""
    kick, snare, stem = _kick(sr, rng), _snare(sr, rng), np.zeros(n, np.float32)
    kicks = [0.0, 2.0] + ([2.5] if rng.random() < 0.5 else []) + ([1.5] if rng.random() < 0.3 else [])
    for bar in range(0, n_beats, 4):
        for k in kicks:
            _place(stem, kick, int((bar + k) * beat * sr), rng.uniform(0.8, 1.0))
        for k in (1, 3):
            _place(stem, snare, int((bar + k) * beat * sr), rng.uniform(0.7, 1.0))
    return stem


def _hihat_stem(beat: float, n_beats: int, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Eighths or sixteenths, the off-beats softer."""
    hat, stem = _hat(sr, rng), np.zeros(n, np.float32)
    step = 0.25 if rng.random() < 0.3 else 0.5
    for i in range(int(n_beats / step)):
        _place(stem, hat, int(i * step * beat * sr), rng.uniform(0.3, 1.0) * (1.0 if i % 2 == 0 else 0.6))
    return stem


def _room_and_nuisances(mix: np.ndarray, reverb: bool, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Reverb (a decaying-noise impulse response), pink noise, an EQ tilt and low-pass, then a random peak level.

    All in one frequency-domain pass over the track.
    """
    n = len(mix)
    rt60, wet = (
        (rng.uniform(1.5, 3.0), rng.uniform(0.5, 0.8)) if reverb else (rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.25))
    )
    t = np.arange(int(rt60 * sr), dtype=np.float32) / np.float32(sr)
    ir = rng.standard_normal(len(t), dtype=np.float32) * np.exp(np.float32(-6.9 / rt60) * t)
    ir[: int(0.01 * sr)] = 0  # pre-delay
    ir /= np.sqrt(np.sum(ir**2))  # unit energy: |rfft(ir)| is 1 on average
    size = 1 << int(np.ceil(np.log2(n + len(ir))))  # a power of two: pocketfft is slow on other sizes
    spectrum = np.fft.rfft(mix, size) * ((1 - wet) + wet * np.fft.rfft(ir, size))

    freqs = np.fft.rfftfreq(size, 1 / sr).astype(np.float32) / np.float32(1000)  # kHz
    freqs[0] = freqs[1]
    pink = rng.standard_normal(2 * len(freqs), dtype=np.float32).view(np.complex64) / np.sqrt(freqs)
    snr_db = rng.uniform(15, 40)
    power = np.mean(spectrum.real**2 + spectrum.imag**2) / np.mean(pink.real**2 + pink.imag**2)
    spectrum += pink * np.float32(np.sqrt(power * 10 ** (-snr_db / 10)))

    tilt_db_per_octave, cutoff = rng.uniform(-3, 3), rng.uniform(3, 10)
    spectrum *= np.exp(np.float32(tilt_db_per_octave / 6.02) * np.log(freqs)) / np.sqrt(
        1 + (freqs / np.float32(cutoff)) ** 4
    )
    audio = np.fft.irfft(spectrum, size)[:n]
    peak = 10 ** (rng.uniform(-18, -1) / 20)
    return (audio * np.float32(peak / (np.max(np.abs(audio)) + 1e-9))).astype(np.float32)
