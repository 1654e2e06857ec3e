"""Two on-disk layouts per dataset: ours (what preprocess.py writes) and the original CLMR's, read as it is.

A dataset class finds which of the two is complete, reads it, and sets `layout` to one line saying which
it read; when neither is complete, one DatasetError line names the folder and what each layout lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from clmr.audio import AudioFileError, audio_info
from clmr.datasets.dataset import DatasetError
from clmr.filenames import shown

log = logging.getLogger(__name__)

# The original CLMR's preprocess.py converts with `ffmpeg -i <mp3> -ar <--sample_rate> <wav>`, its default
# --sample_rate being 22050; the channels are the source's (mono for MagnaTagATune and the 7digital previews).
ORIGINAL_RATE = 22050
RATE_PROBES = 8  # files whose header is read, at most, to find one readable
OURS = "clmr"
ORIGINAL = "original CLMR"


def missing_files(folder: Path, names: Iterable[str], shown_as: str = "") -> list[str]:
    """The `names` that are not files in `folder`, each written as `<shown_as><name>`."""
    return [f"{shown_as}{n}" for n in names if not (folder / n).is_file()]


def neither_complete(dataset: str, base: Path, ours: Sequence[str], original: Sequence[str], how: str) -> DatasetError:
    """The one-line error for a folder in which neither layout is complete."""
    return DatasetError(
        f"{shown(base)}: no complete {dataset} layout: clmr's (preprocess.py) lacks "
        f"{', '.join(ours)}; the original CLMR's lacks {', '.join(original)}; {how}"
    )


def layout_line(dataset: str, layout: str, base: Path, what: str) -> str:
    """`magnatagatune: original CLMR layout in data/magnatagatune (index_mtt.tsv, 0/..f/ .wav)`."""
    return f"{dataset}: {layout} layout in {shown(base)} ({what})"


def check_original_rate(dataset: str, files: Sequence[Path], sample_rate: int) -> None:
    """Refuse, in one line, original-layout wav files whose rate or channels differ from the config's.

    The first readable file decides (the original's preprocess.py converts every file alike); files that
    cannot be read are left to the loader, which skips them with a warning.
    """
    for path in files[:RATE_PROBES]:
        try:
            info = audio_info(path)
        except AudioFileError:
            continue
        if info.sample_rate == sample_rate and info.channels == 1:
            return
        convert = (
            f"convert the source audio into clmr's layout with python preprocess.py --dataset {dataset} "
            f"--sample_rate {sample_rate} (docs/DATASETS.md)"
        )
        fix = f"pass --sample_rate {info.sample_rate}, or {convert}" if info.channels == 1 else convert
        raise DatasetError(
            f"{shown(path)}: {info.channels} channel(s) at {info.sample_rate} Hz in the original CLMR layout of "
            f"{dataset} (its preprocess.py wrote mono at --sample_rate, default {ORIGINAL_RATE} Hz), but this run "
            f"reads mono at --sample_rate {sample_rate}; {fix}"
        )


def layout_lines(*datasets) -> list[str]:
    """The distinct `layout` lines of `datasets`, in order (one per folder read)."""
    return list(dict.fromkeys(d.layout for d in datasets if getattr(d, "layout", "")))
