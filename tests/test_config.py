"""Config file and flags: every YAML key is a typed flag; each value, from a file or a flag, is checked by its
key's rule (clmr/options.py), and a bad one is one line naming the flag (or file and key), value and expectation."""

from __future__ import annotations

import pytest

from clmr.config import DEFAULT_CONFIG, ConfigError, load_config, read_yaml
from clmr.options import RULES

ORIGINAL_DEFAULTS = {
    "workers": 0,
    "dataset_dir": "./data",
    "seed": 42,
    "batch_size": 48,
    "supervised": 0,
    "projection_dim": 64,
    "optimizer": "Adam",
    "learning_rate": 0.0003,
    "weight_decay": 1e-6,
    "temperature": 0.5,
    "finetuner_mlp": 0,
    "finetuner_max_epochs": 200,
    "finetuner_batch_size": 256,
    "finetuner_learning_rate": 0.001,
    "audio_length": 59049,
    "sample_rate": 22050,
    "transforms_polarity": 0.8,
    "transforms_noise": 0.01,
    "transforms_gain": 0.3,
    "transforms_filters": 0.8,
    "transforms_delay": 0.3,
    "transforms_pitch": 0.6,
    "transforms_reverb": 0.6,
    "max_epochs": 1000,  # unset in the original's config: Lightning's default applies
}


def test_defaults_are_the_original_clmr_values():
    cfg = load_config([])
    for key, value in ORIGINAL_DEFAULTS.items():
        assert getattr(cfg, key) == value, key
    for key in (
        "dataset",
        "checkpoint_path",
        "finetuner_checkpoint_path",
        "accelerator",
        "devices",
        "precision",
        "strategy",
        "num_nodes",
        "log_every_n_steps",
        "max_steps",
        "limit_train_batches",
        "limit_val_batches",
    ):
        assert hasattr(cfg, key), key


def test_every_yaml_key_is_a_flag_typed_by_its_default():
    cfg = load_config(
        [
            "--max_epochs",
            "500",
            "--learning_rate",
            "1e-4",
            "--dataset",
            "audio",
            "--limit_train_batches",
            "3",
            "--limit_val_batches",
            "0.5",
        ]
    )
    assert cfg.max_epochs == 500 and isinstance(cfg.max_epochs, int)
    assert cfg.learning_rate == pytest.approx(1e-4)
    assert cfg.dataset == "audio"
    assert cfg.limit_train_batches == 3 and isinstance(cfg.limit_train_batches, int)  # a count for Lightning
    assert cfg.limit_val_batches == 0.5
    assert set(vars(cfg)) == set(read_yaml(DEFAULT_CONFIG)) | {"config"}


@pytest.mark.parametrize("text,value", [("1", 1), ("0", 0), ("true", 1), ("False", 0)])
def test_switches_accept_0_1_true_false(text, value):
    assert load_config(["--finetuner_mlp", text]).finetuner_mlp == value


def test_wrong_type_is_an_error_naming_the_flag():
    with pytest.raises(ConfigError, match=r"^--max_epochs 'many': expected an integer >= -1"):
        load_config(["--max_epochs", "many"])


def test_unknown_flag_lists_valid_flags_and_suggests_the_closest(capsys):
    with pytest.raises(SystemExit):
        load_config(["--max_epoch", "3"])  # no silent prefix matching
    err = capsys.readouterr().err
    assert "did you mean --max_epochs?" in err and "--batch_size" in err


