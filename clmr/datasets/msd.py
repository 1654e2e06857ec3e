"""The Million Song Dataset's Last.fm top-50 tags (the musicnn-training / Lee et al. split), multi-label.

Not downloadable: the audio are 30 s 7digital previews that are no longer distributed, so this reads a
local copy. Layout under `<dataset_dir>/million_song_dataset/`:

    metadata/  train_gt_msd.tsv, val_gt_msd.tsv, test_gt_msd.tsv, output_labels_msd.txt
               and, for the paths, MSD_id_to_7D_id.pkl (7digital layout, optional 7D_id_to_path.pkl)
               or index_msd.tsv (MSD-id layout)
    mp3/       X/Y/<7digital id>.clip.mp3 (X, Y: first two digits)  or  X/Y/Z/<MSD id>.mp3 (id[2:5])
    wav/       the same tree, .wav, written by preprocess.py

or, read as it is, the original CLMR's layout: processed_annotations/ holding the files of metadata/
(its paths come from MSD_id_to_7D_id.pkl) and preprocessed/X/Y/<7digital id>.clip.wav beside the .mp3.

Split: 201,680 / 11,774 / 28,435 tracks (train / valid / test), 50 tags in the order of
output_labels_msd.txt (MSD_LABELS).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.layouts import ORIGINAL, OURS, check_original_rate, layout_line, missing_files, neither_complete
from clmr.datasets.metadata import check_tag_count, existing, load_plain_pickle, read_gt_tsv, read_label_names
from clmr.filenames import shown

log = logging.getLogger(__name__)

FOLDER = "million_song_dataset"
GT_FILES = {"train": "train_gt_msd.tsv", "valid": "val_gt_msd.tsv", "test": "test_gt_msd.tsv"}
LABELS = "output_labels_msd.txt"
ID_TO_7D = "MSD_id_to_7D_id.pkl"
ID7D_TO_PATH = "7D_id_to_path.pkl"
INDEX = "index_msd.tsv"
ORIGINAL_META, ORIGINAL_AUDIO = "processed_annotations", "preprocessed"  # the original CLMR's folders

SOURCES = """where they come from:
  train_gt_msd.tsv, val_gt_msd.tsv, test_gt_msd.tsv, output_labels_msd.txt, index_msd.tsv:
      https://github.com/jordipons/musicnn-training  data/index/msd/
  MSD_id_to_7D_id.pkl, 7D_id_to_path.pkl:
      https://github.com/jongpillee/music_dataset_split  MSD_split/
  audio: the 7digital 30 s previews (no longer distributed; use a copy you already have),
      as mp3/X/Y/<7digital id>.clip.mp3, then: python preprocess.py --dataset msd --dataset_dir {dataset_dir}
