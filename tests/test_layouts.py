"""The original CLMR's on-disk layouts, read as they are: the same tracks, labels and splits as clmr's layout.

Both layouts are built from the real public metadata files (../shared/data) with tiny generated wav files.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clmr.datasets import DatasetError, layout_lines
from clmr.datasets.magnatagatune import MagnaTagATune
from conftest import assert_refused, place
from conftest import tiny_flags as tiny_run_flags

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RATE = 22050
MTAT_FILES = ("index_mtt.tsv", "val_gt_mtt.tsv", "test_gt_mtt.tsv", "tags.npy", "valid.npy", "test.npy")

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (real metadata files) not present")


def write_noise(path: Path, seconds: float, rate: int = RATE, seed: int = 0, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * rate), channels)).astype(np.float32)
    sf.write(path, audio, rate, subtype="PCM_16")


def linker(tiny: Path):
    """`wav(path)` for the layout builders: a hard link of the tiny wav at `path`."""
    return lambda path: place(tiny, [path])


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def tiny_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.wav"
    sf.write(path, np.zeros(64, dtype=np.float32), RATE, subtype="PCM_16")
    return path


# -- MagnaTagATune -----------------------------------------------------------------------------------
def mtat_index() -> dict[str, str]:
    rows = (SHARED / "magnatagatune" / "index_mtt.tsv").read_text().splitlines()
    return dict(line.split("\t") for line in rows)


def mtat_binary(n_rows: int) -> np.ndarray:
    binary = np.zeros((n_rows, 50), dtype=np.int64)  # row r: tags r % 50 and (r // 50) % 50
    binary[np.arange(n_rows), np.arange(n_rows) % 50] = 1
    binary[np.arange(n_rows), (np.arange(n_rows) // 50) % 50] = 1
    return binary


def original_mtat(base: Path, wav, files=MTAT_FILES) -> None:
    """`base` in the original CLMR's layout: the split files in it, each .wav (and a stand-in .mp3) in 0/ ... f/."""
    base.mkdir(parents=True)
    for name in files:
        shutil.copyfile(SHARED / "magnatagatune" / name, base / name)
    index = mtat_index()
    np.save(base / "binary.npy", mtat_binary(len(index)))
    for rel in index.values():
        wav(base / Path(rel).with_suffix(".wav"))
        (base / rel).touch()


def ours_mtat(base: Path, wav) -> None:
    """`base` in clmr's layout (what preprocess.py writes): metadata/ and wav/."""
    meta = base / "metadata"
    meta.mkdir(parents=True)
    for name in MTAT_FILES + ("output_labels_mtt.txt",):
        shutil.copyfile(SHARED / "magnatagatune" / name, meta / name)
    index = mtat_index()
    np.save(meta / "binary.npy", mtat_binary(len(index)))
    for rel in index.values():
        wav(base / "wav" / Path(rel).with_suffix(".wav"))


@pytest.fixture(scope="module")
def mtat_both(tmp_path_factory, tiny_wav) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mtat")
    original_mtat(root / "original" / "magnatagatune", linker(tiny_wav))
    ours_mtat(root / "ours" / "magnatagatune", linker(tiny_wav))
    return root / "original", root / "ours"


@pytest.mark.parametrize("split", ["pons2017", "sota"])
@pytest.mark.parametrize("subset", ["valid", "test"])
def test_mtat_original_layout_has_the_tracks_labels_and_tags_of_ours(mtat_both, split, subset):
    original, ours = mtat_both
    before = tree(original)
    a = MagnaTagATune(original, subset, split=split)
    b = MagnaTagATune(ours, subset, split=split)
    assert (
        len(a)
        == len(b)
        == {("pons2017", "valid"): 1825, ("pons2017", "test"): 5329, ("sota", "valid"): 1529, ("sota", "test"): 4332}[
            split, subset
        ]
    )
    assert a.clip_ids == b.clip_ids
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.tag_names == b.tag_names and a.n_classes == 50
    assert [f.relative_to(original / "magnatagatune") for f in a.files] == [
        f.relative_to(ours / "magnatagatune" / "wav") for f in b.files
    ]
    assert a.layout.startswith(f"magnatagatune: original CLMR layout in {original / 'magnatagatune'} (")
    assert b.layout == f"magnatagatune: clmr layout in {ours / 'magnatagatune'} (metadata/, wav/)"
    assert tree(original) == before  # read as it is: nothing converted, written or downloaded


def test_mtat_original_layout_without_tag_names_names_them_by_position(tmp_path, tiny_wav):
    base = tmp_path / "magnatagatune"
    original_mtat(base, linker(tiny_wav), files=("index_mtt.tsv", "val_gt_mtt.tsv"))
    valid = MagnaTagATune(tmp_path, "valid")
    assert valid.tag_names == [f"tag{i}" for i in range(50)] and len(valid) == 1825


