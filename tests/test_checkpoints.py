"""Loading encoders and probe heads from every supported checkpoint format, and refusing everything else."""

from __future__ import annotations

import copy
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from clmr.checkpoints import (
    CheckpointError,
    file_sha256,
    head_state_dict,
    load_encoder,
    random_encoder,
    read_checkpoint,
)
from clmr.config import load_config
from clmr.models import SampleCNN, build_head

AUDIO_LENGTH = SampleCNN.receptive_field()


@pytest.fixture(scope="module")
def known():
    """A SampleCNN with known weights and non-trivial BatchNorm statistics, its input, and its 512-d outputs."""
    torch.manual_seed(0)
    model = SampleCNN(out_dim=50)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, AUDIO_LENGTH) * 0.1
    reference = copy.deepcopy(model)
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference.eval()(x)
    return model, x, expected


def outputs(encoder, x):
    with torch.no_grad():
        return encoder(x)


def trunk(model, prefix):
    return {prefix + k: v.clone() for k, v in model.state_dict().items() if k.startswith("sequential.")}


def lightning_checkpoint(module, path: Path, cfg) -> None:
    """Save `module` the way a training run does (our Trainer, its callbacks, atomic checkpoint IO)."""
    from clmr.trainer import build_trainer, checkpoint_callbacks

    trainer = build_trainer(
        cfg, "pretrain", checkpoint_callbacks(cfg, "pretrain"), accelerator="cpu", devices=1, logger=False
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)


def test_our_pretraining_checkpoint_gives_the_encoders_outputs(known, tmp_path):
    from clmr.stages import contrastive_module

    model, x, expected = known
    cfg = load_config(["--log_dir", str(tmp_path / "runs"), "--projection_dim", "32"])
    lightning_checkpoint(contrastive_module(cfg, copy.deepcopy(model)), tmp_path / "last.ckpt", cfg)
    encoder = load_encoder(tmp_path / "last.ckpt")
    assert encoder.checkpoint_format == "lightning"
    assert encoder.checkpoint_hparams["projection_dim"] == 32
    assert torch.equal(outputs(encoder, x), expected)


def test_our_supervised_checkpoint_gives_the_encoders_outputs(known, tmp_path):
    from clmr.stages import supervised_module

    model, x, expected = known
    cfg = load_config(["--log_dir", str(tmp_path / "runs")])
    supervised = SampleCNN(supervised=True, out_dim=11)
    supervised.load_state_dict(trunk(model, ""), strict=False)
    lightning_checkpoint(supervised_module(cfg, supervised, multilabel=True), tmp_path / "best.ckpt", cfg)
    encoder = load_encoder(tmp_path / "best.ckpt")
    assert encoder.checkpoint_format == "supervised"
    assert torch.equal(outputs(encoder, x), expected)


def test_clmr_v2_lightning_checkpoint_gives_the_encoders_outputs(known, tmp_path):
    """As Lightning 1.x wrote it: callback states keyed by the callback class, an encoder without fc, a projector."""
    model, x, expected = known
    state = trunk(model, "model.encoder.")
    state["model.projector.0.weight"] = torch.randn(512, 512)
    state["model.projector.2.weight"] = torch.randn(128, 512)  # another projection_dim than ours
    path = tmp_path / "clmr_checkpoint_10000.ckpt"
    torch.save(
        {
            "epoch": 9999,
            "global_step": 123,
            "pytorch-lightning_version": "1.2.7",
            "state_dict": state,
            "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(4.2), "dirpath": "runs"}},
            "optimizer_states": [],
            "lr_schedulers": [],
            "hparams_name": "args",
            "hyper_parameters": {"dataset": "magnatagatune", "sample_rate": 22050, "audio_length": 59049},
        },
        path,
    )
    encoder = load_encoder(path)
    assert encoder.checkpoint_format == "lightning"
    assert encoder.checkpoint_hparams["dataset"] == "magnatagatune"
    assert torch.equal(outputs(encoder, x), expected)


def test_clmr_v2_checkpoint_with_a_namespace_of_hyperparameters_loads(known, tmp_path):
    model, x, expected = known
    path = tmp_path / "clmr_checkpoint_10000.ckpt"
    torch.save(
        {
            "state_dict": trunk(model, "model.encoder."),
            "hyper_parameters": Namespace(sample_rate=22050, projection_dim=64),
        },
        path,
    )
    encoder = load_encoder(path)
    assert encoder.checkpoint_hparams == {"sample_rate": 22050, "projection_dim": 64}
    assert torch.equal(outputs(encoder, x), expected)


def test_clmr_v1_state_dict_gives_the_encoders_outputs(known, tmp_path):
    model, x, expected = known
    state = trunk(model, "encoder.")
    state["projector.0.weight"] = torch.randn(512, 512)
    state["projector.2.weight"] = torch.randn(64, 512)
    path = tmp_path / "clmr_checkpoint_1550.pt"
    torch.save(state, path)
    encoder = load_encoder(path)
    assert encoder.checkpoint_format == "clmr-v1"
    assert torch.equal(outputs(encoder, x), expected)


