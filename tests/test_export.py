"""ONNX export (clmr/export.py, export.py): parity with PyTorch at batch 1 and 3, tag names, bad checkpoints."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import export as export_script
from clmr.checkpoints import CheckpointError, load_encoder
from clmr.datasets.synthetic import TAGS
from clmr.export import MIN_OPSET, ExportError, Tagger, check_inputs, export_onnx, max_opset, music_like, written_opset
from clmr.hear import load_model
from clmr.models import SampleCNN
from conftest import write_checkpoints

L, SR = 59049, 22050


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An encoder in our pre-training checkpoint format and a linear head in the probe's, on the synthetic tags."""
    return write_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """export.py run once on encoder + head; its printed report."""
    out = tmp_path_factory.mktemp("exports")
    enc, head = checkpoints
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        export_script.main(["--checkpoint_path", str(enc), "--finetuner_checkpoint_path", str(head), "--out", str(out)])
    return out, printed.getvalue()


def _run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _fresh_inputs(batch: int) -> list[np.ndarray]:
    """Audio the export's own check did not see: music-like clips, and noise at -20 dBFS first in the batch."""
    rng = np.random.default_rng(100 + batch)
    x = np.stack([music_like(L, SR, 50 + k)[None] for k in range(batch)])
    if batch > 1:
        x[0] = 0.1 * rng.standard_normal((1, L))
    return [x]


def test_encoder_onnx_matches_pytorch_at_batch_1_and_3(exported, checkpoints):
    out, printed = exported
    path = out / "clmr_encoder.onnx"
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, L]  # batch is symbolic
    encoder = load_encoder(checkpoints[0])
    for batch in (1, 3):
        for x in _fresh_inputs(batch):
            with torch.no_grad():
                expected = encoder(torch.from_numpy(x)).numpy()
            found = _run(path, x)
            assert found.shape == (batch, 512)
            assert np.abs(found - expected).max() <= 1e-4
            assert expected.std(axis=-1).min() > 1e-3  # a representation that depends on the audio
    assert f"{path}" in printed and "MB" in printed and "OK" in printed


def test_tagger_onnx_gives_the_heads_probabilities_with_tag_names_beside_it(exported, checkpoints):
    out, printed = exported
    model = load_model(*checkpoints)
    for batch in (1, 3):
        for x in _fresh_inputs(batch):
            expected = model.tag_probabilities(model(torch.from_numpy(x)))
            found = _run(out / "clmr_tagger.onnx", x)
            assert found.shape == (batch, len(TAGS))
            assert np.abs(found - expected).max() <= 1e-4
            assert found.min() >= 0 and found.max() <= 1
    info = json.loads((out / "clmr_tagger.json").read_text())
    assert info["tags"] == TAGS and info["activation"] == "sigmoid"
    assert info["sample_rate"] == SR and info["audio_length"] == L
    props = {p.key: p.value for p in onnx.load(str(out / "clmr_tagger.onnx")).metadata_props}
    assert json.loads(props["tags"]) == TAGS
    assert "clmr_tagger.onnx" in printed and "clmr_tagger.json" in printed


def test_parity_checks_cover_random_and_music_like_audio_at_batch_1_and_3():
    names = [name for name, _ in check_inputs(64, SR)]
    assert names == [
        "random audio, batch 1",
        "music-like audio, batch 1",
        "random audio, batch 3",
        "music-like audio, batch 3",
    ]


def test_single_label_head_outputs_a_softmax():
    tagger = Tagger(nn.Flatten(), nn.Linear(8, 4), multilabel=False)
    probs = tagger(torch.randn(5, 1, 8))
    assert torch.allclose(probs.sum(dim=1), torch.ones(5))


def test_a_model_that_fails_the_parity_check_is_not_written(tmp_path):
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    target = tmp_path / "tiny.onnx"
    checks = export_onnx(module, target, 64, "out", check=check_inputs(64, SR))
    assert target.is_file() and max(d for _, d in checks) <= 1e-4
    before = target.read_bytes()
    with pytest.raises(ExportError, match="differ"):
        export_onnx(
            nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), target, 64, "out", check=check_inputs(64, SR), tolerance=-1.0
        )
    assert target.read_bytes() == before  # the good model was not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no temporary file left


def small_sample_cnn() -> nn.Module:
    """SampleCNN's layer kinds (strided conv, conv-BN-ReLU-max-pool, linear head, sigmoid) on 27 samples."""
    return nn.Sequential(
        nn.Conv1d(1, 8, 3, stride=3),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Conv1d(8, 8, 3, padding=1),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.MaxPool1d(3),
        nn.Flatten(),
        nn.Linear(24, 3),
        nn.Sigmoid(),
    ).eval()


def test_the_tagger_exports_at_the_oldest_opset_of_the_range(tmp_path):
    encoder = SampleCNN()
    encoder.fc = nn.Identity()
    target = tmp_path / "tagger.onnx"
    checks = export_onnx(
        Tagger(encoder, nn.Linear(512, 3)).eval(),
        target,
        L,
        "probabilities",
        opset=MIN_OPSET,
        check=check_inputs(L, SR, batches=(1,)),
    )
    assert written_opset(onnx.load(str(target))) == MIN_OPSET and max(d for _, d in checks) <= 1e-4


def test_sample_cnn_layers_export_at_the_newest_opset_of_the_range(tmp_path):
    target = tmp_path / "small.onnx"
    checks = export_onnx(small_sample_cnn(), target, 27, "out", opset=max_opset(), check=check_inputs(27, SR))
    assert written_opset(onnx.load(str(target))) == max_opset() and max(d for _, d in checks) <= 1e-4


def test_an_opset_the_exporter_would_not_write_is_an_error_not_a_relabelled_file(tmp_path):
    with pytest.raises(ExportError, match=f"the exporter wrote opset 18, not the requested {MIN_OPSET - 1}"):
        export_onnx(small_sample_cnn(), tmp_path / "small.onnx", 27, "out", opset=MIN_OPSET - 1)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_a_checkpoint_that_is_not_a_clmr_encoder_is_a_clear_error(checkpoints, tmp_path):
    _, head = checkpoints
    with pytest.raises(CheckpointError, match="probe-head checkpoint, not an encoder"):
        export_script.main(["--checkpoint_path", str(head), "--out", str(tmp_path)])
    other = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="no SampleCNN encoder weights"):
        export_script.main(["--checkpoint_path", str(other), "--out", str(tmp_path)])
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.ckpt"):
        export_script.main(["--checkpoint_path", str(text), "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*.onnx"))


def test_export_reads_an_encoder_and_a_head_in_the_layout_of_main_at_0739081(tmp_path):
    from conftest import OLD_HEAD, old_hyper_parameters, save_encoder

    encoder = save_encoder(tmp_path / "last.ckpt", hparams=old_hyper_parameters("pretrain"))
    with contextlib.redirect_stdout(io.StringIO()):
        export_script.main(
            [
                "--checkpoint_path",
                str(encoder),
                "--finetuner_checkpoint_path",
                str(OLD_HEAD),
                "--out",
                str(tmp_path / "exports"),
            ]
        )
    info = json.loads((tmp_path / "exports" / "clmr_tagger.json").read_text())
    assert info["tags"] == old_hyper_parameters("linear")["tag_names"] and info["activation"] == "sigmoid"
