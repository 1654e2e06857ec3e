"""Downloads against a small HTTP server on 127.0.0.1: checksums, resumed transfers, zip safety, MTAT end to end."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from clmr.datasets import magnatagatune as mtat
from clmr.datasets.download import DownloadError, download, extract_zip, file_digest, merge_parts, verify
from clmr.datasets.magnatagatune import BROKEN_CLIPS, MagnaTagATune


class FakeHost:
    """Serves `files` (path -> bytes) with HTTP Range support; can cut a response short or ignore Range."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before the connection drops (once)
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.requests.append((self.path, self.headers.get("Range")))
                body = host.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not host.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                cut = host.cut_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host():
    h = FakeHost()
    yield h
    h.close()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


# -- download ------------------------------------------------------------------------------------
def test_download_writes_the_file_and_a_second_call_makes_no_request(host, tmp_path):
    data = bytes(range(256)) * 1000
    host.files["/a.bin"] = data
    out = download(f"{host.url}/a.bin", tmp_path / "a.bin", md5(data))
    assert out.read_bytes() == data and not (tmp_path / "a.bin.part").exists()
    download(f"{host.url}/a.bin", tmp_path / "a.bin", md5(data))
    assert len(host.requests) == 1


def test_checksum_mismatch_is_detected_and_nothing_is_kept(host, tmp_path):
    host.files["/a.bin"] = b"tampered bytes"
    expected = md5(b"original bytes")
    with pytest.raises(DownloadError, match=f"checksum mismatch.*expected {expected[4:]}"):
        download(f"{host.url}/a.bin", tmp_path / "a.bin", expected)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_an_interrupted_download_is_resumed_with_a_range_request(host, tmp_path):
    data = np.random.default_rng(0).bytes(300_000)
    host.files["/big.bin"] = data
    host.cut_after["/big.bin"] = 100_000
    download(f"{host.url}/big.bin", tmp_path / "big.bin", md5(data), retries=2)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert host.requests[0] == ("/big.bin", None)
    assert host.requests[1][1] is not None and host.requests[1][1].startswith("bytes=")
    assert int(host.requests[1][1].split("=")[1].rstrip("-")) >= 100_000 - 1


def test_a_part_file_left_by_an_earlier_run_is_continued_not_restarted(host, tmp_path):
    data = np.random.default_rng(1).bytes(50_000)
    host.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data[:20_000])
    download(f"{host.url}/f.bin", tmp_path / "f.bin", md5(data))
    assert host.requests == [("/f.bin", "bytes=20000-")]
    assert (tmp_path / "f.bin").read_bytes() == data
    # a complete .part (the server answers 416) is verified and renamed
    (tmp_path / "g.bin.part").write_bytes(data)
    host.files["/g.bin"] = data
    download(f"{host.url}/g.bin", tmp_path / "g.bin", md5(data))
    assert (tmp_path / "g.bin").read_bytes() == data


def test_a_server_that_ignores_range_makes_the_download_start_over(host, tmp_path):
    data = b"0123456789" * 1000
    host.files["/f.bin"] = data
    host.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"garbage!")
    download(f"{host.url}/f.bin", tmp_path / "f.bin", md5(data))
    assert (tmp_path / "f.bin").read_bytes() == data


def test_missing_remote_file_is_a_clear_error(host, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{host.url}/nope", tmp_path / "nope")


def test_git_blob_checksums_match_git_hash_object(tmp_path):
    (tmp_path / "x").write_bytes(b"hello\n")
    assert file_digest(tmp_path / "x", "git-blob") == "ce013625030ba8dba906f756967f9e9ca394464a"
    verify(tmp_path / "x", "git-blob:ce013625")
    with pytest.raises(DownloadError):
        verify(tmp_path / "x", "git-blob:deadbeef")


# -- archives ------------------------------------------------------------------------------------
def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_parts_merge_and_extract(tmp_path):
    data = zip_bytes({"0/a.mp3": b"a" * 5000, "f/b.mp3": b"b" * 7000})
    third = len(data) // 3
    parts = []
    for n, chunk in enumerate([data[:third], data[third : 2 * third], data[2 * third :]], 1):
        parts.append(tmp_path / f"mp3.zip.00{n}")
        parts[-1].write_bytes(chunk)
    merged = merge_parts(parts, tmp_path / "mp3.zip")
    assert merged.read_bytes() == data
    extract_zip(merged, tmp_path / "out")
    assert (tmp_path / "out/0/a.mp3").read_bytes() == b"a" * 5000
    assert (tmp_path / "out/f/b.mp3").read_bytes() == b"b" * 7000


@pytest.mark.parametrize("evil", ["../evil.mp3", "0/../../evil.mp3", "/tmp/evil.mp3", "..\\evil.mp3"])
def test_a_zip_member_leaving_the_target_is_refused_before_anything_is_written(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"0/fine.mp3": b"ok", evil: b"pwned"}))
    target = tmp_path / "a" / "target"
    with pytest.raises(DownloadError, match="refusing archive member"):
        extract_zip(archive, target)
    assert not (target / "0" / "fine.mp3").exists()
    assert not (tmp_path / "a" / "evil.mp3").exists() and not (tmp_path / "evil.mp3").exists()


def test_a_damaged_archive_is_a_clear_error(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DownloadError, match="not a readable zip"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "out")


# -- MagnaTagATune end to end ---------------------------------------------------------------------
def mp3_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="MP3", subtype="MPEG_LAYER_III")
    return buf.getvalue()


