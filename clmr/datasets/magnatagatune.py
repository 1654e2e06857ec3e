"""MagnaTagATune (Law et al. 2009): 25,863 clips of about 29 s, tagged; the top-50 tags as a multi-label task.

Layout under `<dataset_dir>/magnatagatune/` (what `preprocess.py --dataset magnatagatune --download` makes):

    downloads/  mp3.zip.001-003, annotations_final.csv          (fetched, md5-checked)
    mp3/        0/ ... f/<name>.mp3                              (extracted)
    wav/        0/ ... f/<name>.wav  manifest.json               (mono 16-bit wav at --sample_rate)
    metadata/   index_mtt.tsv, {train,val,test}_gt_mtt.tsv, output_labels_mtt.txt    (split pons2017)
                train.npy, valid.npy, test.npy, binary.npy, tags.npy                (split sota)

Or, read as it is when that layout is not complete, the original CLMR's: the split files (index_mtt.tsv,
{train,val,test}_gt_mtt.tsv; or {train,valid,test}.npy and binary.npy) in `magnatagatune/` itself and each
converted .wav beside its .mp3 in 0/ ... f/ (its preprocess.py: ffmpeg at 22050 Hz, mono as the mp3s).

Two splits:
- `pons2017` (musicnn-training, Pons et al. 2018; the one CLMR reports): 18,706 / 1,825 / 5,329 clips.
  `*_gt_mtt.tsv` rows are `clip_id<TAB>[50 labels]`; index_mtt.tsv maps clip_id to `folder/name.mp3`.
- `sota` (Won et al. 2020, sota-music-tagging-models): items of train/valid/test.npy are
  `ix<TAB>folder/name.mp3`, where `ix` is the row of index_mtt.tsv / annotations_final.csv (not a
  clip_id), and binary.npy[ix] is the label vector; valid 1,529, test 4,332 clips.
The number of tags comes from the label files, the names from output_labels_mtt.txt or tags.npy.

Three clips of the archive are empty (0-byte mp3s): clip ids 35644, 55753 and 57881. They are left out
of every split with one logged note, and preprocess skips them with that reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.download import RemoteFile
from clmr.datasets.layouts import ORIGINAL, OURS, check_original_rate, layout_line, missing_files, neither_complete
from clmr.datasets.metadata import check_tag_count, existing, read_gt_tsv, read_label_names
from clmr.filenames import shown

log = logging.getLogger(__name__)

FOLDER = "magnatagatune"
SPLITS = ("pons2017", "sota")

# The dataset's host: http://mi.soi.city.ac.uk/datasets/magnatagatune (the original CLMR's URL) moved
# here; override with --mtat_base_url if it moves again. md5 sums as published with the files.
BASE_URL = "https://mirg.city.ac.uk/datasets/magnatagatune"
AUDIO_PARTS = {
    "mp3.zip.001": "md5:179c91c8c2a6e9b3da3d4e69d306fd3b",
    "mp3.zip.002": "md5:acf8265ff2e35c6ff22210e46457a824",
    "mp3.zip.003": "md5:582dc649cabb8cd991f09e14b99349a5",
}
ANNOTATIONS = {"annotations_final.csv": "md5:f04fa01752a8cc64f6e1ca142a0fef1d"}

# The split files, pinned to the commits they were checked at (md5 of those files; for the three over
# 4 MiB only the Git blob id prefix is known, which verifies them just as well).
PONS2017_URL = (
    "https://raw.githubusercontent.com/jordipons/musicnn-training/"
    "c7aa67bd1641592fcf43467c37db01b553dd4e5c/data/index/mtt"
)
SOTA_URL = (
    "https://raw.githubusercontent.com/minzwon/sota-music-tagging-models/"
    "c5c726c0caff82d3c2127618bd4cd8185940837a/split/mtat"
)
SPLIT_FILES = {
    "pons2017": {
        "index_mtt.tsv": "md5:1b80914bad5a4b5fbef3e702b06510d4",
        "train_gt_mtt.tsv": "git-blob:84eaa642",
        "val_gt_mtt.tsv": "md5:ca7ead774dfeddaf80e94afc507d5c06",
        "test_gt_mtt.tsv": "md5:10170e346a52dae1696121d07c7a5545",
        "output_labels_mtt.txt": "md5:5c9b2753e9d582d356b932b998fb1c00",
    },
    "sota": {
        "train.npy": "git-blob:fadae122",
        "valid.npy": "md5:7803995c247fc336f77f8f4b9128154d",
        "test.npy": "md5:f283fbfd9374d3d55909c1496f78f7a0",
        "binary.npy": "git-blob:50a2a483",
        "tags.npy": "md5:c2cfea51f33b61f61b3bc145f28ea655",
    },
}
PONS_FILES = {"train": "train_gt_mtt.tsv", "valid": "val_gt_mtt.tsv", "test": "test_gt_mtt.tsv"}
SOTA_FILES = {"train": "train.npy", "valid": "valid.npy", "test": "test.npy"}

# Empty mp3s in the archive (0 bytes): clip_id -> path inside mp3/.
BROKEN_CLIPS = {
    "35644": "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "55753": "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    "57881": "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_ordre_couperin-88-117.mp3",
}
BROKEN_REASON = "known broken MagnaTagATune clip {clip} (empty mp3 in the archive)"


def dataset_root(dataset_dir: str | os.PathLike) -> Path:
    return Path(dataset_dir) / FOLDER


def how_to_get(dataset_dir: str | os.PathLike) -> str:
    return (
        f"get them with: python preprocess.py --dataset magnatagatune --dataset_dir {dataset_dir} --download "
        f"(see docs/DATASETS.md)"
    )


def wav_path(root: Path, mp3_rel: str) -> Path:
    """The converted file of `folder/name.mp3`."""
    return root / "wav" / Path(mp3_rel).with_suffix(".wav")


def read_index(path: Path) -> tuple[list[str], list[str]]:
    """index_mtt.tsv: clip ids and `folder/name.mp3` paths, in row order."""
    ids, paths = [], []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            clip, sep, rel = line.rstrip("\n").partition("\t")
            if not sep or not rel.strip():
                raise DatasetError(f"{path}:{lineno}: expected 'clip_id<TAB>folder/name.mp3', got {line[:60]!r}")
            ids.append(clip.strip())
            paths.append(rel.strip())
    return ids, paths


class MagnaTagATune(AudioDataset):
    """The `subset` of MagnaTagATune in split `split` (pons2017 or sota), read from the converted wav files.

    Read from clmr's layout (metadata/, wav/) when it is complete, else from the original CLMR's (the split
    files in the folder itself, each .wav next to its .mp3 in 0/ ... f/); `layout` says which.
    """

    name = "magnatagatune"
    multilabel = True
    CONFIG_KEYS = {"split": "mtat_split"}

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str,
        sample_rate: int = SAMPLE_RATE,
        audio_length: int = AUDIO_LENGTH,
        split: str = "pons2017",
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        if split not in SPLITS:
            raise DatasetError(
                f"unknown MagnaTagATune split {split!r}; expected one of {', '.join(SPLITS)} (--mtat_split)"
            )
        self.split = split
        self.base = dataset_root(root)
        if not self.base.is_dir():
            raise DatasetError(f"{self.base}: MagnaTagATune folder not found; {how_to_get(root)}")
        layout = self._find_layout()
        meta, audio = (self.base / "metadata", self.base / "wav") if layout == OURS else (self.base, self.base)
        if split == "pons2017":
            rel_paths, clip_ids, targets = self._read_pons2017(meta)
        else:
            rel_paths, clip_ids, targets = self._read_sota(meta)
        names = self._tag_names(meta, layout, targets.shape[1])
        keep = [i for i, rel in enumerate(rel_paths) if rel not in _BROKEN_PATHS]
        if len(keep) < len(rel_paths):
            dropped = [
                f"{clip_ids[i]} ({rel_paths[i]})" for i in range(len(rel_paths)) if rel_paths[i] in _BROKEN_PATHS
            ]
            log.info(
                "magnatagatune/%s (%s): left out %d known broken clip(s), empty in the archive: %s",
                subset,
                split,
                len(dropped),
                ", ".join(dropped),
            )
        self.listed = len(keep)  # clips of the split, before missing audio files are dropped
        self.tag_names = names
        if layout == OURS:
            hint = (
                f"convert them with: python preprocess.py --dataset magnatagatune --dataset_dir {root} "
                f"--sample_rate {sample_rate}"
            )
        else:
            hint = "the original CLMR's preprocess.py writes each .wav next to its .mp3"
        files = [audio / Path(rel_paths[i]).with_suffix(".wav") for i in keep]
        present = existing(f"magnatagatune/{subset}", files, hint)
        self.files = [files[i] for i in present]
        self.clip_ids = [clip_ids[keep[i]] for i in present]
        self.targets = targets[[keep[i] for i in present]]
        if layout == ORIGINAL:
            check_original_rate("magnatagatune", self.files, sample_rate)
            self.layout = layout_line(self.name, ORIGINAL, self.base, f"{self._required()[1][0]}, 0/..f/ .wav")
        else:
            self.layout = layout_line(self.name, OURS, self.base, "metadata/, wav/")

    # -- the two layouts ----------------------------------------------------------------------
    def _required(self) -> tuple[list[str], list[str]]:
        """The metadata files of this split and subset each layout needs: (clmr's, in metadata/; the original's)."""
        if self.split == "pons2017":
            gt = PONS_FILES[self.subset]
            return ["index_mtt.tsv", gt, "output_labels_mtt.txt"], ["index_mtt.tsv", gt]
        listed = SOTA_FILES[self.subset]
        return [listed, "binary.npy", "tags.npy"], [listed, "binary.npy"]

    def _find_layout(self) -> str:
        """OURS when clmr's layout is complete, else ORIGINAL when the original's is; one-line error otherwise."""
        ours_needed, original_needed = self._required()
        ours = missing_files(self.base / "metadata", ours_needed, "metadata/")
        if not (self.base / "wav").is_dir():
            ours.append("wav/")
        if not ours:
            return OURS
        original = missing_files(self.base, original_needed)
        if not original_audio(self.base):
            original.append(".wav files in 0/ ... f/")
        if not original:
            return ORIGINAL
        if ours == ["wav/"]:
            how = (
                f"convert with: python preprocess.py --dataset magnatagatune --dataset_dir {self.root} "
                f"--sample_rate {self.sample_rate}"
            )
        else:
            how = how_to_get(self.root)
        raise neither_complete("MagnaTagATune", self.base, ours, original, how)

    def _tag_names(self, meta: Path, layout: str, n_tags: int) -> list[str]:
        """clmr's layout: the split's names file. The original's needs none (it hard-codes 50 tags): the first of
        output_labels_mtt.txt and tags.npy found in the folder, else `tag0` ... (labels are unchanged)."""
        files = (
            ["output_labels_mtt.txt", "tags.npy"] if self.split == "pons2017" else ["tags.npy", "output_labels_mtt.txt"]
        )
        if layout == ORIGINAL:
            files = [f for f in files if (meta / f).is_file()]
            if not files:
                log.info(
                    "magnatagatune: %s has neither output_labels_mtt.txt nor tags.npy; tags named tag0 ... tag%d",
                    self.base,
                    n_tags - 1,
                )
                return [f"tag{i}" for i in range(n_tags)]
        path = meta / files[0]
        if path.suffix == ".npy":
            names = [str(t) for t in _load_npy(path).tolist()]
        else:
            names = read_label_names(path)
        labels = PONS_FILES[self.subset] if self.split == "pons2017" else "binary.npy"
        check_tag_count(names, n_tags, path, meta / labels)
        return names

    # -- the two splits -----------------------------------------------------------------------
    def _read_pons2017(self, meta: Path):
        gt_name = PONS_FILES[self.subset]
        index_ids, index_paths = read_index(meta / "index_mtt.tsv")
        path_of = dict(zip(index_ids, index_paths))
        ids, targets = read_gt_tsv(meta / gt_name)
        unknown = [c for c in ids if c not in path_of]
        if unknown:
            raise DatasetError(
                f"{meta / gt_name}: {len(unknown)} clip id(s) not in index_mtt.tsv (first: {unknown[0]})"
            )
        return [path_of[c] for c in ids], ids, targets

    def _read_sota(self, meta: Path):
        list_name = SOTA_FILES[self.subset]
        items = _load_npy(meta / list_name)
        binary = _load_npy(meta / "binary.npy")
        if binary.ndim != 2:
            raise DatasetError(f"{meta / 'binary.npy'}: expected a (clips, tags) array, got shape {binary.shape}")
        rows, rel_paths = [], []
        for n, item in enumerate(items):
            ix, sep, rel = str(item).partition("\t")
            if not sep or not ix.strip().isdigit():
                raise DatasetError(
                    f"{meta / list_name}[{n}]: expected 'row<TAB>folder/name.mp3', got {str(item)[:60]!r}"
                )
            if int(ix) >= len(binary):
                raise DatasetError(f"{meta / list_name}[{n}]: row {ix} is beyond binary.npy's {len(binary)} rows")
            rows.append(int(ix))
            rel_paths.append(rel.strip())
        clip_ids = self._clip_ids_of_rows(meta, rows)
        return rel_paths, clip_ids, binary[rows].astype(np.float32)

    @staticmethod
    def _clip_ids_of_rows(meta: Path, rows: list[int]) -> list[str]:
        """The clip id of each index_mtt.tsv row when the index is there; `row<n>` otherwise."""
        if not (meta / "index_mtt.tsv").is_file():
            return [f"row{r}" for r in rows]
        ids, _ = read_index(meta / "index_mtt.tsv")
        return [ids[r] if r < len(ids) else f"row{r}" for r in rows]

    # -- preprocess.py ------------------------------------------------------------------------
    @classmethod
    def prepare(
        cls,
        dataset_dir: str | os.PathLike,
        sample_rate: int,
        workers: int = 0,
        download: bool = False,
        base_url: str = BASE_URL,
        split_urls: dict[str, str] | None = None,
    ) -> dict:
        """Download (with `download`: the audio from `base_url`, the splits from `split_urls`), verify, merge,
        extract, and convert to wav; returns the manifest."""
        from clmr.atomic import check_writable
        from clmr.preprocessing import convert_all, plan_mirror

        base = dataset_root(dataset_dir)
        if download:
            check_writable(base, "--dataset_dir")
            fetch(
                base, base_url=base_url, split_urls={"pons2017": PONS2017_URL, "sota": SOTA_URL, **(split_urls or {})}
            )
        elif not (base / "mp3").is_dir():
            if (base / "index_mtt.tsv").is_file() and original_audio(base):
                return {
                    "note": f"magnatagatune: {shown(base)} is in the original CLMR layout (index_mtt.tsv, .wav "
                    f"next to the .mp3 in 0/ ... f/): nothing to convert; main.py and "
                    f"linear_evaluation.py read it as it is"
                }
            raise DatasetError(f"{base / 'mp3'}: MagnaTagATune mp3 folder not found; {how_to_get(dataset_dir)}")
        exclude = {rel: BROKEN_REASON.format(clip=clip) for clip, rel in BROKEN_CLIPS.items()}
        jobs = plan_mirror(base / "mp3", base / "wav", exclude=exclude, extensions=(".mp3",))
        return convert_all(jobs, base / "wav", sample_rate, workers=workers, dataset=cls.name)


_BROKEN_PATHS = set(BROKEN_CLIPS.values())


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetError(f"{path}: not a readable .npy array ({err})") from None


def fetch(
    base: Path,
    base_url: str = BASE_URL,
    split_urls: dict[str, str] | None = None,
    audio_parts: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    split_files: dict[str, dict[str, str]] | None = None,
) -> None:
    """Download both splits' files, the annotations and the audio parts (from `base_url`), check, merge, extract.

    The audio is not fetched again once extracted (by this function or by hand into mp3/0 ... mp3/f).
    The arguments after `base_url` default to the real dataset's URLs and checksums; tests pass their own.
    """
    from clmr.datasets.download import download_all, extract_zip, merge_parts

    split_urls = split_urls or {"pons2017": PONS2017_URL, "sota": SOTA_URL}
    audio_parts = AUDIO_PARTS if audio_parts is None else audio_parts
    annotations = ANNOTATIONS if annotations is None else annotations
    split_files = SPLIT_FILES if split_files is None else split_files
    base_url = base_url.rstrip("/")
    downloads = base / "downloads"
    for split, files in split_files.items():
        url = split_urls[split].rstrip("/")
        download_all([RemoteFile(n, f"{url}/{n}", c) for n, c in files.items()], base / "metadata")
    download_all([RemoteFile(n, f"{base_url}/{n}", c) for n, c in annotations.items()], downloads)
    if audio_extracted(base / "mp3"):
        log.info("%s: audio already extracted; not downloading mp3.zip.* again", base / "mp3")
        return
    download_all([RemoteFile(n, f"{base_url}/{n}", c) for n, c in audio_parts.items()], downloads)
    merged = merge_parts([downloads / n for n in sorted(audio_parts)], downloads / "mp3.zip")
    extract_zip(merged, base / "mp3")
    (base / "mp3" / EXTRACTED).write_text("extracted from " + ", ".join(sorted(audio_parts)) + "\n")
    merged.unlink()


EXTRACTED = ".extracted"


def original_audio(base: Path) -> bool:
    """The original CLMR's converted audio is here: some .wav in the folders 0 ... f, beside the .mp3."""
    return any(next((base / d).glob("*.wav"), None) is not None for d in HEX_FOLDERS if (base / d).is_dir())


HEX_FOLDERS = "0123456789abcdef"


def audio_extracted(mp3: Path) -> bool:
    """The archive was extracted here: by fetch (its marker file), or by hand (all 16 folders 0-f hold mp3s)."""
    if (mp3 / EXTRACTED).is_file():
        return True
    return all(any((mp3 / d).glob("*.mp3")) for d in "0123456789abcdef") if mp3.is_dir() else False