def test_bare_samplecnn_state_dict_with_another_out_dim_loads(known, tmp_path):
    model, x, expected = known
    torch.save(model.state_dict(), tmp_path / "samplecnn.pt")  # fc is 512 -> 50
    encoder = load_encoder(tmp_path / "samplecnn.pt")
    assert encoder.checkpoint_format == "samplecnn"
    assert torch.equal(outputs(encoder, x), expected)


def test_loaded_encoder_is_frozen_in_eval_mode_with_512_features(known, tmp_path):
    model, x, _ = known
    torch.save(model.state_dict(), tmp_path / "samplecnn.pt")
    encoder = load_encoder(tmp_path / "samplecnn.pt")
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert isinstance(encoder.fc, torch.nn.Identity)
    assert outputs(encoder, x).shape == (2, 512)


def test_random_encoder_is_reproducible_from_its_seed():
    a, b, c = random_encoder(1), random_encoder(1), random_encoder(2)
    first = a.state_dict()["sequential.1.0.weight"]
    assert torch.equal(first, b.state_dict()["sequential.1.0.weight"])
    assert not torch.equal(first, c.state_dict()["sequential.1.0.weight"])
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ckpt: file not found"):
        load_encoder(tmp_path / "nothing.ckpt")


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", b"PK\x03\x04 broken zip"])
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path, content):
    (tmp_path / "x.ckpt").write_bytes(content)
    with pytest.raises(CheckpointError, match="x.ckpt: not a PyTorch checkpoint"):
        load_encoder(tmp_path / "x.ckpt")