def test_mtat_download_verify_extract_convert_and_load_end_to_end(host, tmp_path, monkeypatch):
    """preprocess.py --download against a fake host: parts fetched (one cut short), md5-checked, merged,
    extracted, converted (the broken clip skipped with its reason), then read by the loader."""
    import preprocess

    clips = {
        "2": "f/a-30-59.mp3",
        "6": "f/a-146-175.mp3",
        "14": "c/b-30-59.mp3",
        "21": "c/b-233-262.mp3",
        "35644": BROKEN_CLIPS["35644"],
    }
    archive = zip_bytes({rel: (b"" if clip in BROKEN_CLIPS else mp3_bytes()) for clip, rel in clips.items()})
    third = len(archive) // 3
    parts = {
        "mp3.zip.001": archive[:third],
        "mp3.zip.002": archive[third : 2 * third],
        "mp3.zip.003": archive[2 * third :],
    }
    annotations = b"clip_id\tguitar\ttechno\tmp3_path\n"
    metadata = {
        "index_mtt.tsv": "".join(f"{c}\t{r}\n" for c, r in clips.items()).encode(),
        "train_gt_mtt.tsv": b"2\t[1.0, 0.0, 0.0]\n6\t[0.0, 1.0, 0.0]\n35644\t[1.0, 1.0, 0.0]\n",
        "val_gt_mtt.tsv": b"14\t[0.0, 0.0, 1.0]\n",
        "test_gt_mtt.tsv": b"21\t[1.0, 0.0, 1.0]\n",
        "output_labels_mtt.txt": b"# Output labels\nMTT_LABELS = ['guitar', 'techno', 'piano']\n",
    }
    for name, data in {**parts, "annotations_final.csv": annotations}.items():
        host.files[f"/mtat/{name}"] = data
    for name, data in metadata.items():
        host.files[f"/pons/{name}"] = data
    host.cut_after["/mtat/mp3.zip.002"] = len(parts["mp3.zip.002"]) // 2
    monkeypatch.setattr(mtat, "AUDIO_PARTS", {n: md5(d) for n, d in parts.items()})
    monkeypatch.setattr(mtat, "ANNOTATIONS", {"annotations_final.csv": md5(annotations)})
    monkeypatch.setattr(mtat, "SPLIT_FILES", {"pons2017": {n: md5(d) for n, d in metadata.items()}})

    argv = [
        "--dataset",
        "magnatagatune",
        "--dataset_dir",
        str(tmp_path),
        "--download",
        "--sample_rate",
        "8000",
        "--mtat_base_url",
        f"{host.url}/mtat",
        "--mtat_pons2017_url",
        f"{host.url}/pons",
    ]
    preprocess.main(argv)
    base = tmp_path / "magnatagatune"
    assert sorted(p.name for p in (base / "downloads").iterdir()) == [
        "annotations_final.csv",
        "mp3.zip.001",
        "mp3.zip.002",
        "mp3.zip.003",
    ]
    assert any(rng for path, rng in host.requests if path == "/mtat/mp3.zip.002")  # resumed
    manifest = __import__("json").loads((base / "wav" / "manifest.json").read_text())
    assert manifest["counts"] == {"converted": 4, "skipped": 1, "failed": 0}
    assert "35644" in manifest["skipped"][0]["reason"] and "broken" in manifest["skipped"][0]["reason"]

    train = MagnaTagATune(tmp_path, "train", sample_rate=8000)
    assert train.clip_ids == ["2", "6"] and train.tag_names == ["guitar", "techno", "piano"]
    assert train.targets.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert train.infos[0].sample_rate == 8000 and train.infos[0].frames > 3000
    assert len(MagnaTagATune(tmp_path, "test", sample_rate=8000)) == 1

    # a second run: nothing fetched again, nothing converted again
    requests_before = len(host.requests)
    preprocess.main(argv)
    assert len(host.requests) == requests_before
    again = __import__("json").loads((base / "wav" / "manifest.json").read_text())
    assert again["counts"] == {"converted": 0, "skipped": 5, "failed": 0}


def test_mtat_download_with_a_wrong_checksum_stops_with_the_file_named(host, tmp_path, monkeypatch):
    host.files["/mtat/mp3.zip.001"] = b"not the real part"
    monkeypatch.setattr(mtat, "AUDIO_PARTS", {"mp3.zip.001": md5(b"the real part")})
    monkeypatch.setattr(mtat, "ANNOTATIONS", {})
    monkeypatch.setattr(mtat, "SPLIT_FILES", {})
    with pytest.raises(DownloadError, match="mp3.zip.001.*checksum mismatch"):
        MagnaTagATune.prepare(tmp_path, 8000, download=True, base_url=f"{host.url}/mtat")


def test_mtat_download_after_a_manual_extraction_fetches_only_the_metadata(host, tmp_path, monkeypatch):
    mp3 = tmp_path / "magnatagatune" / "mp3"
    for d in "0123456789abcdef":
        (mp3 / d).mkdir(parents=True)
        (mp3 / d / f"x-{d}-1-30.mp3").write_bytes(mp3_bytes(0.2))
    index = "".join(f"{n}\t{d}/x-{d}-1-30.mp3\n" for n, d in enumerate("0123456789abcdef")).encode()
    host.files["/pons/index_mtt.tsv"] = index
    monkeypatch.setattr(mtat, "AUDIO_PARTS", {"mp3.zip.001": md5(b"never fetched")})
    monkeypatch.setattr(mtat, "ANNOTATIONS", {})
    monkeypatch.setattr(mtat, "SPLIT_FILES", {"pons2017": {"index_mtt.tsv": md5(index)}})
    manifest = MagnaTagATune.prepare(
        tmp_path, 8000, download=True, base_url=f"{host.url}/mtat", split_urls={"pons2017": f"{host.url}/pons"}
    )
    assert [path for path, _ in host.requests] == ["/pons/index_mtt.tsv"]
    assert manifest["counts"]["converted"] == 16