def test_mtat_neither_layout_complete_is_one_line_naming_what_each_lacks(tmp_path, tiny_wav):
    base = tmp_path / "magnatagatune"
    original_mtat(base, linker(tiny_wav), files=("index_mtt.tsv",))
    with pytest.raises(DatasetError) as err:
        MagnaTagATune(tmp_path, "valid")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(
        f"{base}: no complete MagnaTagATune layout: clmr's (preprocess.py) lacks "
        f"metadata/index_mtt.tsv, metadata/val_gt_mtt.tsv, metadata/output_labels_mtt.txt, wav/; "
        f"the original CLMR's lacks val_gt_mtt.tsv; "
    )
    for rel in mtat_index().values():
        (base / rel).with_suffix(".wav").unlink()
    shutil.copyfile(SHARED / "magnatagatune" / "val_gt_mtt.tsv", base / "val_gt_mtt.tsv")
    with pytest.raises(DatasetError, match=r"the original CLMR's lacks \.wav files in 0/ \.\.\. f/; "):
        MagnaTagATune(tmp_path, "valid")


def tiny_original_mtat(root: Path, rate: int = RATE) -> Path:
    """An original-layout MagnaTagATune folder with 8 train, 4 valid and 4 test clips of 3 s: real ids, paths and
    labels."""
    base = root / "magnatagatune"
    base.mkdir(parents=True)
    shutil.copyfile(SHARED / "magnatagatune" / "index_mtt.tsv", base / "index_mtt.tsv")
    valid = (SHARED / "magnatagatune" / "val_gt_mtt.tsv").read_text().splitlines()[:4]
    train = (SHARED / "magnatagatune" / "test_gt_mtt.tsv").read_text().splitlines()[:8]
    test = (SHARED / "magnatagatune" / "test_gt_mtt.tsv").read_text().splitlines()[8:12]
    (base / "val_gt_mtt.tsv").write_text("\n".join(valid) + "\n")
    (base / "train_gt_mtt.tsv").write_text("\n".join(train) + "\n")
    (base / "test_gt_mtt.tsv").write_text("\n".join(test) + "\n")
    index = mtat_index()
    for n, line in enumerate(train + valid + test):
        write_noise(base / Path(index[line.split("\t")[0]]).with_suffix(".wav"), 3.0, rate, seed=n)
    return base


def tiny_flags(root: Path, runs: Path, *extra: str) -> list[str]:
    return tiny_run_flags(root, runs, *extra, dataset="magnatagatune")


def test_main_trains_on_an_original_layout_folder_and_says_so_in_one_line(run_script, tmp_path):
    base = tiny_original_mtat(tmp_path / "data")
    result = run_script("main", *tiny_flags(tmp_path / "data", tmp_path / "runs"))
    assert result.code == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "layout in" in line]
    assert said == [f"magnatagatune: original CLMR layout in {base} (index_mtt.tsv, 0/..f/ .wav)"]
    assert "magnatagatune/train: 8 tracks, 50 tags; magnatagatune/valid: 4 tracks, 50 tags" in result.stdout
    assert list((tmp_path / "runs").rglob("*.ckpt"))
    assert not (base / "wav").exists() and not (base / "metadata").exists()


def test_linear_evaluation_reads_an_original_layout_folder_and_says_so_once(run_script, tmp_path):
    from test_linear_evaluation import encoder_checkpoint

    base = tiny_original_mtat(tmp_path / "data")
    ckpt = encoder_checkpoint(tmp_path / "last.ckpt")
    result = run_script(
        "linear_evaluation",
        "--dataset",
        "magnatagatune",
        "--dataset_dir",
        str(tmp_path / "data"),
        "--log_dir",
        str(tmp_path / "runs"),
        "--finetuner_max_epochs",
        "1",
        "--accelerator",
        "cpu",
        "--checkpoint_path",
        str(ckpt),
    )
    assert result.code == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "layout in" in line]
    assert said == [f"magnatagatune: original CLMR layout in {base} (index_mtt.tsv, 0/..f/ .wav)"]
    assert not (base / "wav").exists()


def test_main_refuses_an_incomplete_original_layout_in_one_line(run_script, tmp_path):
    base = tiny_original_mtat(tmp_path / "data")
    (base / "train_gt_mtt.tsv").unlink()
    result = run_script("main", *tiny_flags(tmp_path / "data", tmp_path / "runs"))
    assert result.code == 1
    assert_refused(
        result,
        f"{base}: no complete MagnaTagATune layout",
        "metadata/train_gt_mtt.tsv",
        "the original CLMR's lacks train_gt_mtt.tsv",
    )
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr


def test_main_refuses_original_wav_at_another_rate_in_one_line(run_script, tmp_path):
    base = tiny_original_mtat(tmp_path / "data", rate=16000)
    result = run_script("main", *tiny_flags(tmp_path / "data", tmp_path / "runs"))
    assert result.code == 1
    assert_refused(
        result,
        str(base),
        "1 channel(s) at 16000 Hz in the original CLMR layout",
        "--sample_rate 22050",
        "pass --sample_rate 16000",
    )
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def test_preprocess_on_an_original_layout_has_nothing_to_convert(run_script, tmp_path):
    base = tiny_original_mtat(tmp_path / "data")
    before = tree(base)
    result = run_script("preprocess", "--dataset", "magnatagatune", "--dataset_dir", str(tmp_path / "data"))
    assert result.code == 0, result.stderr
    assert "original CLMR layout" in result.stdout and "nothing to convert" in result.stdout
    assert tree(base) == before


def test_layout_lines_are_one_per_folder(mtat_both):
    original, _ = mtat_both
    both = [MagnaTagATune(original, s) for s in ("valid", "test")]
    assert layout_lines(*both) == [both[0].layout]


# -- Million Song Dataset ------------------------------------------------------------------------------
def msd_ids() -> list[str]:
    rows = (SHARED / "million_song_dataset" / "val_gt_msd.tsv").read_text().splitlines()
    return [line.split("\t", 1)[0] for line in rows if line.strip()]


@pytest.fixture(scope="module")
def msd_both(tmp_path_factory, tiny_wav) -> tuple[Path, Path]:
    """The valid split in both layouts: ours (metadata/, wav/) and the original's (processed_annotations/,
    preprocessed/ with each .wav beside its .mp3), with one made-up 7digital id per track."""
    from clmr.datasets.msd import path_7digital

    root = tmp_path_factory.mktemp("msd")
    ids = msd_ids()
    to_7d = {track: str(1000000 + 37 * n) for n, track in enumerate(ids)}
    for layout, meta_name, audio_name in (
        ("ours", "metadata", "wav"),
        ("original", "processed_annotations", "preprocessed"),
    ):
        base = root / layout / "million_song_dataset"
        meta = base / meta_name
        meta.mkdir(parents=True)
        for name in ("val_gt_msd.tsv", "output_labels_msd.txt"):
            shutil.copyfile(SHARED / "million_song_dataset" / name, meta / name)
        (meta / "MSD_id_to_7D_id.pkl").write_bytes(pickle.dumps(to_7d, protocol=0))
        (meta / "index_msd.tsv").write_text("".join(f"{t}\t{t[2]}/{t[3]}/{t[4]}/{t}.mp3\n" for t in ids))
        place(tiny_wav, [base / audio_name / Path(path_7digital(v)).with_suffix(".wav") for v in to_7d.values()])
    return root / "original", root / "ours"


def test_msd_original_layout_has_the_tracks_labels_and_tags_of_ours(msd_both):
    from clmr.datasets.msd import MillionSongDataset

    original, ours = msd_both
    before = tree(original)
    a, b = MillionSongDataset(original, "valid"), MillionSongDataset(ours, "valid")
    assert len(a) == len(b) == 11774
    assert a.track_ids == b.track_ids == msd_ids()
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.tag_names == b.tag_names and a.tag_names[0] == "rock"
    assert [f.relative_to(original / "million_song_dataset" / "preprocessed") for f in a.files] == [
        f.relative_to(ours / "million_song_dataset" / "wav") for f in b.files
    ]
    assert a.layout == (
        f"msd: original CLMR layout in {original / 'million_song_dataset'} (processed_annotations/, preprocessed/ .wav)"
    )
    assert b.layout == f"msd: clmr layout in {ours / 'million_song_dataset'} (metadata/, wav/)"
    assert tree(original) == before


def test_msd_neither_layout_complete_is_one_line_naming_what_each_lacks(tmp_path):
    from clmr.datasets.msd import MillionSongDataset

    (tmp_path / "million_song_dataset" / "processed_annotations").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        MillionSongDataset(tmp_path, "test")
    text = str(err.value)
    assert "\n" not in text
    assert (
        "the original CLMR's lacks processed_annotations/test_gt_msd.tsv, "
        "processed_annotations/output_labels_msd.txt, processed_annotations/MSD_id_to_7D_id.pkl, "
        ".wav files in preprocessed/;"
    ) in text