class _Payload:
    """Unpickling this would create a file: a checkpoint must never run code."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    payload = _Payload()
    payload.marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "x": payload}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="refusing to load.*could run code"):
        load_encoder(tmp_path / "evil.ckpt")
    assert not payload.marker.exists()


def test_another_architecture_names_the_first_mismatched_key(tmp_path):
    other = SampleCNN(strides=[3, 3, 3, 3, 3, 3, 3, 3, 2])
    torch.save({"state_dict": trunk(other, "model.encoder.")}, tmp_path / "other.ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"not the SampleCNN architecture: sequential\.9\.0\.weight has shape "
        r"\(512, 256, 2\), expected \(512, 256, 3\)",
    ):
        load_encoder(tmp_path / "other.ckpt")


def test_a_missing_layer_is_named(known, tmp_path):
    state = trunk(known[0], "encoder.")
    del state["encoder.sequential.10.1.running_var"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"sequential\.10\.1\.running_var is missing"):
        load_encoder(tmp_path / "partial.pt")


def test_a_checkpoint_without_an_encoder_says_what_it_found(tmp_path):
    torch.save({"state_dict": {"backbone.conv.weight": torch.zeros(1)}}, tmp_path / "resnet.ckpt")
    with pytest.raises(CheckpointError, match="no SampleCNN encoder weights.*found backbone.conv.weight"):
        load_encoder(tmp_path / "resnet.ckpt")


def test_a_head_checkpoint_given_as_encoder_points_to_the_right_flag(tmp_path):
    torch.save(
        {"state_dict": {"model.0.weight": torch.zeros(11, 512), "model.0.bias": torch.zeros(11)}},
        tmp_path / "best.ckpt",
    )
    with pytest.raises(CheckpointError, match="--finetuner_checkpoint_path"):
        load_encoder(tmp_path / "best.ckpt")


@pytest.mark.parametrize("mlp", [False, True])
def test_head_checkpoints_of_every_format_give_the_heads_outputs(known, tmp_path, mlp):
    torch.manual_seed(1)
    head = build_head(512, 50, mlp)
    h = torch.randn(3, 512)
    expected = head(h)
    # ours and CLMR v2's finetuner: a Lightning checkpoint of a module with `model` (and the frozen `encoder`)
    lightning = {f"model.{k}": v for k, v in head.state_dict().items()}
    lightning.update(trunk(known[0], "encoder."))
    torch.save({"pytorch-lightning_version": "1.2.7", "state_dict": lightning}, tmp_path / "finetuner.ckpt")
    torch.save(head.state_dict(), tmp_path / "finetuner_checkpoint_20.pt")  # CLMR v1: the head's state dict
    for name in ("finetuner.ckpt", "finetuner_checkpoint_20.pt"):
        loaded = build_head(512, 50, mlp)
        loaded.load_state_dict(head_state_dict(tmp_path / name))
        assert torch.equal(loaded(h), expected), name


def test_an_encoder_checkpoint_given_as_head_is_a_clear_error(known, tmp_path):
    torch.save({"state_dict": trunk(known[0], "model.encoder.")}, tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match="--finetuner_checkpoint_path .*no probe-head weights"):
        head_state_dict(tmp_path / "last.ckpt")


def test_read_checkpoint_and_sha256(tmp_path):
    import hashlib

    torch.save({"a": torch.arange(3)}, tmp_path / "a.pt")
    assert torch.equal(read_checkpoint(tmp_path / "a.pt")["a"], torch.arange(3))
    assert file_sha256(tmp_path / "a.pt") == hashlib.sha256((tmp_path / "a.pt").read_bytes()).hexdigest()


def test_read_checkpoint_stays_weights_only_when_the_environment_forces_full_loads(tmp_path, monkeypatch):
    """torch 2.14 lets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turn off weights_only only where the caller did not ask."""
    payload = _Payload()
    payload.marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "x": payload}, tmp_path / "evil.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match="refusing to load.*could run code"):
        read_checkpoint(tmp_path / "evil.ckpt")
    assert not payload.marker.exists()


def test_a_truncated_checkpoint_is_said_to_be_truncated(known, tmp_path):
    torch.save({"state_dict": trunk(known[0], "model.encoder.")}, tmp_path / "whole.ckpt")
    data = (tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.ckpt: not a PyTorch checkpoint \\(truncated or damaged"):
        read_checkpoint(tmp_path / "cut.ckpt")


def test_an_encoder_with_nan_weights_is_refused_naming_the_weight(known, tmp_path):
    state = trunk(known[0], "model.encoder.")
    state["model.encoder.sequential.3.0.weight"][0, 0, 0] = float("nan")
    torch.save({"state_dict": state}, tmp_path / "diverged.ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"diverged.ckpt: the encoder weights hold NaN or Inf "
        r"\(sequential\.3\.0\.weight\)",
    ):
        load_encoder(tmp_path / "diverged.ckpt")


def test_a_probe_head_with_infinite_weights_is_refused(tmp_path):
    head = build_head(512, 11, mlp=False).state_dict()
    head["0.bias"][3] = float("inf")
    torch.save(head, tmp_path / "head.pt")
    with pytest.raises(
        CheckpointError,
        match=r"--finetuner_checkpoint_path .*head.pt: the probe-head weights hold "
        r"NaN or Inf \(0\.bias\)",
    ):
        head_state_dict(tmp_path / "head.pt")


def test_a_training_checkpoint_of_the_same_model_is_accepted_for_resuming(known, tmp_path):
    from clmr.runs import training_checkpoint
    from clmr.stages import contrastive_module

    cfg = load_config(["--log_dir", str(tmp_path / "runs")])
    module = contrastive_module(cfg, copy.deepcopy(known[0]))
    lightning_checkpoint(module, tmp_path / "last.ckpt", cfg)
    checkpoint = training_checkpoint(tmp_path / "last.ckpt", module.state_dict(), "pretrain", "Adam")
    assert checkpoint["state_dict"].keys() == module.state_dict().keys()
    with pytest.raises(CheckpointError, match="a pre-training checkpoint; --supervised 1 continues"):
        training_checkpoint(tmp_path / "last.ckpt", module.state_dict(), "supervised")


# -- checkpoints of main at 0739081 (every config key in hyper_parameters) --------------------------------------
def test_a_head_written_by_main_at_0739081_loads_with_its_tag_names_and_kind():
    from clmr.checkpoints import head_outputs, load_head
    from clmr.tag_names import head_labels
    from conftest import OLD_HEAD, old_hyper_parameters

    head = load_head(OLD_HEAD, mlp=False, n_outputs=11)
    assert head_labels(OLD_HEAD, head_outputs(head)) == (old_hyper_parameters("linear")["tag_names"], True)


def test_an_encoder_in_the_layout_of_main_at_0739081_loads_for_predict_and_export(tmp_path):
    from clmr.hear import load_model
    from conftest import OLD_HEAD, old_hyper_parameters, save_encoder

    old = old_hyper_parameters("pretrain")
    path = save_encoder(tmp_path / "last.ckpt", hparams=old)
    assert load_encoder(path).checkpoint_hparams == old
    model = load_model(path, OLD_HEAD)
    assert (model.sample_rate, model.audio_length) == (old["sample_rate"], old["audio_length"])
    assert model.tag_names == old_hyper_parameters("linear")["tag_names"] and model.multilabel


def test_a_checkpoint_of_today_saves_what_a_reader_needs_not_the_whole_config(tmp_path):
    from clmr.stages import contrastive_module, linear_module

    cfg = load_config(["--log_dir", str(tmp_path / "runs")])
    pretrain = contrastive_module(cfg, SampleCNN(out_dim=11)).hparams
    assert {"sample_rate", "audio_length", "dataset", "optimizer", "projection_dim"} <= set(pretrain)
    assert not {"log_dir", "mtat_base_url", "checkpoint_path"} & set(pretrain)
    head = linear_module(cfg, 3, True, ["a", "b", "c"]).hparams
    assert {"sample_rate", "audio_length", "dataset", "multilabel", "tag_names", "mlp"} <= set(head)
    assert head["tag_names"] == ["a", "b", "c"] and "log_dir" not in head
