"""The browser page (web/, clmr/web.py, export.py --web, web/serve.py): it tags a file as predict.py does.

The page runs in headless Chromium (playwright-core from web/node_modules) against web/serve.py on a free
port of 127.0.0.1, one browser launch for every case; the tests skip, saying why, when node, chromium or
web/node_modules are missing. Screenshots are left in runs/web_tests/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from clmr.audio import AudioFileError
from clmr.chunking import chunk_centres_ms, chunk_starts
from clmr.datasets.synthetic import TAGS
from clmr.export import music_like
from clmr.hear import load_model
from clmr.inference import MIN_CHUNK_FRACTION, load_track, predict_files
from conftest import assert_refused, run_script_in_process, write_checkpoints
from web_page import SCREENSHOTS, SR, WEB, L, drive, missing_tools, serving, stereo_with_truth

EXACT = 1e-4  # 22,050 Hz float wav: the same samples reach both runtimes; float32 rounding only (measured 1e-5)
# 44,100 Hz stereo: Chromium resamples in decodeAudioData, predict.py with soxr HQ. Over 8 such 12 s files
# (bench/bench_web.py, docs/PERFORMANCE.md "Browser page") the page's track-level tags were at most 1.1e-3
# from predict.py's (chunks: 3.8e-3), on a test model that magnifies small changes of its input: soxr's own
# output is 4.2e-4 from the exact 22,050 Hz rendering of the same signal there. Twice the worst case measured:
RESAMPLED = 2e-3
TIMEOUT_S = 120  # per page load or file; a page that shows nothing by then has hung
browser = pytest.mark.skipif(bool(missing_tools()), reason=f"browser tests: {missing_tools()}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export.py --web run once on the calibrated test encoder and a random head: (encoder, head, page model)."""
    root = tmp_path_factory.mktemp("web")
    enc, head = write_checkpoints(root)
    result = run_script_in_process(
        "export",
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--out",
        str(root / "exports"),
        "--web",
        str(root / "page_model"),
    )
    assert result.code == 0, result.stderr
    return enc, head, root / "page_model", result.stdout


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The page's test files, by case."""
    root = tmp_path_factory.mktemp("audio")
    stereo, _ = stereo_with_truth(12.0, 44100, seed=0)
    out = {
        "22k": root / "song_22k_mono.wav",
        "44k": root / "song_44k_stereo.wav",
        "padded": root / "jingle_1.5s.wav",
        "short": root / "blip_0.5s.wav",
        "corrupt": root / "broken.wav",
    }
    sf.write(out["22k"], music_like(int(4.5 * L), SR, 3), SR, subtype="FLOAT")  # 4 chunks and half a chunk
    sf.write(out["44k"], stereo, 44100, subtype="FLOAT")
    sf.write(out["padded"], music_like(int(1.5 * SR), SR, 5), SR, subtype="FLOAT")  # one zero-padded chunk
    sf.write(out["short"], music_like(SR // 2, SR, 6), SR, subtype="FLOAT")
    out["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    return out


@pytest.fixture(scope="module")
def page(exported, files):
    """Every browser case in one Chromium launch: {session name: what the page showed}."""
    _, _, model_dir, _ = exported
    info = json.loads((model_dir / "clmr_tagger.json").read_text())
    one_tag_less = json.dumps({**info, "tags": info["tags"][:-1]})
    shots = {"corrupt": {"screenshot": "not_audio.png"}, "22k": {"screenshot": "result.png"}}
    sessions = [
        {"name": "main", "steps": [{"file": str(files[case]), **shots.get(case, {})} for case in MAIN]},
        {
            "name": "missing model",
            "route": {"url": "**/model/clmr_tagger.onnx", "status": 404},
            "steps": [],
            "screenshot": "missing_model.png",
        },
        {"name": "mismatched model", "route": {"url": "**/model/clmr_tagger.json", "body": one_tag_less}},
        {"name": "not a model description", "route": {"url": "**/model/clmr_tagger.json", "body": '{"tags": []}'}},
        {
            "name": "no encoder",
            "route": {"url": "**/model/clmr_encoder.onnx", "status": 404},
            "steps": [{"file": str(files["padded"])}],
        },
    ]
    with serving(model_dir) as url:
        shown = drive(url, sessions, SCREENSHOTS, TIMEOUT_S)
    return {s["name"]: s for s in shown["sessions"]}


@pytest.fixture(scope="module")
def predicted(exported, files):
    """predict.py --json 1 (every tag) and predict.py --embeddings on the page's good files: {case: (json, embedding)}."""
    enc, head, model_dir, _ = exported
    cases = ["22k", "44k", "padded"]
    paths = [str(files[c]) for c in cases]
    tagged = run_script_in_process(
        "predict",
        *paths,
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--json",
        "1",
        "--top_k",
        str(len(TAGS)),
    )
    assert tagged.code == 0, tagged.stderr
    out = model_dir.parent / "embeddings"
    embedded = run_script_in_process("predict", "--embeddings", str(out), *paths, "--checkpoint_path", str(enc))
    assert embedded.code == 0, embedded.stderr
    embeddings = np.load(out / "embeddings.npy")  # rows in the order of the paths
    return {c: (j, e) for c, j, e in zip(cases, json.loads(tagged.stdout), embeddings)}


MAIN = ["corrupt", "short", "22k", "44k", "padded"]  # the files of the main session, in the order uploaded


def shown(page, case: str) -> dict:
    """What the page showed after the file of `case` in the main session."""
    return page["main"]["steps"][MAIN.index(case)]


def worst_difference(page_tags: dict, predicted_tags: dict) -> float:
    assert set(page_tags) == set(predicted_tags) == set(TAGS)
    return max(abs(page_tags[t] - predicted_tags[t]) for t in TAGS)


# -- the page agrees with predict.py -------------------------------------------------------------------
@browser
def test_page_tags_a_22050_hz_file_as_predict_does_within_1e_4(page, predicted, files):
    result, (expected, _) = shown(page, "22k")["result"], predicted["22k"]
    assert result["n_chunks"] == expected["n_chunks"] == 4  # the last half chunk is not scored
    assert result["duration_s"] == pytest.approx(expected["duration_s"], abs=1e-3)
    assert worst_difference(result["tags"], expected["tags"]) <= EXACT
    assert np.ptp(list(expected["tags"].values())) > 0.5  # the tags depend on the audio: the test means something
    bars = shown(page, "22k")["bars"]
    assert [t for t, _ in bars] == list(result["tags"])[:10]  # the top 10 as bars, highest first
    assert np.allclose([p for _, p in bars], list(result["tags"].values())[:10])


@browser
def test_page_chunk_probabilities_are_the_taggers_on_predicts_chunks(page, exported, files):
    enc, head, _, _ = exported
    page_22k = shown(page, "22k")
    (expected,) = predict_files([files["22k"]], load_model(enc, head))
    found = np.array(page_22k["result"]["chunk_probabilities"])
    assert found.shape == expected.chunk_probs.shape
    assert np.abs(found - expected.chunk_probs).max() <= EXACT
    assert np.allclose(page_22k["result"]["chunk_centres_ms"], expected.times_ms)
    assert page_22k["taggramColours"] > len(TAGS)  # the taggram's cells are drawn in many colours


@browser
def test_page_embedding_is_predicts_track_embedding(page, predicted, files):
    embedding = np.array(shown(page, "22k")["result"]["embedding"])
    assert embedding.shape == (512,)
    assert np.abs(embedding - predicted["22k"][1]).max() <= EXACT  # representations of order 1-10


@browser
def test_page_tags_a_44100_hz_stereo_file_as_predict_does_within_the_resampling_tolerance(page, predicted, files):
    result, (expected, _) = shown(page, "44k")["result"], predicted["44k"]
    assert result["n_chunks"] == expected["n_chunks"] == 4
    assert worst_difference(result["tags"], expected["tags"]) <= RESAMPLED
    assert np.ptp(list(expected["tags"].values())) > 0.5


@browser
def test_a_track_shorter_than_a_chunk_is_one_zero_padded_chunk_as_in_predict(page, predicted, files):
    result, (expected, _) = shown(page, "padded")["result"], predicted["padded"]
    assert result["n_chunks"] == expected["n_chunks"] == 1
    assert worst_difference(result["tags"], expected["tags"]) <= EXACT


# -- bad input: a message in the page, and the page goes on working ----------------------------------
@browser
def test_a_file_that_is_not_audio_is_said_in_the_page_and_the_page_goes_on(page, files):
    refused = shown(page, "corrupt")
    assert refused["state"] == "error" and refused["fileEnabled"]
    assert refused["message"].startswith(f"{files['corrupt'].name}: not an audio file this browser can decode")
    assert [shown(page, c)["state"] for c in ("22k", "44k", "padded")] == ["done"] * 3  # later files are tagged
    assert (SCREENSHOTS / "not_audio.png").stat().st_size > 0


@browser
def test_a_file_shorter_than_half_a_chunk_is_said_in_the_page_as_predict_says_it(page, files):
    page_short = shown(page, "short")
    with pytest.raises(AudioFileError) as refused:
        load_track(files["short"])
    assert page_short["state"] == "error"
    assert page_short["message"] == str(refused.value).replace(str(files["short"]), files["short"].name)
    assert "too short (0.50 s; at least 1.34 s, half a chunk, is needed)" in page_short["message"]


@browser
def test_a_missing_model_is_said_in_the_page(page):
    loaded = page["missing model"]["loaded"]
    assert loaded["state"] == "error" and not loaded["fileEnabled"]
    assert "The model could not be loaded: no tagger model at" in loaded["message"]
    assert "clmr_tagger.onnx (HTTP 404); export one: python export.py" in loaded["message"]


@browser
def test_a_model_json_that_does_not_match_the_model_is_said_in_the_page(page):
    loaded = page["mismatched model"]["loaded"]
    assert loaded["state"] == "error" and not loaded["fileEnabled"]
    assert f"outputs {len(TAGS)} values per chunk, but {len(TAGS) - 1} are expected" in loaded["message"]


@browser
def test_a_model_json_that_is_not_from_export_is_said_in_the_page(page):
    loaded = page["not a model description"]["loaded"]
    assert loaded["state"] == "error" and not loaded["fileEnabled"]
    assert "clmr_tagger.json is not a clmr_tagger.json from export.py: bad or missing tags" in loaded["message"]
    assert "sample_rate" in loaded["message"] and "audio_length" in loaded["message"]


@browser
def test_without_the_encoder_the_page_tags_but_gives_no_embedding(page, predicted, files):
    session = page["no encoder"]
    assert "no encoder, so no embedding" in session["loaded"]["modelInfo"]
    result = session["steps"][0]["result"]
    assert result["embedding"] is None
    assert worst_difference(result["tags"], predicted["padded"][0]["tags"]) <= EXACT


@browser
def test_page_asks_nothing_of_any_server_but_its_own(page):
    assert {name: s["external"] for name, s in page.items()} == {name: [] for name in page}  # works offline
    requested = set(page["main"]["requested"])  # the worker's requests are seen too
    assert {"/model/clmr_tagger.onnx", "/model/clmr_encoder.onnx", "/js/worker.js"} <= requested
    assert any(p.startswith("/node_modules/onnxruntime-web/dist/") and p.endswith(".wasm") for p in requested)


@browser
def test_page_is_cross_origin_isolated_and_runs_webassembly_on_threads(page):
    loaded = page["main"]["loaded"]
    assert loaded["isolated"] is True  # serve.py's COOP/COEP headers
    threads = min(loaded["cores"], 8)  # one per core the browser sees, up to 8 (1 if not isolated)
    assert f"on WebAssembly, {threads} thread" in loaded["modelInfo"]  # no GPU adapter in headless Chromium here
    assert shown(page, "22k")["result"]["model"]["threads"] == threads


# -- the page's chunking, in node, at every edge length -------------------------------------------------
@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_page_cuts_the_chunks_predict_cuts_and_refuses_what_predict_refuses():
    minimum = int(np.ceil(MIN_CHUNK_FRACTION * L))
    lengths = [minimum - 1, minimum, L - 1, L, L + 1, 2 * L - 1, 2 * L, 10 * L + 5]
    script = (
        f"import {{ chunkTrack }} from {json.dumps((WEB / 'js' / 'audio.js').as_uri())};\n"
        f"const out = {{}};\n"
        f"for (const n of {json.dumps(lengths)}) {{\n"
        f"  const mono = Float32Array.from({{ length: n }}, (_, i) => i + 1);\n"
        f"  try {{ const c = chunkTrack(mono, {{ sampleRate: {SR}, audioLength: {L} }}, 'x.wav');\n"
        f"    out[n] = {{ n: c.nChunks, last: c.chunks[c.chunks.length - 1], size: c.chunks.length, centres: c.centresMs }};\n"
        f"  }} catch (err) {{ out[n] = {{ error: err.message }}; }}\n"
        f"}}\nconsole.log(JSON.stringify(out));"
    )
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    for n in lengths:
        cut = page[str(n)]
        if n < minimum:
            assert "too short" in cut["error"]
            continue
        starts = chunk_starts(n, L)
        assert cut["n"] == len(starts) and cut["size"] == len(starts) * L
        assert cut["last"] == (0 if n < L else starts[-1] + L)  # zero padding, or the last sample of the last chunk
        assert np.allclose(cut["centres"], chunk_centres_ms(n, SR, L))


# -- export.py --web and serve.py, without a browser ---------------------------------------------------
def test_export_web_puts_the_tagger_its_json_and_the_encoder_in_the_page_folder(exported):
    _, _, model_dir, printed = exported
    assert sorted(p.name for p in model_dir.iterdir()) == ["clmr_encoder.onnx", "clmr_tagger.json", "clmr_tagger.onnx"]
    assert (model_dir / "clmr_tagger.onnx").read_bytes() == (
        model_dir.parent / "exports" / "clmr_tagger.onnx"
    ).read_bytes()
    assert f"{model_dir}: clmr_encoder.onnx, clmr_tagger.onnx, clmr_tagger.json for the page" in printed


def test_min_samples_in_the_json_is_the_shortest_track_predict_accepts(exported, tmp_path):
    info = json.loads((exported[2] / "clmr_tagger.json").read_text())
    sf.write(tmp_path / "enough.wav", music_like(info["min_samples"], SR, 1), SR, subtype="FLOAT")
    sf.write(tmp_path / "too_short.wav", music_like(info["min_samples"] - 1, SR, 1), SR, subtype="FLOAT")
    assert load_track(tmp_path / "enough.wav").shape == (info["min_samples"],)
    with pytest.raises(AudioFileError, match="too short"):
        load_track(tmp_path / "too_short.wav")


def test_export_web_without_a_head_is_refused_before_exporting(exported, tmp_path):
    enc = exported[0]
    result = run_script_in_process(
        "export", "--checkpoint_path", str(enc), "--out", str(tmp_path / "out"), "--web", str(tmp_path / "page")
    )
    assert_refused(result, "--web", "--finetuner_checkpoint_path")
    assert not (tmp_path / "out").exists() and not (tmp_path / "page").exists()
    (tmp_path / "a_file").write_text("")
    result = run_script_in_process(
        "export",
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(exported[1]),
        "--out",
        str(tmp_path / "out"),
        "--web",
        str(tmp_path / "a_file"),
    )
    assert_refused(result, "--web", "a_file", "not a folder")
    assert not (tmp_path / "out").exists()


def test_serve_gives_the_page_and_model_with_the_headers_of_cross_origin_isolation(exported):
    with serving(exported[2]) as url:
        with urllib.request.urlopen(url) as response:
            assert b'<script type="module" src="js/main.js">' in response.read()
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(url + "model/clmr_tagger.json") as response:
            assert json.loads(response.read())["tags"] == TAGS
        with urllib.request.urlopen(url + "js/worker.js") as response:
            assert response.headers["Content-Type"].startswith("text/javascript")


def test_serve_on_a_port_in_use_is_a_one_line_error(exported):
    with serving(exported[2]) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        done = subprocess.run(
            [sys.executable, str(WEB / "serve.py"), "--port", port, "--model", str(exported[2])],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr
