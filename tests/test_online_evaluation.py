"""Online evaluation during pre-training: the kNN and linear probes, training left undisturbed (same weights with it
on as off), Online/* in TensorBoard, and the config's choices."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import main
from clmr.online_evaluation import RandomState, cost_line, knn_scores, linear_scores, online_metrics, undisturbed
from conftest import assert_refused, tiny_flags


def clusters(n_per_class: int, n_classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Features in tight clusters around orthogonal directions, one per class."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(n_classes), n_per_class)
    centres = np.eye(16)[:n_classes] * 5
    return torch.from_numpy(centres[classes] + rng.normal(scale=0.3, size=(len(classes), 16))).float(), classes


def test_knn_scores_vote_by_the_nearest_training_examples():
    train, classes = clusters(10)
    query, query_classes = clusters(4, seed=1)
    scores = knn_scores(train, classes, query, k=5, n_classes=3, multilabel=False)
    assert (scores.argmax(axis=1) == query_classes).all()
    assert np.allclose(scores.sum(axis=1), 1)
    multi = np.eye(3)[classes]
    multi[:, 2] = 1  # a tag every track has
    tag_scores = knn_scores(train, multi, query, k=5, n_classes=3, multilabel=True)
    assert np.allclose(tag_scores[:, 2], 1)
    truth = np.eye(3)[query_classes][:, :2]
    assert online_metrics(truth, tag_scores[:, :2], ["a", "b"], True) == {"roc_auc": 1.0, "pr_auc": 1.0}


def test_knn_with_more_neighbours_than_examples_uses_them_all():
    train, classes = clusters(2)
    scores = knn_scores(train, classes, train[:1], k=50, n_classes=3, multilabel=False)
    assert scores.shape == (1, 3) and scores.argmax() == classes[0]


def test_the_linear_probe_separates_separable_features():
    train, classes = clusters(10)
    query, query_classes = clusters(4, seed=1)
    single = linear_scores(train, classes, query, n_classes=3, multilabel=False)
    assert online_metrics(query_classes, single, ["a", "b", "c"], False) == {
        "accuracy": 1.0,
        "roc_auc": 1.0,
        "pr_auc": 1.0,
    }
    multi = np.eye(3)[classes]
    multi[:, 1] = 0  # a tag absent from the training subset: scored by its frequency, no error
    scores = linear_scores(train, multi, query, n_classes=3, multilabel=True)
    assert np.allclose(scores[:, 1], 0) and online_metrics(np.eye(3)[query_classes], scores, list("abc"), True)


def test_metrics_that_cannot_be_computed_are_left_out_not_nan():
    assert online_metrics(np.zeros((4, 2)), np.random.rand(4, 2), ["a", "b"], True) == {}


def test_undisturbed_restores_modes_batchnorm_statistics_and_every_random_stream():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU())
    model.train()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with undisturbed(model):
        model[1].train()
        model(torch.randn(8, 1, 20))  # updates the running statistics in train mode, draws random numbers
        np.random.rand(5), random.random()
        model.eval()
        assert not torch.is_grad_enabled()
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_random_state_capture_is_a_snapshot():
    state = RandomState.capture()
    first = torch.rand(2)
    state.restore()
    assert torch.equal(torch.rand(2), first)


def test_the_cost_line_names_seconds_and_the_share_of_an_epoch():
    assert cost_line([1.0, 3.0, 2.0], [40.0, 100.0]) == (
        "online evaluation: 2.0 s per evaluation (median of 3), 2.9 % of a pre-training epoch (70.0 s, median of 2)"
    )


# -- in a tiny pre-training run -----------------------------------------------------------------------
def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events in run_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return found


def encoder_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def runs_on_and_off(tmp_path_factory, tiny_data):
    """Two tiny pre-training runs of 2 epochs, same seed: online kNN evaluation every epoch, and none."""
    tmp = tmp_path_factory.mktemp("online")

    def flags(name: str, *extra: str) -> list[str]:
        return tiny_flags(
            tiny_data,
            tmp / "runs",
            "--max_epochs",
            "2",
            "--precision",
            "32-true",
            "--run_name",
            name,
            "--online_eval_train_tracks",
            "8",
            "--online_eval_k",
            "3",
            *extra,
        )

    main.main(flags("on", "--online_eval", "knn"))
    main.main(flags("off", "--online_eval", "none"))
    return tmp / "runs"


def test_online_evaluation_logs_its_tags_from_the_random_init_point_on(runs_on_and_off, capsys):
    logged = scalars(runs_on_and_off / "on")
    assert [step for step, _ in sorted(logged["Online/ROC-AUC"])] == [0, 2, 4]  # before training, then every epoch
    assert [step for step, _ in sorted(logged["Online/PR-AUC"])] == [0, 2, 4]
    assert all(0 <= value <= 1 for tag in ("Online/ROC-AUC", "Online/PR-AUC") for _, value in logged[tag])
    assert not any(tag.startswith("Online/") for tag in scalars(runs_on_and_off / "off"))


def test_a_run_with_online_evaluation_trains_to_exactly_the_same_weights(runs_on_and_off):
    on, off = encoder_weights(runs_on_and_off / "on"), encoder_weights(runs_on_and_off / "off")
    assert on.keys() == off.keys()
    different = [k for k in on if not torch.equal(on[k], off[k])]
    assert not different, f"online evaluation changed {different[:5]}"


def test_an_unlabelled_online_eval_dataset_is_refused(run_script, tiny_main, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    import soundfile as sf

    for i in range(3):
        sf.write(music / f"{i}.wav", np.zeros(70000, dtype=np.float32), 22050)
    result = run_script("main", *tiny_main("--online_eval_dataset", "audio", "--online_eval_dataset_dir", str(music)))
    assert_refused(result, "--online_eval_dataset audio", "no labels")


def test_an_unknown_online_eval_method_is_refused(run_script, tiny_main):
    assert_refused(run_script("main", *tiny_main("--online_eval", "svm")), "--online_eval", "knn")


@pytest.mark.parametrize("method", ["knn", "linear"])
def test_evaluate_encoder_scores_a_random_encoder_on_the_valid_tracks_and_leaves_it_as_it_was(tiny_main, method):
    from clmr.config import load_config
    from clmr.datasets import dataset_from_config
    from clmr.models import SampleCNN
    from clmr.online_evaluation import OnlineSplit, evaluate_encoder

    cfg = load_config(tiny_main(), prog="main.py")
    train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
    torch.manual_seed(0)
    encoder = SampleCNN(out_dim=11).train()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    with undisturbed(encoder):
        metrics = evaluate_encoder(
            encoder,
            OnlineSplit.of(train, 6, cfg.seed),
            OnlineSplit.of(valid, len(valid), 0),
            method,
            k=3,
            batch_size=4,
            calibrate=True,
        )
    assert set(metrics) <= {"roc_auc", "pr_auc"} and all(0 <= v <= 1 for v in metrics.values())
    assert encoder.training and all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    with pytest.raises(ValueError, match="expected knn or linear"):
        evaluate_encoder(encoder, OnlineSplit.of(train, 2, 0), OnlineSplit.of(valid, 2, 0), "svm")


def test_an_encoder_with_nan_weights_gives_no_metric_rather_than_an_error(tiny_main):
    from clmr.config import load_config
    from clmr.datasets import dataset_from_config
    from clmr.models import SampleCNN
    from clmr.online_evaluation import OnlineSplit, evaluate_encoder

    cfg = load_config(tiny_main(), prog="main.py")
    train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
    encoder = SampleCNN(out_dim=11).eval()
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] = float("nan")
    assert evaluate_encoder(encoder, OnlineSplit.of(train, 4, 0), OnlineSplit.of(valid, 2, 0), batch_size=4) == {}


def test_an_unlabelled_dataset_is_watched_only_through_a_named_labelled_one(tmp_path, tiny_main, tiny_data, capsys):
    import soundfile as sf

    from clmr.config import load_config
    from clmr.datasets import dataset_from_config
    from clmr.online_evaluation import OnlineEvaluation
    from clmr.stages import online_evaluation_from_config

    music = tmp_path / "music"
    music.mkdir()
    for i in range(30):
        sf.write(music / f"{i}.wav", np.zeros(70000, dtype=np.float32), 22050)
    flags = [*tiny_main(), "--dataset", "audio", "--dataset_dir", str(music)]
    cfg = load_config(flags, prog="main.py")
    train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
    assert online_evaluation_from_config(cfg, train, valid) is None
    assert "online evaluation off: --dataset audio has no labels" in capsys.readouterr().out
    watched = load_config(
        [*flags, "--online_eval_dataset", "synthetic", "--online_eval_dataset_dir", str(tiny_data)], prog="main.py"
    )
    callback = online_evaluation_from_config(watched, train, valid)
    assert isinstance(callback, OnlineEvaluation) and callback.valid.dataset.name == "synthetic"
    assert "synthetic/valid" in callback.describe()
    none = load_config([*tiny_main(), "--online_eval", "none"], prog="main.py")
    assert online_evaluation_from_config(none, None, None) is None