see docs/DATASETS.md"""


def dataset_root(dataset_dir: str | os.PathLike) -> Path:
    return Path(dataset_dir) / FOLDER


def path_7digital(id7d) -> str:
    """`X/Y/<id>.clip.mp3`, the layout of the 7digital previews (X, Y: the id's first two digits)."""
    text = str(id7d).strip()
    return f"{text[0]}/{text[1]}/{text}.clip.mp3"


class MillionSongDataset(AudioDataset):
    """The `subset` of the MSD top-50 tagging split, read from the converted wav files."""

    name = "msd"
    multilabel = True

    def __init__(
        self, root: str | os.PathLike, subset: str, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        self.base = dataset_root(root)
        meta = self.base / "metadata"
        sources = SOURCES.format(dataset_dir=root)
        if not self.base.is_dir():
            raise DatasetError(
                f"{self.base}: Million Song Dataset folder not found (it cannot be downloaded); "
                f"expected {meta}/ with {GT_FILES[subset]}, {LABELS} and {ID_TO_7D} or {INDEX}, "
                f"and the audio under {self.base / 'mp3'}/\n{sources}"
            )
        layout = self._find_layout(subset)
        if layout == ORIGINAL:  # the original CLMR's: processed_annotations/, preprocessed/X/Y/<7digital id>.clip.wav
            meta, audio = self.base / ORIGINAL_META, self.base / ORIGINAL_AUDIO
        else:
            audio = self.base / "wav"
        ids, targets = read_gt_tsv(meta / GT_FILES[subset])
        self.tag_names = read_label_names(meta / LABELS)
        check_tag_count(self.tag_names, targets.shape[1], meta / LABELS, meta / GT_FILES[subset])
        self.listed = len(ids)
        path_of = self._paths(meta, sources) if layout == OURS else self._paths_7digital(meta)
        known = [i for i, t in enumerate(ids) if t in path_of]
        if len(known) < len(ids):
            first = next(t for t in ids if t not in path_of)
            log.warning(
                "msd/%s: %d of %d tracks have no audio path in the id mapping (first: %s); skipped",
                subset,
                len(ids) - len(known),
                len(ids),
                first,
            )
        if not known:
            raise DatasetError(
                f"msd/{subset}: none of the {len(ids)} track ids of {GT_FILES[subset]} is in the id mapping"
            )
        if layout == OURS:
            hint = (
                f"convert them with: python preprocess.py --dataset msd --dataset_dir {root} "
                f"--sample_rate {sample_rate}"
            )
        else:
            hint = "the original CLMR's preprocess.py writes each .wav next to its .mp3 in preprocessed/"
        files = [audio / Path(path_of[ids[i]]).with_suffix(".wav") for i in known]
        present = existing(f"msd/{subset}", files, hint)
        self.files = [files[i] for i in present]
        self.track_ids = [ids[known[i]] for i in present]
        self.targets = targets[[known[i] for i in present]]
        if layout == ORIGINAL:
            check_original_rate("msd", self.files, sample_rate)
            self.layout = layout_line(self.name, ORIGINAL, self.base, f"{ORIGINAL_META}/, {ORIGINAL_AUDIO}/ .wav")
        else:
            self.layout = layout_line(self.name, OURS, self.base, "metadata/, wav/")

    def _find_layout(self, subset: str) -> str:
        """OURS when clmr's layout is complete, else ORIGINAL when the original's is; one-line error otherwise."""
        meta = self.base / "metadata"
        ours = missing_files(meta, [GT_FILES[subset], LABELS], "metadata/")
        if not (meta / ID_TO_7D).is_file() and not (meta / INDEX).is_file():
            ours.append(f"metadata/{ID_TO_7D} or metadata/{INDEX}")
        if not (self.base / "wav").is_dir():
            ours.append("wav/")
        if not ours:
            return OURS
        original = missing_files(self.base / ORIGINAL_META, [GT_FILES[subset], LABELS, ID_TO_7D], f"{ORIGINAL_META}/")
        if next((self.base / ORIGINAL_AUDIO).rglob("*.wav"), None) is None:
            original.append(f".wav files in {ORIGINAL_AUDIO}/")
        if not original:
            return ORIGINAL
        if ours == ["wav/"]:
            how = (
                f"convert with: python preprocess.py --dataset msd --dataset_dir {self.root} "
                f"--sample_rate {self.sample_rate}"
            )
        else:
            how = (
                "the metadata come from github.com/jordipons/musicnn-training (data/index/msd/) and "
                "github.com/jongpillee/music_dataset_split (MSD_split/), the audio (not downloadable) from a "
                "copy of the 7digital previews; see docs/DATASETS.md"
            )
        raise neither_complete("Million Song Dataset", self.base, ours, original, how)

    @staticmethod
    def _paths_7digital(meta: Path) -> dict[str, str]:
        """The original CLMR's paths: MSD id -> X/Y/<7digital id>.clip.mp3 from MSD_id_to_7D_id.pkl alone."""
        to_7d = load_plain_pickle(meta / ID_TO_7D)
        if not isinstance(to_7d, dict):
            raise DatasetError(f"{meta / ID_TO_7D}: expected a dict of MSD id -> 7digital id")
        return {str(k): path_7digital(v) for k, v in to_7d.items()}

    @staticmethod
    def _paths(meta: Path, sources: str) -> dict[str, str]:
        """MSD id -> audio path relative to mp3/ (and wav/), from the 7digital mapping or index_msd.tsv."""
        if (meta / ID_TO_7D).is_file():
            to_7d = load_plain_pickle(meta / ID_TO_7D)
            if not isinstance(to_7d, dict):
                raise DatasetError(f"{meta / ID_TO_7D}: expected a dict of MSD id -> 7digital id")
            to_path = load_plain_pickle(meta / ID7D_TO_PATH) if (meta / ID7D_TO_PATH).is_file() else {}
            return {str(k): str(to_path.get(v) or to_path.get(str(v)) or path_7digital(v)) for k, v in to_7d.items()}
        if (meta / INDEX).is_file():
            paths = {}
            with (meta / INDEX).open() as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    track, sep, rel = line.rstrip("\n").partition("\t")
                    if not sep:
                        raise DatasetError(f"{meta / INDEX}:{lineno}: expected 'MSD_ID<TAB>path', got {line[:60]!r}")
                    paths[track.strip()] = rel.strip()
            return paths
        raise DatasetError(
            f"missing the track-to-audio mapping: expected {meta / ID_TO_7D} (7digital layout, "
            f"audio as mp3/X/Y/<7digital id>.clip.mp3) or {meta / INDEX} (audio as "
            f"mp3/X/Y/Z/<MSD id>.mp3)\n{sources}"
        )

    @classmethod
    def prepare(
        cls, dataset_dir: str | os.PathLike, sample_rate: int, workers: int = 0, download: bool = False
    ) -> dict:
        """Convert mp3/ to wav/ (the MSD cannot be downloaded); returns the manifest."""
        from clmr.preprocessing import convert_all, plan_mirror

        base = dataset_root(dataset_dir)
        sources = SOURCES.format(dataset_dir=dataset_dir)
        if download:
            raise DatasetError(
                f"the Million Song Dataset cannot be downloaded; place a local copy in {base}\n{sources}"
            )
        if not (base / "mp3").is_dir():
            if (base / ORIGINAL_META / ID_TO_7D).is_file() and next((base / ORIGINAL_AUDIO).rglob("*.wav"), None):
                return {
                    "note": f"msd: {shown(base)} is in the original CLMR layout ({ORIGINAL_META}/, .wav next to "
                    f"the .mp3 in {ORIGINAL_AUDIO}/): nothing to convert; main.py and "
                    f"linear_evaluation.py read it as it is"
                }
            raise DatasetError(
                f"{base / 'mp3'}: MSD audio folder not found; expected the previews as "
                f"mp3/X/Y/<7digital id>.clip.mp3\n{sources}"
            )
        jobs = plan_mirror(base / "mp3", base / "wav", extensions=(".mp3",))
        return convert_all(jobs, base / "wav", sample_rate, workers=workers, dataset=cls.name)