def test_other_config_file_overrides_and_keeps_the_rest(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("batch_size: 8\nmax_epochs: 2\n")
    cfg = load_config(["--config", str(other), "--max_epochs", "3"])
    assert (cfg.batch_size, cfg.max_epochs, cfg.temperature) == (8, 3, 0.5)


def test_unknown_key_in_other_config_file_is_an_error(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("batch_sise: 8\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        load_config(["--config", str(other)])


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(["--config", str(tmp_path / "nope.yaml")])


def refusal(*argv: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as refused:
        load_config(list(argv), **kwargs)
    return str(refused.value)


@pytest.mark.parametrize(
    "flag,value,expected",
    [
        ("batch_size", "0", "--batch_size 0: expected an integer >= 2"),
        ("batch_size", "-4", "--batch_size -4: expected an integer >= 2"),
        ("batch_size", "1", "BatchNorm cannot train on one example"),
        ("batch_size", "4.5", "--batch_size 4.5: expected an integer"),
        ("batch_size", "true", "--batch_size 'true': expected an integer"),
        ("audio_length", "1000", "--audio_length 1000: expected 59049"),
        ("audio_length", "59050", "--audio_length 59050: expected 59049"),
        ("temperature", "0", "--temperature 0: expected a number > 0"),
        ("temperature", "-0.5", "--temperature -0.5: expected a number > 0"),
        ("temperature", "nan", "--temperature nan: expected a number > 0"),
        ("temperature", "inf", "--temperature inf: expected a number > 0"),
        ("sample_rate", "0", "--sample_rate 0: expected an integer >= 1"),
        ("learning_rate", "0", "--learning_rate 0: expected a number > 0"),
        ("finetuner_learning_rate", "-0.001", "--finetuner_learning_rate -0.001: expected a number > 0"),
        ("weight_decay", "-1", "--weight_decay -1: expected a number >= 0"),
        ("transforms_pitch", "1.5", "--transforms_pitch 1.5: expected a probability in [0, 1]"),
        ("transforms_noise", "-0.1", "--transforms_noise -0.1: expected a probability in [0, 1]"),
        ("finetuner_label_fraction", "0", "--finetuner_label_fraction 0: expected a fraction in (0, 1]"),
        ("finetuner_label_fraction", "1.01", "expected a fraction in (0, 1]"),
        ("workers", "-2", "--workers -2: expected an integer >= -1"),
        ("max_epochs", "-2", "--max_epochs -2: expected an integer >= -1"),
        ("max_steps", "-5", "--max_steps -5: expected an integer >= -1"),
        (
            "limit_train_batches",
            "1.5",
            "--limit_train_batches 1.5: expected a fraction of the batches in [0, 1] or a number of batches >= 0",
        ),
        ("limit_val_batches", "-1", "--limit_val_batches -1: expected a fraction"),
        ("log_every_n_steps", "0", "--log_every_n_steps 0: expected an integer >= 1"),
        ("projection_dim", "0", "--projection_dim 0: expected an integer >= 1"),
        ("seed", "-1", "--seed -1: expected an integer in [0, 4294967295]"),
        ("seed", "4294967296", "expected an integer in [0, 4294967295]"),
        ("synthetic_tracks", "2", "--synthetic_tracks 2: expected an integer >= 3"),
        ("synthetic_duration", "0", "--synthetic_duration 0: expected a number > 0"),
        ("num_nodes", "0", "--num_nodes 0: expected an integer >= 1"),
        ("devices", "0", "--devices 0: expected auto, a number of devices >= 1"),
        ("devices", "two", "--devices 'two': expected auto"),
        ("devices", "0,0", "--devices '0,0': expected auto"),
        ("finetuner_batch_size", "0", "--finetuner_batch_size 0: expected an integer >= 2"),
        ("finetuner_max_epochs", "0", "--finetuner_max_epochs 0: expected an integer >= 1"),
        ("early_stopping_patience", "-1", "--early_stopping_patience -1: expected an integer >= 0"),
        ("check_val_every_n_epoch", "0", "--check_val_every_n_epoch 0: expected an integer >= 1"),
        ("gpus", "-2", "--gpus -2: expected an integer >= -1"),
        ("finetuner_mlp", "2", "--finetuner_mlp 2: expected 0/1/true/false"),
        ("augment_on", "gpu", "--augment_on 'gpu': expected device or workers"),
        ("optimizer", "SGD", "--optimizer 'SGD': expected Adam or LARS"),
        ("optimizer", "lars", "(did you mean LARS?)"),
        ("finetuner_protocol", "crops", "--finetuner_protocol 'crops': expected clmr or chunks"),
        ("dataset", "nope", "unknown dataset 'nope'; expected one of "),
        (
            "mtat_split",
            "won2020",
            "unknown MagnaTagATune split 'won2020'; expected one of pons2017, sota (--mtat_split)",
        ),
        ("precision", "bogus", "--precision 'bogus': expected one of auto, "),
        ("strategy", "bogus", "--strategy 'bogus': expected one of auto, ddp, "),
        ("accelerator", "bogus", "--accelerator 'bogus': expected one of auto, cpu, gpu, "),
    ],
)
def test_a_value_outside_its_rule_is_refused_naming_flag_value_and_expectation(flag, value, expected):
    assert expected in refusal(f"--{flag}", value)


@pytest.mark.parametrize(
    "flag,value,parsed",
    [
        ("batch_size", "2", 2),
        ("temperature", "1e-3", 1e-3),
        ("transforms_pitch", "0", 0.0),
        ("transforms_pitch", "1", 1.0),
        ("finetuner_label_fraction", "1", 1.0),
        ("limit_train_batches", "0", 0),
        ("limit_train_batches", "0.25", 0.25),
        ("limit_train_batches", "5", 5),
        ("max_epochs", "-1", -1),
        ("workers", "-1", -1),
        ("seed", "0", 0),
        ("seed", "4294967295", 2**32 - 1),
        ("synthetic_tracks", "3", 3),
        ("precision", "bf16-mixed", "bf16-mixed"),
        ("precision", "32", "32"),
        ("optimizer", "LARS", "LARS"),
        ("strategy", "ddp", "ddp"),
        ("devices", "2", "2"),
        ("accelerator", "cpu", "cpu"),
        ("gpus", "0", 0),
    ],
)
def test_values_at_the_edges_of_their_rules_are_accepted(flag, value, parsed):
    assert getattr(load_config([f"--{flag}", value]), flag) == parsed


def test_every_key_of_config_yaml_has_a_rule():
    assert set(read_yaml(DEFAULT_CONFIG)) <= set(RULES), set(read_yaml(DEFAULT_CONFIG)) - set(RULES)


@pytest.mark.parametrize(
    "yaml_text,flag_text",
    [
        ('"four"', "four"),
        ("abc", "abc"),
        ("0", "0"),
        ("-4", "-4"),
        ('""', ""),
        ("1.5", "1.5"),
    ],
)
def test_a_bad_yaml_value_is_refused_as_the_flag_is_naming_the_file_and_key(tmp_path, yaml_text, flag_text):
    other = tmp_path / "bad.yaml"
    other.write_text(f"batch_size: {yaml_text}\n")
    from_file = refusal("--config", str(other))
    from_flag = refusal("--batch_size", flag_text)
    assert from_file.startswith(f"{other}: batch_size ")
    assert from_file.split(": ", 1)[1].removeprefix("batch_size ") == from_flag.removeprefix("--batch_size ")


@pytest.mark.parametrize(
    "key,yaml_text,value",
    [
        ("batch_size", '"8"', 8),
        ("finetuner_mlp", "true", 1),
        ("learning_rate", "1e-4", 1e-4),
        ("precision", "16", "16"),
        ("run_name", "yes", "yes"),
        ("limit_train_batches", "3", 3),
        ("limit_val_batches", "1.0", 1.0),
    ],
)
def test_a_yaml_value_means_what_the_same_text_means_as_a_flag(tmp_path, key, yaml_text, value):
    other = tmp_path / "other.yaml"
    other.write_text(f"{key}: {yaml_text}\n")
    from_file = getattr(load_config(["--config", str(other)]), key)
    from_flag = getattr(load_config([f"--{key}", yaml_text.strip('"')]), key)
    assert from_file == from_flag == value and type(from_file) is type(value)


def test_a_yaml_value_overridden_by_a_flag_is_not_checked(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text('max_epochs: "abc"\n')
    assert load_config(["--config", str(other), "--max_epochs", "3"]).max_epochs == 3


def test_synthetic_tracks_must_hold_one_crop_only_for_the_synthetic_dataset():
    message = refusal("--synthetic_duration", "2.5")
    assert message == (
        "--synthetic_duration 2.5: expected at least 2.678 s, one crop of audio_length 59049 "
        "samples at sample_rate 22050 Hz"
    )
    assert refusal("--sample_rate", "4000").startswith(  # 8 s are 32,000 samples: too few
        "config/config.yaml: synthetic_duration 8.0: expected at least 14.762 s"
    )
    assert load_config(["--dataset", "audio", "--synthetic_duration", "2.5"]).synthetic_duration == 2.5


def test_gpu_requested_on_a_machine_without_one_is_one_line(no_gpu):
    for argv, flag in (
        (["--gpus", "1"], "--gpus 1"),
        (["--accelerator", "gpu"], "--accelerator 'gpu'"),
        (["--accelerator", "cuda", "--devices", "2"], "--accelerator 'cuda'"),
    ):
        assert (
            refusal(*argv) == f"{flag}: GPU requested, but no CUDA GPU is visible on this machine "
            f"(torch.cuda.is_available() is False)"
        )


def test_more_gpus_than_are_visible_is_one_line(visible_gpus):
    visible_gpus(2)
    assert load_config(["--gpus", "2"]).gpus == 2
    assert refusal("--gpus", "3") == "--gpus 3: 3 GPUs requested, but 2 are visible"
    assert refusal("--accelerator", "gpu", "--devices", "4") == "--devices 4: 4 GPUs requested, but 2 are visible"
    assert "--devices '0,2': GPU 2 requested" in refusal("--accelerator", "gpu", "--devices", "0,2")


def test_an_accelerator_lightning_knows_but_this_machine_lacks_is_refused(no_gpu):
    assert refusal("--accelerator", "tpu") == "--accelerator 'tpu': not available on this machine (available here: cpu)"
    assert "not available on this machine" in refusal("--accelerator", "mps")


def test_accelerator_strategy_and_precision_choices_are_lightnings_plus_auto():
    from lightning_fabric.connector import _convert_precision_to_unified_args
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    accelerators = RULES["accelerator"].choices()
    assert set(accelerators) == set(AcceleratorRegistry.available_accelerators()) | {"auto", "gpu"}
    assert set(RULES["strategy"].choices()) == set(StrategyRegistry.available_strategies()) | {"auto"}
    precisions = set(RULES["precision"].choices()) - {"auto"}
    assert {"32-true", "bf16-mixed", "16-mixed", "64-true", "bf16", "32"} <= precisions
    for precision in precisions:  # each one Lightning itself accepts
        _convert_precision_to_unified_args(precision)


def test_a_strategy_this_machine_cannot_run_is_refused_before_training(no_gpu):
    assert refusal("--strategy", "fsdp") == "--strategy 'fsdp': FSDP runs only on GPUs"
    assert refusal("--strategy", "xla").startswith("--strategy 'xla': needs a TPU")
    assert refusal("--strategy", "deepspeed").startswith(
        "--strategy 'deepspeed': cannot be used here (To use the `DeepSpeedStrategy`, you must have DeepSpeed installed"
    )
    assert load_config(["--strategy", "ddp", "--accelerator", "cpu", "--devices", "2"]).strategy == "ddp"


def test_devices_the_cpu_cannot_take_are_refused(no_gpu):
    assert (
        refusal("--accelerator", "cpu", "--devices", "0,1")
        == "--devices '0,1': expected auto or a number of processes >= 1 on the CPU"
    )
    assert "on the CPU" in refusal("--devices", "-1")  # accelerator auto is the CPU here
    assert "--devices '0,1'" in refusal("--gpus", "0", "--devices", "0,1")


def test_script_options_are_checked_by_their_own_rules():
    import export
    import predict
    from clmr.export import MIN_OPSET, max_opset

    def opset(value: int) -> int:
        return load_config(["--opset", str(value)], extra=export.OPTIONS).opset

    assert opset(MIN_OPSET) == MIN_OPSET and opset(max_opset()) == max_opset()
    for value in (5, MIN_OPSET - 1, max_opset() + 1):
        assert refusal("--opset", str(value), extra=export.OPTIONS).startswith(
            f"--opset {value}: expected an integer in [{MIN_OPSET}, {max_opset()}]"
        )
    assert refusal("--tolerance", "0", extra=export.OPTIONS) == "--tolerance 0: expected a number > 0"
    assert refusal("--top_k", "0", extra=predict.OPTIONS) == "--top_k 0: expected an integer >= 1"
    assert load_config(["--json", "true"], extra=predict.OPTIONS).json == 1


def test_an_option_declared_by_its_default_alone_is_typed_by_it():
    assert load_config(["--new_count", "3"], extra={"new_count": 1}).new_count == 3
    assert refusal("--new_count", "x", extra={"new_count": 1}) == "--new_count 'x': expected an integer"


def test_help_shows_each_options_rule(capsys):
    with pytest.raises(SystemExit):
        load_config(["--help"])
    assert "an integer >= 2 (per device; BatchNorm cannot train on" in " ".join(capsys.readouterr().out.split())


def test_the_audio_constants_are_the_config_defaults():
    from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE
    from clmr.models import SampleCNN

    cfg = load_config([])
    assert (
        (cfg.sample_rate, cfg.audio_length) == (SAMPLE_RATE, AUDIO_LENGTH) == (SAMPLE_RATE, SampleCNN.receptive_field())
    )


def test_every_on_off_flag_may_stand_alone_in_every_script():
    cfg = load_config(["--deterministic", "--batch_size", "8", "--resume"])
    assert (cfg.deterministic, cfg.batch_size, cfg.resume) == (1, 8, 1)
    assert load_config(["--deterministic", "0"]).deterministic == 0
