"""LibriSpeech speaker identification: which of the speakers of one LibriSpeech subset is talking.

The utterances are found through torchaudio's `LIBRISPEECH` class. Speaker identification needs the
same speakers in every subset, so one LibriSpeech subset (`--librispeech_url`, default train-clean-100,
251 speakers) is split per speaker: of each speaker's utterances in id order, every tenth from the
ninth on is valid, every tenth from the tenth on is test, the rest train (80 / 10 / 10). (The
original CLMR used test-clean as the test set, whose speakers are not those of train-clean-100.)

Layout under `<dataset_dir>/librispeech/`:

    LibriSpeech/<url>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac   (torchaudio's layout)
    wav/<url>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.wav          (written by preprocess.py)
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.metadata import existing

FOLDER = "librispeech"
DEFAULT_URL = "train-clean-100"
SPLIT_EVERY = 10  # per speaker: position % 10 == 8 -> valid, == 9 -> test


def dataset_root(dataset_dir: str | os.PathLike) -> Path:
    return Path(dataset_dir) / FOLDER


def open_librispeech(base: Path, url: str, download: bool = False):
    """torchaudio's LIBRISPEECH over `base`; DatasetError naming the expected folder if it is not there."""
    from torchaudio.datasets import LIBRISPEECH

    try:
        return LIBRISPEECH(str(base), url=url, download=download)
    except ValueError as err:
        raise DatasetError(f"--librispeech_url: {err}") from None
    except (OSError, RuntimeError) as err:
        if download:
            raise DatasetError(
                f"downloading LibriSpeech {url} into {base} failed ({err}); run again to retry, "
                f"or extract {url}.tar.gz from https://www.openslr.org/12 there yourself"
            ) from None
        raise DatasetError(
            f"{base / 'LibriSpeech' / url}: LibriSpeech {url} not found; get it with: "
            f"python preprocess.py --dataset librispeech --dataset_dir {base.parent} --download "
            f"(or extract {url}.tar.gz from https://www.openslr.org/12 into {base})"
        ) from None


def subset_of(position: int) -> str:
    r = position % SPLIT_EVERY
    return "valid" if r == SPLIT_EVERY - 2 else "test" if r == SPLIT_EVERY - 1 else "train"


class LibriSpeech(AudioDataset):
    """Utterances of the `subset` of one LibriSpeech subset; targets are speaker indices (speakers sorted by id)."""

    name = "librispeech"
    multilabel = False
    CONFIG_KEYS = {"url": "librispeech_url"}

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str,
        sample_rate: int = SAMPLE_RATE,
        audio_length: int = AUDIO_LENGTH,
        url: str = DEFAULT_URL,
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        self.base = dataset_root(root)
        self.url = url
        corpus = open_librispeech(self.base, url)
        by_speaker: dict[int, list[str]] = defaultdict(list)
        for n in range(len(corpus)):
            relpath, _, _, speaker, _, _ = corpus.get_metadata(n)
            by_speaker[speaker].append(relpath)
        if not by_speaker:
            raise DatasetError(f"{self.base / 'LibriSpeech' / url}: no .flac utterances found")
        speakers = sorted(by_speaker)
        self.tag_names = [str(s) for s in speakers]
        files, labels = [], []
        for label, speaker in enumerate(speakers):
            for position, relpath in enumerate(sorted(by_speaker[speaker])):
                if subset_of(position) == subset:
                    files.append(self.base / "wav" / Path(relpath).with_suffix(".wav"))
                    labels.append(label)
        self.listed = len(files)
        hint = (
            f"convert them with: python preprocess.py --dataset librispeech --dataset_dir {root} "
            f"--sample_rate {sample_rate}"
        )
        if not (self.base / "wav" / url).is_dir():
            raise DatasetError(f"{self.base / 'wav' / url}: no converted audio; {hint}")
        if not files:
            raise DatasetError(f"librispeech/{subset}: no utterances in this subset of {url}")
        present = existing(f"librispeech/{subset}", files, hint)
        self.files = [files[i] for i in present]
        self.targets = np.asarray(labels, dtype=np.int64)[present]

    @classmethod
    def prepare(
        cls,
        dataset_dir: str | os.PathLike,
        sample_rate: int,
        workers: int = 0,
        download: bool = False,
        url: str = DEFAULT_URL,
    ) -> dict:
        """Download with --download (torchaudio, from openslr.org), then convert the flac files; returns the manifest."""
        from clmr.atomic import check_writable
        from clmr.preprocessing import convert_all, plan_mirror

        base = dataset_root(dataset_dir)
        if download:
            check_writable(base, "--dataset_dir")
        open_librispeech(base, url, download=download)
        jobs = plan_mirror(base / "LibriSpeech" / url, base / "wav" / url, extensions=(".flac",))
        return convert_all(jobs, base / "wav" / url, sample_rate, workers=workers, dataset=cls.name)
