"""GTZAN (Tzanetakis & Cook 2002): 1,000 30 s excerpts in 10 genres, single-label, fault-filtered split.

The split is Kereliuk et al. 2015's "fault-filtered" one (443 / 197 / 290 excerpts; repeated,
mislabelled and distorted excerpts removed), as torchaudio ships it. Layout under `<dataset_dir>/gtzan/`:

    genres/<genre>/<genre>.000NN.wav   (or .au, the original format; `genres_original/` is accepted too)
    wav/<genre>/<genre>.000NN.wav      (mono 16-bit at --sample_rate, written by preprocess.py)
    {train,valid,test}_filtered.txt    (optional: `genre/genre.000NN.wav` lines, to use another split)

or, read as it is when gtzan/wav/ is absent, the original CLMR's (torchaudio's) layout:
`<dataset_dir>/genres/<genre>/<genre>.000NN.wav`, with torchaudio's lists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.layouts import ORIGINAL, OURS, check_original_rate, layout_line, neither_complete
from clmr.datasets.metadata import existing
from clmr.filenames import shown

FOLDER = "gtzan"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
DEAD_HOST = (
    "GTZAN cannot be downloaded automatically: its host (http://opihi.cs.uvic.ca/sound/genres.tar.gz, "
    "also torchaudio's URL) is offline. Put a copy you obtained elsewhere in {where} as "
    "genres/<genre>/<genre>.000NN.wav (or .au); see docs/DATASETS.md"
)


def dataset_root(dataset_dir: str | os.PathLike) -> Path:
    return Path(dataset_dir) / FOLDER


def split_names(subset: str, folder: Path | None = None) -> list[str]:
    """`genre.000NN` names of the subset: from `<folder>/<subset>_filtered.txt` if present, else torchaudio's lists."""
    if folder is not None and (folder / LIST_FILES[subset]).is_file():
        path = folder / LIST_FILES[subset]
        names = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                stem = Path(line.strip()).stem
                if stem.split(".")[0] not in GENRES:
                    raise DatasetError(
                        f"{path}:{lineno}: {line.strip()!r} is not genre/genre.000NN.wav "
                        f"with a genre of {', '.join(GENRES)}"
                    )
                names.append(stem)
        return names
    from torchaudio.datasets import gtzan

    return list({"train": gtzan.filtered_train, "valid": gtzan.filtered_valid, "test": gtzan.filtered_test}[subset])


def original_folder(dataset_dir: str | os.PathLike) -> Path | None:
    """The original CLMR's GTZAN (torchaudio's layout): `<dataset_dir>/genres/<genre>/<genre>.000NN.wav`."""
    folder = Path(dataset_dir) / "genres"
    if any(next((folder / g).glob(f"{g}.*.wav"), None) is not None for g in GENRES if (folder / g).is_dir()):
        return folder
    return None


def source_folder(base: Path) -> Path | None:
    for name in ("genres", "genres_original"):
        if (base / name).is_dir():
            return base / name
    return None


class GTZAN(AudioDataset):
    """The `subset` of GTZAN's fault-filtered split; targets are genre indices in the order of GENRES."""

    name = "gtzan"
    multilabel = False
    TAG_NAMES = GENRES

    def __init__(
        self, root: str | os.PathLike, subset: str, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        self.base = dataset_root(root)
        hint = f"convert it with: python preprocess.py --dataset gtzan --dataset_dir {root} --sample_rate {sample_rate}"
        original = original_folder(root)
        if (self.base / "wav").is_dir():
            names, audio = split_names(subset, self.base), self.base / "wav"
            self.layout = layout_line(self.name, OURS, self.base, "wav/")
        elif original is not None:  # torchaudio's GTZAN, as the original CLMR read it: its lists, its files
            names, audio = split_names(subset), original
            hint = f"the original CLMR read {original}/<genre>/<genre>.000NN.wav through torchaudio's GTZAN"
            self.layout = layout_line(self.name, ORIGINAL, original, "<genre>/<genre>.000NN.wav")
        else:
            found = source_folder(self.base)
            how = hint if found else DEAD_HOST.format(where=self.base) + f"; then {hint}"
            raise neither_complete(
                "GTZAN",
                self.base,
                [f"wav/ (converted from {self.base / 'genres'}/)"],
                [f"{Path(root) / 'genres'}/<genre>/<genre>.000NN.wav"],
                how,
            )
        self.tag_names = list(GENRES)
        self.listed = len(names)
        files = [audio / n.split(".")[0] / f"{n}.wav" for n in names]
        labels = np.array([GENRES.index(n.split(".")[0]) for n in names], dtype=np.int64)
        present = existing(f"gtzan/{subset}", files, hint)
        self.files = [files[i] for i in present]
        self.targets = labels[present]
        if original is not None and audio == original:
            check_original_rate("gtzan", self.files, sample_rate)

    @classmethod
    def prepare(
        cls, dataset_dir: str | os.PathLike, sample_rate: int, workers: int = 0, download: bool = False
    ) -> dict:
        """Convert genres/ to wav/; returns the manifest."""
        from clmr.preprocessing import convert_all, plan_mirror

        base = dataset_root(dataset_dir)  # GTZAN's host is offline: `download` has nothing to fetch
        source = source_folder(base)
        original = original_folder(dataset_dir)
        if source is None and original is not None:
            return {
                "note": f"gtzan: {shown(original)} is the original CLMR's GTZAN (torchaudio's layout, "
                f"<genre>/<genre>.000NN.wav): nothing to convert; main.py and linear_evaluation.py "
                f"read it as it is"
            }
        if source is None:
            raise DatasetError(f"{base / 'genres'}: GTZAN audio not found. " + DEAD_HOST.format(where=base))
        jobs = plan_mirror(source, base / "wav")
        return convert_all(jobs, base / "wav", sample_rate, workers=workers, dataset=cls.name)
