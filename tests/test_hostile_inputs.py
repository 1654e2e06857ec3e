"""Hostile inputs, stage by stage: each gives a non-zero exit and one line naming the file or flag and what
was expected; no traceback, nothing half-written, no NaN written.

Scripts run in this process (`conftest.run_script_in_process`), so a case costs what the script does
before it refuses, not a Python start-up.
"""
from __future__ import annotations

import pytest

from conftest import assert_refused, half_written  # noqa: F401


# -- options (config.yaml keys, flags, YAML values) ---------------------------------------------------
# (script, flags, text of a --config file or None, what the error line names). Each is refused by the config
# reader, before any data is generated or read and before anything is written, on a machine without a GPU.
CONFIG_CASES = [
    pytest.param("main", ["--batch_size", "0"], None, ["--batch_size 0", "expected an integer >= 2"], id="batch-0"),
    pytest.param("main", ["--batch_size", "-4"], None, ["--batch_size -4"], id="batch-negative"),
    pytest.param("main", ["--batch_size", "1"], None, ["--batch_size 1", "BatchNorm"], id="batch-1"),
    pytest.param("main", ["--audio_length", "1000"], None, ["--audio_length 1000", "expected 59049"], id="audio-length"),
    pytest.param("main", ["--precision", "bogus"], None, ["--precision 'bogus'", "bf16-mixed"], id="precision"),
    pytest.param("main", ["--accelerator", "tpu"], None, ["--accelerator 'tpu'", "not available"], id="accelerator-tpu"),
    pytest.param("main", ["--accelerator", "bogus"], None, ["--accelerator 'bogus'", "expected one of"],
                 id="accelerator-unknown"),
    pytest.param("main", ["--gpus", "1"], None, ["--gpus 1", "GPU requested, but no CUDA GPU is visible"], id="gpus-1"),
    pytest.param("main", ["--accelerator", "gpu"], None, ["--accelerator 'gpu'", "GPU requested"], id="accelerator-gpu"),
    pytest.param("linear_evaluation", ["--gpus", "1", "--checkpoint_path", "random"], None, ["--gpus 1", "GPU requested"],
                 id="linear-gpus-1"),
    pytest.param("main", [], 'batch_size: "four"\n', ["bad.yaml: batch_size 'four'", "expected an integer"],
                 id="yaml-batch-four"),
    pytest.param("main", [], "max_epochs: abc\n", ["bad.yaml: max_epochs 'abc'", "expected an integer"],
                 id="yaml-max-epochs-abc"),
    pytest.param("main", [], "temperature: 0\n", ["bad.yaml: temperature 0", "expected a number > 0"],
                 id="yaml-temperature-0"),
    pytest.param("main", ["--temperature", "0"], None, ["--temperature 0", "expected a number > 0"], id="temperature-0"),
    pytest.param("main", ["--temperature", "-0.5"], None, ["--temperature -0.5"], id="temperature-negative"),
    pytest.param("main", ["--temperature", "nan"], None, ["--temperature nan"], id="temperature-nan"),
    pytest.param("main", ["--sample_rate", "0"], None, ["--sample_rate 0", "expected an integer >= 1"], id="sample-rate-0"),
    pytest.param("main", ["--learning_rate", "0"], None, ["--learning_rate 0", "expected a number > 0"], id="lr-0"),
    pytest.param("main", ["--transforms_pitch", "1.5"], None, ["--transforms_pitch 1.5", "probability"],
                 id="probability"),
    pytest.param("main", ["--finetuner_label_fraction", "0"], None, ["--finetuner_label_fraction 0"],
                 id="label-fraction"),
    pytest.param("linear_evaluation", ["--finetuner_label_fraction", "1.5"], None, ["--finetuner_label_fraction 1.5"],
                 id="linear-label-fraction"),
    pytest.param("main", ["--workers", "-2"], None, ["--workers -2", "expected an integer >= -1"], id="workers"),
    pytest.param("main", ["--max_epochs", "-2"], None, ["--max_epochs -2"], id="max-epochs"),
    pytest.param("main", ["--max_steps", "-2"], None, ["--max_steps -2"], id="max-steps"),
    pytest.param("main", ["--limit_train_batches", "1.5"], None, ["--limit_train_batches 1.5"], id="limit-batches"),
    pytest.param("main", ["--log_every_n_steps", "0"], None, ["--log_every_n_steps 0"], id="log-every"),
    pytest.param("main", ["--projection_dim", "0"], None, ["--projection_dim 0"], id="projection-dim"),
    pytest.param("main", ["--seed", "-1"], None, ["--seed -1"], id="seed"),
    pytest.param("main", ["--synthetic_tracks", "2"], None, ["--synthetic_tracks 2", ">= 3"], id="synthetic-tracks"),
    pytest.param("main", ["--synthetic_duration", "1"], None, ["--synthetic_duration 1", "one crop"],
                 id="synthetic-duration"),
    pytest.param("main", ["--num_nodes", "0"], None, ["--num_nodes 0"], id="num-nodes"),
    pytest.param("main", ["--accelerator", "cpu", "--devices", "0,1"], None, ["--devices '0,1'", "on the CPU"],
                 id="devices-on-cpu"),
    pytest.param("main", ["--strategy", "bogus"], None, ["--strategy 'bogus'", "ddp"], id="strategy-unknown"),
    pytest.param("main", ["--strategy", "deepspeed"], None, ["--strategy 'deepspeed'", "cannot be used here"],
                 id="strategy-missing-package"),
    pytest.param("main", ["--finetuner_batch_size", "0"], None, ["--finetuner_batch_size 0"], id="finetuner-batch"),
    pytest.param("linear_evaluation", ["--finetuner_max_epochs", "0", "--checkpoint_path", "random"], None,
                 ["--finetuner_max_epochs 0"], id="finetuner-epochs"),
    pytest.param("main", ["--early_stopping_patience", "-1", "--supervised", "1"], None,
                 ["--early_stopping_patience -1"], id="patience"),
    pytest.param("main", ["--check_val_every_n_epoch", "0"], None, ["--check_val_every_n_epoch 0"], id="val-every"),
    pytest.param("main", ["--optimizer", "SGD"], None, ["--optimizer 'SGD'", "Adam or LARS"], id="optimizer"),
    pytest.param("main", ["--finetuner_protocol", "crops"], None, ["--finetuner_protocol 'crops'"], id="protocol"),
    pytest.param("main", ["--mtat_split", "won2020"], None, ["unknown MagnaTagATune split 'won2020'", "--mtat_split"],
                 id="mtat-split"),
    pytest.param("export", ["--opset", "5", "--checkpoint_path", "encoder.ckpt"], None, ["--opset 5", "[16, "],
                 id="export-opset"),
    pytest.param("export", ["--tolerance", "0", "--checkpoint_path", "encoder.ckpt"], None, ["--tolerance 0"],
                 id="export-tolerance"),
    pytest.param("predict", ["--top_k", "0", "song.wav", "--checkpoint_path", "encoder.ckpt"], None, ["--top_k 0"],
                 id="predict-top-k"),
    pytest.param("preprocess", ["--sample_rate", "0", "--dataset", "audio"], None, ["--sample_rate 0"],
                 id="preprocess-sample-rate"),
]


@pytest.mark.parametrize("script,flags,config_text,mentions", CONFIG_CASES)
def test_a_bad_option_is_refused_before_any_work(run_script, no_gpu, tmp_path, monkeypatch, script, flags,
                                                 config_text, mentions):
    monkeypatch.chdir(tmp_path)
    before = [tmp_path / "bad.yaml"] if config_text is not None else []
    if config_text is not None:
        before[0].write_text(config_text)
        flags = ["--config", str(before[0]), *flags]
    result = run_script(script, *flags, "--dataset_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / "runs"))
    assert_refused(result, *mentions)
    assert sorted(tmp_path.rglob("*")) == before  # no data generated, no run folder, nothing half-written


# -- checkpoints entering the program ----------------------------------------------------------------
CHECKPOINT_CASES = [
]


# -- audio files, file names, output folders ----------------------------------------------------------
FILE_CASES = [
]
