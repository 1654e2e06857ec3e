"""The real-dataset loaders on the real public metadata files (../shared/data) with tiny synthetic audio."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clmr.datasets import DatasetError, dataset_from_config, get_dataset
from clmr.datasets import gtzan as gtzan_module
from clmr.datasets import magnatagatune as mtat
from clmr.datasets import msd as msd_module
from clmr.datasets.gtzan import GENRES, GTZAN
from clmr.datasets.librispeech import LibriSpeech
from clmr.datasets.magnatagatune import BROKEN_CLIPS, MagnaTagATune
from clmr.datasets.metadata import read_label_names
from clmr.datasets.msd import MillionSongDataset
from conftest import place

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RATE = 22050

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real metadata files) not present")


# -- helpers -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.wav"
    sf.write(path, np.zeros(64, dtype=np.float32), RATE, subtype="PCM_16")
    return path


def index_rows() -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in (SHARED / "magnatagatune" / "index_mtt.tsv").read_text().splitlines()]


def gt_ids(path: Path) -> list[str]:
    return [line.split("\t", 1)[0] for line in path.read_text().splitlines() if line.strip()]


def label_row(path: Path, clip: str) -> list[float]:
    for line in path.read_text().splitlines():
        key, labels = line.split("\t")
        if key == clip:
            return [float(x) for x in labels.strip("[]").split(",")]
    raise KeyError(clip)


def mtat_folder(
    tmp_path: Path,
    tiny: Path,
    files=(
        "index_mtt.tsv",
        "val_gt_mtt.tsv",
        "test_gt_mtt.tsv",
        "output_labels_mtt.txt",
        "tags.npy",
        "valid.npy",
        "test.npy",
    ),
    clips=("val_gt_mtt.tsv", "test_gt_mtt.tsv"),
):
    """<tmp>/magnatagatune with the real metadata and a wav for each clip listed in the `clips` files."""
    meta = tmp_path / "magnatagatune" / "metadata"
    meta.mkdir(parents=True)
    for name in files:
        shutil.copyfile(SHARED / "magnatagatune" / name, meta / name)
    rows = index_rows()
    by_clip = dict(rows)
    listed = {c for name in clips for c in gt_ids(SHARED / "magnatagatune" / name)}
    place(tiny, [mtat.wav_path(tmp_path / "magnatagatune", by_clip[c]) for c in sorted(listed)])
    return meta, rows


@pytest.fixture(scope="module")
def mtat_shared(tmp_path_factory, tiny_wav):
    """One MagnaTagATune folder for the tests that only read it: real metadata, wavs for valid and test."""
    root = tmp_path_factory.mktemp("mtat")
    meta, rows = mtat_folder(root, tiny_wav)
    binary = np.zeros((len(rows), 50), dtype=np.int64)  # row r: tags r % 50 and (r // 50) % 50
    binary[np.arange(len(rows)), np.arange(len(rows)) % 50] = 1
    binary[np.arange(len(rows)), (np.arange(len(rows)) // 50) % 50] = 1
    np.save(meta / "binary.npy", binary)
    return root, rows, binary


def synthetic_train_gt(meta: Path, rows, n_tags: int = 50) -> list[str]:
    """train_gt_mtt.tsv in the real format: the three broken clips and five others."""
    broken = list(BROKEN_CLIPS)
    normal = [clip for clip, _ in rows[100:105]]
    lines = []
    for k, clip in enumerate(broken + normal):
        vector = [0.0] * n_tags
        vector[k % n_tags] = 1.0
        lines.append(f"{clip}\t{vector}")
    (meta / "train_gt_mtt.tsv").write_text("\n".join(lines) + "\n")
    return normal


# -- MagnaTagATune -----------------------------------------------------------------------------
def test_mtat_pons2017_valid_and_test_have_the_published_sizes_and_tag_order(mtat_shared):
    tmp_path = mtat_shared[0]
    valid = MagnaTagATune(tmp_path, "valid", split="pons2017")
    test = MagnaTagATune(tmp_path, "test", split="pons2017")
    assert (len(valid), len(test)) == (1825, 5329)
    expected = read_label_names(SHARED / "magnatagatune" / "output_labels_mtt.txt")
    assert valid.tag_names == expected == [str(t) for t in np.load(SHARED / "magnatagatune" / "tags.npy")]
    assert valid.n_classes == 50 and valid.multilabel
    assert valid.targets.shape == (1825, 50) and valid.targets.dtype == np.float32
    assert valid.tag_names[3] == "techno" and valid.tag_names[21] == "no vocals"


def test_mtat_pons2017_labels_of_known_clips(mtat_shared):
    tmp_path = mtat_shared[0]
    valid = MagnaTagATune(tmp_path, "valid")
    i14, i21 = valid.clip_ids.index("14"), valid.clip_ids.index("21")
    assert [valid.tag_names[j] for j in np.flatnonzero(valid.targets[i14])] == ["techno"]
    assert [valid.tag_names[j] for j in np.flatnonzero(valid.targets[i21])] == ["electronic", "rock", "fast"]
    assert valid.files[i14] == tmp_path / "magnatagatune/wav/c/lvx_nova-lvx_nova-01-contimune-30-59.wav"
    assert valid.label(i21).tolist() == label_row(SHARED / "magnatagatune" / "val_gt_mtt.tsv", "21")
    gt = SHARED / "magnatagatune" / "test_gt_mtt.tsv"
    test = MagnaTagATune(tmp_path, "test")
    assert test.clip_ids == gt_ids(gt)  # file order kept
    assert test.targets[-1].tolist() == label_row(gt, test.clip_ids[-1])


def test_mtat_sota_split_reads_index_rows_not_clip_ids(mtat_shared):
    tmp_path, rows, binary = mtat_shared
    valid = MagnaTagATune(tmp_path, "valid", split="sota")
    test = MagnaTagATune(tmp_path, "test", split="sota")
    assert (len(valid), len(test)) == (1529, 4332)
    # valid.npy's first item is "5\tc/lvx_nova-lvx_nova-01-contimune-30-59.mp3": row 5 of the index, clip 14
    assert valid.clip_ids[0] == "14" == rows[5][0]
    assert valid.files[0] == mtat.wav_path(tmp_path / "magnatagatune", rows[5][1])
    assert valid.targets[0].tolist() == binary[5].astype(np.float32).tolist()
    assert valid.tag_names == [str(t) for t in np.load(SHARED / "magnatagatune" / "tags.npy")]
    # every item's path is the path of its index row
    items = np.load(SHARED / "magnatagatune" / "test.npy")
    for item, path in zip(items[:50], test.files[:50]):
        ix, rel = str(item).split("\t")
        assert rows[int(ix)][1] == rel and path == mtat.wav_path(tmp_path / "magnatagatune", rel)


def test_mtat_broken_clips_are_left_out_with_a_logged_note(tmp_path, tiny_wav, caplog):
    meta, rows = mtat_folder(tmp_path, tiny_wav, files=("index_mtt.tsv", "output_labels_mtt.txt", "tags.npy"), clips=())
    normal = synthetic_train_gt(meta, rows)
    by_clip = dict(rows)
    place(tiny_wav, [mtat.wav_path(tmp_path / "magnatagatune", by_clip[c]) for c in list(BROKEN_CLIPS) + normal])
    assert all(by_clip[clip] == rel for clip, rel in BROKEN_CLIPS.items())  # names checked against the index
    with caplog.at_level(logging.INFO, logger="clmr.datasets.magnatagatune"):
        train = MagnaTagATune(tmp_path, "train")
    assert train.clip_ids == normal and len(train) == 5
    assert all(c in caplog.text for c in BROKEN_CLIPS)
    # sota: the broken clips appear as index rows
    row_of = {clip: n for n, (clip, _) in enumerate(rows)}
    items = [f"{row_of[c]}\t{by_clip[c]}" for c in list(BROKEN_CLIPS) + normal]
    np.save(meta / "train.npy", np.array(items))
    np.save(meta / "binary.npy", np.zeros((len(rows), 50), dtype=np.int64))
    assert MagnaTagATune(tmp_path, "train", split="sota").clip_ids == normal


def test_mtat_tag_count_comes_from_the_label_files(tmp_path, tiny_wav):
    meta = tmp_path / "magnatagatune" / "metadata"
    meta.mkdir(parents=True)
    (meta / "index_mtt.tsv").write_text("7\ta/x.mp3\n9\tb/y.mp3\n")
    (meta / "val_gt_mtt.tsv").write_text("7\t[1.0, 0.0, 1.0]\n9\t[0, 1, 0]\n")
    (meta / "output_labels_mtt.txt").write_text("# Output labels\nMTT_LABELS = ['a', 'b', 'c']\n")
    place(tiny_wav, [tmp_path / "magnatagatune/wav/a/x.wav", tmp_path / "magnatagatune/wav/b/y.wav"])
    valid = MagnaTagATune(tmp_path, "valid")
    assert valid.n_classes == 3 and valid.tag_names == ["a", "b", "c"]
    assert valid.targets.tolist() == [[1, 0, 1], [0, 1, 0]]
    (meta / "output_labels_mtt.txt").write_text("MTT_LABELS = ['a', 'b']\n")
    with pytest.raises(DatasetError, match="2 tags.*3 labels"):
        MagnaTagATune(tmp_path, "valid")


def test_mtat_label_strings_are_parsed_never_evaluated(tmp_path, tiny_wav):
    meta = tmp_path / "magnatagatune" / "metadata"
    meta.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (meta / "index_mtt.tsv").write_text("7\ta/x.mp3\n")
    (meta / "val_gt_mtt.tsv").write_text(f"7\t[__import__('pathlib').Path({str(marker)!r}).touch()]\n")
    (meta / "output_labels_mtt.txt").write_text("MTT_LABELS = ['a']\n")
    place(tiny_wav, [tmp_path / "magnatagatune/wav/a/x.wav"])
    with pytest.raises(DatasetError, match="val_gt_mtt.tsv:1"):
        MagnaTagATune(tmp_path, "valid")
    assert not marker.exists()


def test_mtat_missing_metadata_names_each_file_and_the_command(tmp_path):
    (tmp_path / "magnatagatune").mkdir()
    with pytest.raises(DatasetError) as err:
        MagnaTagATune(tmp_path, "train")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{tmp_path / 'magnatagatune'}: no complete MagnaTagATune layout")
    ours, original = text.split("; the original CLMR's lacks ")
    assert "metadata/index_mtt.tsv, metadata/train_gt_mtt.tsv, metadata/output_labels_mtt.txt, wav/" in ours
    assert original.startswith("index_mtt.tsv, train_gt_mtt.tsv, .wav files in 0/ ... f/")
    assert f"python preprocess.py --dataset magnatagatune --dataset_dir {tmp_path} --download" in text
    with pytest.raises(DatasetError, match="magnatagatune: MagnaTagATune folder not found"):
        MagnaTagATune(tmp_path / "elsewhere", "train")
    with pytest.raises(DatasetError, match="unknown MagnaTagATune split"):
        MagnaTagATune(tmp_path, "train", split="won2020")


def test_mtat_missing_audio_is_dropped_with_one_warning(tmp_path, tiny_wav, caplog):
    meta, rows = mtat_folder(tmp_path, tiny_wav, clips=("val_gt_mtt.tsv",))
    valid_ids = gt_ids(meta / "val_gt_mtt.tsv")
    by_clip = dict(rows)
    for clip in valid_ids[:10]:
        mtat.wav_path(tmp_path / "magnatagatune", by_clip[clip]).unlink()
    with caplog.at_level(logging.WARNING):
        valid = MagnaTagATune(tmp_path, "valid")
    assert len(valid) == 1825 - 10 and valid.listed == 1825
    assert valid.clip_ids == valid_ids[10:]
    assert valid.targets.tolist() == [label_row(meta / "val_gt_mtt.tsv", valid_ids[10])] + valid.targets[1:].tolist()
    assert len([r for r in caplog.records if "missing" in r.getMessage()]) == 1
    shutil.rmtree(tmp_path / "magnatagatune" / "wav")
    with pytest.raises(DatasetError, match="preprocess.py --dataset magnatagatune"):
        MagnaTagATune(tmp_path, "valid")


def test_mtat_from_config_and_the_registry(mtat_shared):
    tmp_path = mtat_shared[0]
    cfg = Namespace(
        dataset="magnatagatune", dataset_dir=str(tmp_path), sample_rate=RATE, audio_length=1000, mtat_split="sota"
    )
    assert len(dataset_from_config(cfg, "valid")) == 1529
    assert len(get_dataset("magnatagatune", tmp_path, "valid")) == 1825  # default split: pons2017
    x, y = get_dataset("magnatagatune", tmp_path, "valid", audio_length=100)[0]
    assert x.shape == (1, 100) and y.shape == (50,)


# -- Million Song Dataset ------------------------------------------------------------------------
def msd_folder(tmp_path: Path, tiny: Path):
    meta = tmp_path / "million_song_dataset" / "metadata"
    meta.mkdir(parents=True)
    for name in ("val_gt_msd.tsv", "output_labels_msd.txt"):
        shutil.copyfile(SHARED / "million_song_dataset" / name, meta / name)
    ids = gt_ids(meta / "val_gt_msd.tsv")
    to_7d = {track: str(1000000 + 37 * n) for n, track in enumerate(ids)}
    (meta / "MSD_id_to_7D_id.pkl").write_bytes(pickle.dumps(to_7d, protocol=0))
    base = tmp_path / "million_song_dataset"
    place(tiny, [base / "wav" / Path(msd_module.path_7digital(v)).with_suffix(".wav") for v in to_7d.values()])
    return meta, ids, to_7d


def test_msd_valid_split_has_all_rows_labels_and_tags_in_order(tmp_path, tiny_wav):
    meta, ids, to_7d = msd_folder(tmp_path, tiny_wav)
    valid = MillionSongDataset(tmp_path, "valid")
    assert len(valid) == 11774 and valid.track_ids == ids
    tags = (SHARED / "million_song_dataset" / "50tagList.txt").read_text().split("\n")
    assert valid.tag_names == [t for t in tags if t] and valid.tag_names[0] == "rock" and valid.n_classes == 50
    assert valid.multilabel and valid.targets.shape == (11774, 50)
    # first row: TRYOGXX128F42483A6 tagged 'catchy' (position 39)
    assert valid.track_ids[0] == "TRYOGXX128F42483A6"
    assert [valid.tag_names[j] for j in np.flatnonzero(valid.targets[0])] == ["catchy"]
    assert valid.files[0] == tmp_path / "million_song_dataset/wav/1/0/1000000.clip.wav"
    last = valid.track_ids[-1]
    assert valid.targets[-1].tolist() == label_row(meta / "val_gt_msd.tsv", last)


def test_msd_reads_the_msd_id_layout_of_index_msd_tsv(tmp_path, tiny_wav):
    meta = tmp_path / "million_song_dataset" / "metadata"
    meta.mkdir(parents=True)
    shutil.copyfile(SHARED / "million_song_dataset/output_labels_msd.txt", meta / "output_labels_msd.txt")
    debug = (SHARED / "million_song_dataset/index_msd_debug.tsv").read_text().splitlines()
    shutil.copyfile(SHARED / "million_song_dataset/index_msd_debug.tsv", meta / "index_msd.tsv")
    (meta / "test_gt_msd.tsv").write_text(
        "".join(f"{line.split(chr(9))[0]}\t{[int(n == k) for n in range(50)]}\n" for k, line in enumerate(debug))
    )
    base = tmp_path / "million_song_dataset"
    place(tiny_wav, [base / "wav" / Path(line.split("\t")[1]).with_suffix(".wav") for line in debug[:20]])
    test = MillionSongDataset(tmp_path, "test")
    assert len(test) == 20 and test.listed == 30
    assert test.files[0] == base / "wav/A/A/A/TRAAAAK128F9318786.wav"
    assert test.targets[3].argmax() == 3


def test_msd_missing_files_are_named_with_their_sources(tmp_path):
    with pytest.raises(DatasetError) as err:
        MillionSongDataset(tmp_path, "train")
    text = str(err.value)
    assert "cannot be downloaded" in text and "musicnn-training" in text and "music_dataset_split" in text
    meta = tmp_path / "million_song_dataset" / "metadata"
    meta.mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        MillionSongDataset(tmp_path, "train")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{meta.parent}: no complete Million Song Dataset layout")
    assert "lacks metadata/train_gt_msd.tsv, metadata/output_labels_msd.txt" in text
    assert "jordipons/musicnn-training" in text and "jongpillee/music_dataset_split" in text
    for name in ("val_gt_msd.tsv", "output_labels_msd.txt"):
        shutil.copyfile(SHARED / "million_song_dataset" / name, meta / name)
    with pytest.raises(DatasetError) as err:
        MillionSongDataset(tmp_path, "valid")
    assert "metadata/MSD_id_to_7D_id.pkl or metadata/index_msd.tsv" in str(err.value)


def test_msd_pickles_holding_code_are_refused(tmp_path):
    meta = tmp_path / "million_song_dataset" / "metadata"
    meta.mkdir(parents=True)
    for name in ("val_gt_msd.tsv", "output_labels_msd.txt"):
        shutil.copyfile(SHARED / "million_song_dataset" / name, meta / name)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (meta / "MSD_id_to_7D_id.pkl").write_bytes(pickle.dumps({"TRYOGXX128F42483A6": Evil()}))
    (meta.parent / "wav").mkdir()
    with pytest.raises(DatasetError, match="only plain data"):
        MillionSongDataset(tmp_path, "valid")


def test_msd_preprocess_refuses_to_download(tmp_path):
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        MillionSongDataset.prepare(tmp_path, RATE, download=True)


# -- GTZAN ---------------------------------------------------------------------------------------
def shared_gtzan(subset: str) -> list[str]:
    name = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}[subset]
    return (SHARED / "gtzan" / name).read_text().split()


def test_gtzan_fault_filtered_split_sizes_order_and_labels(tmp_path, tiny_wav):
    base = tmp_path / "gtzan"
    every = [n for s in ("train", "valid", "test") for n in shared_gtzan(s)]
    place(tiny_wav, [base / "wav" / n for n in every])
    sets = {s: GTZAN(tmp_path, s) for s in ("train", "valid", "test")}
    assert [len(sets[s]) for s in ("train", "valid", "test")] == [443, 197, 290]
    for s, ds in sets.items():  # torchaudio's lists are the Kereliuk lists of shared/data, in order
        assert [f"{p.parent.name}/{p.name}" for p in ds.files] == shared_gtzan(s)
    train = sets["train"]
    assert (
        train.tag_names
        == list(GENRES)
        == ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    )
    assert not train.multilabel and train.targets.dtype == np.int64
    assert train.files[0].name == "blues.00029.wav" and train.targets[0] == 0
    rock = [i for i, p in enumerate(train.files) if p.name.startswith("rock.")]
    assert rock and set(train.targets[rock].tolist()) == {9}
    assert int(train.label(rock[0])) == 9
    assert len(set(every)) == 930


def test_gtzan_missing_audio_says_the_host_is_dead(tmp_path):
    with pytest.raises(DatasetError, match="offline") as err:
        GTZAN(tmp_path, "train")
    assert str(tmp_path / "gtzan" / "genres") in str(err.value)
    with pytest.raises(DatasetError, match="opihi.cs.uvic.ca"):
        GTZAN.prepare(tmp_path, RATE, download=True)


def test_gtzan_preprocess_converts_genres_to_wav_and_the_loader_reads_it(tmp_path):
    genres = tmp_path / "gtzan" / "genres"
    names = shared_gtzan("valid")[:4]
    for n in names:
        (genres / n).parent.mkdir(parents=True, exist_ok=True)
        sf.write((genres / n).with_suffix(".au"), 0.1 * np.ones(RATE // 10), RATE, format="AU")
    manifest = GTZAN.prepare(tmp_path, 16000)
    assert manifest["counts"]["converted"] == 4
    valid = GTZAN(tmp_path, "valid", sample_rate=16000)
    assert len(valid) == 4 and valid.listed == 197
    assert valid.infos[0].sample_rate == 16000 and valid.infos[0].frames == 1600


def test_gtzan_split_files_in_the_folder_override_torchaudios(tmp_path, tiny_wav):
    base = tmp_path / "gtzan"
    place(tiny_wav, [base / "wav/jazz/jazz.00001.wav", base / "wav/pop/pop.00002.wav"])
    (base / "test_filtered.txt").write_text("jazz/jazz.00001.wav\npop/pop.00002.wav\n")
    test = GTZAN(tmp_path, "test")
    assert test.targets.tolist() == [5, 7] and gtzan_module.split_names("test", base) == ["jazz.00001", "pop.00002"]


# -- LibriSpeech -------------------------------------------------------------------------------
def librispeech_tree(tmp_path: Path, speakers=(19, 103, 1034), chapters=2, per_chapter=6):
    root = tmp_path / "librispeech" / "LibriSpeech" / "train-clean-100"
    for spk in speakers:
        for c in range(chapters):
            folder = root / str(spk) / str(100 + c)
            folder.mkdir(parents=True)
            lines = []
            for u in range(per_chapter):
                uid = f"{spk}-{100 + c}-{u:04d}"
                sf.write(folder / f"{uid}.flac", 0.1 * np.ones(1600), 16000, format="FLAC")
                lines.append(f"{uid} HELLO WORLD")
            (folder / f"{spk}-{100 + c}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_speaker_identification_through_torchaudio(tmp_path):
    librispeech_tree(tmp_path)
    cfg = Namespace(
        dataset="librispeech",
        dataset_dir=str(tmp_path),
        sample_rate=RATE,
        audio_length=1000,
        workers=0,
        download=False,
        librispeech_url="train-clean-100",
    )
    manifest = LibriSpeech.prepare(tmp_path, RATE, url="train-clean-100")
    assert manifest["counts"] == {"converted": 36, "skipped": 0, "failed": 0}
    sets = {s: dataset_from_config(cfg, s) for s in ("train", "valid", "test")}
    assert [len(sets[s]) for s in ("train", "valid", "test")] == [30, 3, 3]
    train = sets["train"]
    assert train.tag_names == ["19", "103", "1034"] and not train.multilabel
    assert train.targets.dtype == np.int64 and sorted(set(train.targets.tolist())) == [0, 1, 2]
    assert sets["test"].files[0].name == "19-101-0003.wav" and sets["test"].targets[0] == 0
    assert not set(train.files) & set(sets["valid"].files) | set(sets["test"].files) & set(train.files)
    assert train.infos[0].sample_rate == RATE


def test_librispeech_missing_folder_names_the_command(tmp_path):
    with pytest.raises(DatasetError, match="preprocess.py --dataset librispeech .* --download"):
        LibriSpeech(tmp_path, "train")
