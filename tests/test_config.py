"""Config file and flags: every YAML key is a typed flag; bad flags are clear errors."""
import pytest

from clmr.config import DEFAULT_CONFIG, load_config, read_yaml
from clmr.trainer import hardware, parse_devices

ORIGINAL_DEFAULTS = {
    "workers": 0, "dataset_dir": "./data", "seed": 42, "batch_size": 48, "supervised": 0, "projection_dim": 64,
    "optimizer": "Adam", "learning_rate": 0.0003, "weight_decay": 1e-6, "temperature": 0.5, "finetuner_mlp": 0,
    "finetuner_max_epochs": 200, "finetuner_batch_size": 256, "finetuner_learning_rate": 0.001,
    "audio_length": 59049, "sample_rate": 22050, "transforms_polarity": 0.8, "transforms_noise": 0.01,
    "transforms_gain": 0.3, "transforms_filters": 0.8, "transforms_delay": 0.3, "transforms_pitch": 0.6,
    "transforms_reverb": 0.6,
}


def test_defaults_are_the_original_clmr_values():
    cfg = load_config([])
    for key, value in ORIGINAL_DEFAULTS.items():
        assert getattr(cfg, key) == value, key
    for key in ("max_epochs", "dataset", "checkpoint_path", "finetuner_checkpoint_path", "accelerator", "devices",
                "precision", "strategy", "num_nodes", "log_every_n_steps", "max_steps", "limit_train_batches",
                "limit_val_batches"):
        assert hasattr(cfg, key), key


def test_every_yaml_key_is_a_flag_typed_by_its_default():
    cfg = load_config(["--max_epochs", "500", "--learning_rate", "1e-4", "--dataset", "audio",
                       "--limit_train_batches", "3", "--limit_val_batches", "0.5"])
    assert cfg.max_epochs == 500 and isinstance(cfg.max_epochs, int)
    assert cfg.learning_rate == pytest.approx(1e-4)
    assert cfg.dataset == "audio"
    assert cfg.limit_train_batches == 3 and isinstance(cfg.limit_train_batches, int)  # a count for Lightning
    assert cfg.limit_val_batches == 0.5
    assert set(vars(cfg)) == set(read_yaml(DEFAULT_CONFIG)) | {"config"}


@pytest.mark.parametrize("text,value", [("1", 1), ("0", 0), ("true", 1), ("False", 0)])
def test_switches_accept_0_1_true_false(text, value):
    assert load_config(["--finetuner_mlp", text]).finetuner_mlp == value


def test_wrong_type_is_an_error_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_config(["--max_epochs", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--max_epochs" in err and "expected an integer" in err


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
    with pytest.raises(SystemExit, match="batch_sise"):
        load_config(["--config", str(other)])


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        load_config(["--config", str(tmp_path / "nope.yaml")])


def test_original_gpus_flag_maps_to_accelerator_and_devices():
    assert hardware(load_config(["--gpus", "2"]))["accelerator"] == "gpu"
    assert hardware(load_config(["--gpus", "2"]))["devices"] == 2
    assert hardware(load_config(["--gpus", "0"]))["accelerator"] == "cpu"
    assert hardware(load_config([]))["devices"] == "auto"
    assert parse_devices("0,1") == [0, 1]