# -- GTZAN -----------------------------------------------------------------------------------------
def gtzan_names(subset: str) -> list[str]:
    return (SHARED / "gtzan" / f"{subset}_filtered.txt").read_text().split()


@pytest.mark.parametrize("subset", ["train", "valid", "test"])
def test_gtzan_original_layout_has_the_excerpts_and_genres_of_ours(tmp_path, tiny_wav, subset):
    from clmr.datasets.gtzan import GTZAN

    every = [n for s in ("train", "valid", "test") for n in gtzan_names(s)]
    place(tiny_wav, [tmp_path / "original" / "genres" / n for n in every])  # torchaudio's layout, no gtzan/
    place(tiny_wav, [tmp_path / "ours" / "gtzan" / "wav" / n for n in every])
    before = tree(tmp_path / "original")
    a, b = GTZAN(tmp_path / "original", subset), GTZAN(tmp_path / "ours", subset)
    assert (
        [f"{p.parent.name}/{p.name}" for p in a.files]
        == [f"{p.parent.name}/{p.name}" for p in b.files]
        == gtzan_names(subset)
    )
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.tag_names == b.tag_names
    assert a.layout == f"gtzan: original CLMR layout in {tmp_path / 'original' / 'genres'} (<genre>/<genre>.000NN.wav)"
    assert b.layout == f"gtzan: clmr layout in {tmp_path / 'ours' / 'gtzan'} (wav/)"
    assert tree(tmp_path / "original") == before


def test_gtzan_original_layout_at_another_rate_is_refused_in_one_line(tmp_path):
    from clmr.datasets.gtzan import GTZAN

    write_noise(tmp_path / "genres" / "blues" / "blues.00029.wav", 0.1, rate=44100)
    with pytest.raises(DatasetError) as err:
        GTZAN(tmp_path, "train")
    assert "\n" not in str(err.value) and "1 channel(s) at 44100 Hz in the original CLMR layout of gtzan" in str(
        err.value
    )
    assert "--sample_rate 22050" in str(err.value)


def test_gtzan_original_layout_in_stereo_is_refused_in_one_line(tmp_path):
    from clmr.datasets.gtzan import GTZAN

    write_noise(tmp_path / "genres" / "blues" / "blues.00029.wav", 0.1, channels=2)
    with pytest.raises(DatasetError) as err:
        GTZAN(tmp_path, "train")
    text = str(err.value)
    assert "\n" not in text and "2 channel(s) at 22050 Hz in the original CLMR layout of gtzan" in text
    assert "preprocess.py --dataset gtzan --sample_rate 22050" in text and "pass --sample_rate" not in text


def test_a_folder_in_both_layouts_is_read_in_clmrs(tmp_path):
    base = tiny_original_mtat(tmp_path / "data")
    (base / "metadata").mkdir()
    for name in ("index_mtt.tsv", "val_gt_mtt.tsv"):
        shutil.copyfile(base / name, base / "metadata" / name)
    shutil.copyfile(SHARED / "magnatagatune" / "output_labels_mtt.txt", base / "metadata" / "output_labels_mtt.txt")
    for wav in list(base.rglob("*.wav")):
        (base / "wav" / wav.relative_to(base)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wav, base / "wav" / wav.relative_to(base))
    valid = MagnaTagATune(tmp_path / "data", "valid")
    assert valid.layout.startswith("magnatagatune: clmr layout") and len(valid) == 4
    assert all((base / "wav") in f.parents for f in valid.files)


def test_gtzan_neither_layout_is_one_line_naming_both(tmp_path):
    from clmr.datasets.gtzan import GTZAN

    with pytest.raises(DatasetError) as err:
        GTZAN(tmp_path, "valid")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{tmp_path / 'gtzan'}: no complete GTZAN layout: clmr's")
    assert f"the original CLMR's lacks {tmp_path / 'genres'}/<genre>/<genre>.000NN.wav;" in text and "offline" in text


def test_preprocess_on_original_msd_and_gtzan_has_nothing_to_convert(run_script, tmp_path, msd_both):
    original_msd = msd_both[0]
    result = run_script("preprocess", "--dataset", "msd", "--dataset_dir", str(original_msd))
    assert result.code == 0 and "msd: " in result.stdout and "nothing to convert" in result.stdout, result.stderr
    write_noise(tmp_path / "genres" / "jazz" / "jazz.00001.wav", 0.1)
    before = tree(tmp_path)
    result = run_script("preprocess", "--dataset", "gtzan", "--dataset_dir", str(tmp_path))
    assert result.code == 0 and "original CLMR's GTZAN" in result.stdout and "nothing to convert" in result.stdout
    assert tree(tmp_path) == before
