"""What a probe run leaves for a person: per_tag.png, TensorBoard (test scores, the per-tag figure, the test
tracks' embeddings in the projector), and the text the script prints (`format_results`, `format_comparison`).

`clmr.probe.run_probe` builds the results (results.json's content) and calls `write_outputs`.
"""

from __future__ import annotations

import numpy as np
from pytorch_lightning.loggers import TensorBoardLogger

from clmr.datasets.dataset import AudioDataset
from clmr.filenames import shown
from clmr.intervals import METRIC_NAMES
from clmr.plots import per_tag_figure, save_figure
from clmr.representations import Representations
from clmr.uncertainty import bootstrap_note, comparison_lines, interval_text


def padded_tracks(dataset: AudioDataset) -> int:
    return sum(1 for i in range(len(dataset)) if dataset.num_frames(i) < dataset.audio_length)


def write_outputs(
    results: dict, logger: TensorBoardLogger, test: Representations, test_set: AudioDataset, scores: np.ndarray
) -> None:
    """per_tag.png, and in TensorBoard the test scores, the per-tag figure and the test tracks' embeddings."""
    title = (
        f"{results['encoder']['label']}: {results['head']['type']} probe on {results['dataset']['name']}/test "
        f"({results['dataset']['splits']['test']['tracks']} tracks)"
    )
    fig = per_tag_figure(results["per_tag"], title, results["skipped_tags"], len(test_set))
    save_figure(fig, results["outputs"]["per_tag_png"], close=False)
    writer = logger.experiment
    writer.add_figure("Test/per-tag scores", fig, close=True)
    for name, value in results["metrics"].items():
        if np.isfinite(value):
            writer.add_scalar(f"Test/{name}", value)
    tags = results["dataset"]["tags"]
    metadata = [
        [_clean(test_set.files[i].name), _clean(_tags_of(test_set, i, tags)), _clean(tags[int(scores[i].argmax())])]
        for i in range(len(test_set))
    ]
    writer.add_embedding(
        test.track_means(), metadata=metadata, metadata_header=["track", "tags", "predicted"], tag="test_tracks"
    )  # each point: the mean of a test track's chunk representations
    writer.flush()


def _tags_of(dataset: AudioDataset, idx: int, tags: list[str]) -> str:
    target = np.asarray(dataset.targets[idx])
    if target.ndim == 0:
        return tags[int(target)]
    return ", ".join(t for t, on in zip(tags, target) if on > 0.5) or "(none)"


def _clean(text: str) -> str:
    return " ".join(shown(text).split())  # the projector's metadata is tab-separated, one line per track


# -- what a user reads --------------------------------------------------------------------------
def format_results(results: dict) -> str:
    """The metrics as a small table, the tags left out, and where each output is."""
    splits, head = results["dataset"]["splits"], results["head"]
    fraction = results["label_fraction"]
    lines = [
        f"Linear evaluation of {results['encoder']['label']}",
        f"  head: {head['type']}"
        + (f", trained {head['epochs']} epochs" if head.get("trained") else f", loaded from {head['checkpoint']}")
        + f"; protocol {results['protocol']}; {fraction:.0%} of the labels ({splits['train']['tracks_used']} of "
        f"{splits['train']['tracks']} training tracks)",
        f"  test: {results['dataset']['name']}/test, {splits['test']['tracks']} tracks in {splits['test']['chunks']} "
        f"chunks ({splits['test']['padded_tracks']} shorter than one chunk, zero-padded)",
        "",
        f"  {'metric':<10}{'score (%)':>10}  95% interval",
    ]
    cis = results.get("metrics_ci", {})
    for key, value in results["metrics"].items():
        lines.append(f"  {METRIC_NAMES[key]:<10}{100 * value:>10.1f}  {interval_text(cis[key]) if key in cis else ''}")
    lines.append(f"  (macro averages over {results['tags_scored']} of {len(results['dataset']['tags'])} tags)")
    if cis:
        lines.append(f"  {bootstrap_note(results)}")
    for skipped in results["skipped_tags"]:
        lines.append(f"  not scored: {skipped['tag']} ({skipped['reason']})")
    out = results["outputs"]
    lines += ["", f"  results      {out['results']}", f"  per-tag plot {out['per_tag_png']}"]
    if head.get("trained") and head.get("checkpoint"):
        lines.append(f"  head         {head['checkpoint']}")
    lines.append(f"  TensorBoard  {out['tensorboard']}")
    return "\n".join(lines)


def format_comparison(pretrained: dict, baseline: dict) -> str:
    """Side by side: the probe on the pre-trained encoder, on a random one, and the difference."""
    keys = list(pretrained["metrics"])
    rows = [("pre-trained encoder", pretrained), ("random init encoder", baseline)]
    header = f"  {'':<22}" + "".join(f"{METRIC_NAMES[k]:>10}" for k in keys)
    lines = ["What pre-training bought (scores in %, same probe, same data):", header]
    for name, res in rows:
        lines.append(f"  {name:<22}" + "".join(f"{100 * res['metrics'][k]:>10.1f}" for k in keys))
    lines.append(
        f"  {'difference':<22}"
        + "".join(f"{100 * (pretrained['metrics'][k] - baseline['metrics'][k]):>+10.1f}" for k in keys)
    )
    lines += comparison_lines(pretrained.get("comparison"), keys)
    return "\n".join(lines)
