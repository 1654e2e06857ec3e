"""Tag any audio file with a trained encoder and probe head, or write embeddings for a music collection.

    python predict.py song.mp3 --checkpoint_path ENCODER.ckpt --finetuner_checkpoint_path HEAD.ckpt
    python predict.py song.flac --checkpoint_path ENC --finetuner_checkpoint_path HEAD --taggram song.png
    python predict.py --embeddings out/ ~/music --checkpoint_path ENC [--chunk_embeddings 1]

Files of any rate and channel count are mixed to mono and resampled in memory. A file that cannot be
used is reported on stderr and skipped; the exit status is 1 only when no file could be used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from clmr import cli
from clmr.atomic import check_writable
from clmr.audio import AudioFileError
from clmr.config import ConfigError, load_config
from clmr.embeddings import CHUNKS, EMBEDDINGS, INDEX, META, EmbeddingSummary, embed_files
from clmr.filenames import shown
from clmr.hardware import device_of
from clmr.hear import load_model
from clmr.inference import TagPrediction, expand_paths, predict_files
from clmr.models import N_FEATURES
from clmr.rules import Integer, Option, Switch, Text

OPTIONS = {
    "top_k": Option(10, Integer(1), "tags printed per file"),
    "taggram": Option("", Text(), "image file of the taggram (BASE_<file stem>.png each, for several files)"),
    "json": Option(0, Switch(), "print JSON instead of text"),
    "embeddings": Option("", Text(), "folder to write embeddings to, instead of tags"),
    "chunk_embeddings": Option(0, Switch(), "with --embeddings: also every chunk's embedding"),
    "tags": Option("", Text(), "JSON list of tag names (when the head checkpoint has none)"),
}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(
        argv, prog="predict.py", extra=OPTIONS, positional=[("audio", {"nargs": "*", "help": "audio files or folders"})]
    )
    if not cfg.audio or not cfg.checkpoint_path:
        raise ConfigError(
            "usage: predict.py AUDIO... --checkpoint_path ENCODER (--finetuner_checkpoint_path HEAD | --embeddings OUT)"
        )
    if not cfg.embeddings and not cfg.finetuner_checkpoint_path:
        raise ConfigError(
            "--finetuner_checkpoint_path is required to predict tags (or --embeddings OUT to write embeddings)"
        )
    check_outputs(cfg)
    model = load_model(
        cfg.checkpoint_path,
        None if cfg.embeddings else cfg.finetuner_checkpoint_path,
        tags=cfg.tags or None,
        batch_size=cfg.batch_size,
        device=device_of(cfg),
    )
    if cfg.embeddings:
        summary = embed_files(cfg.audio, model, cfg.embeddings, cfg.chunk_embeddings, cfg.workers)
        print(format_embedding_summary(summary))
        ok, failed = summary.embedded, len(summary.failed)
    else:
        ok, failed = tag_files(cfg, model)
    if failed:
        print(f"skipped {failed} of {ok + failed} file(s)", file=sys.stderr)
    if not ok:
        raise AudioFileError("no file could be used")


def check_outputs(cfg) -> None:
    """The folders --embeddings and --taggram write to take files: refused before the model runs, not after."""
    if cfg.embeddings:
        check_writable(cfg.embeddings, "--embeddings")
    if cfg.taggram and not cfg.embeddings:
        if Path(cfg.taggram).is_dir():
            raise ConfigError(f"--taggram {shown(cfg.taggram)}: a folder; expected the name of a .png file")
        check_writable(Path(cfg.taggram).resolve().parent, "--taggram")


def tag_files(cfg, model) -> tuple[int, int]:
    """Print each file's top tags (or one JSON list at the end) and draw taggrams; (used, skipped) counts."""
    paths = expand_paths(cfg.audio)
    if not paths:
        raise AudioFileError(f"no audio files in {' '.join(map(shown, cfg.audio))}")
    drawings = taggram_paths(cfg.taggram, paths) if cfg.taggram else {}
    results, failed = [], 0
    for pred in predict_files(paths, model, cfg.workers):
        if not isinstance(pred, TagPrediction):
            print(f"skipped {pred.error}", file=sys.stderr)
            failed += 1
            continue
        results.append(pred.to_json(cfg.top_k))
        if not cfg.json:
            print(format_prediction(pred, cfg.top_k), flush=True)
        if drawings:
            from clmr.plots import save_figure, taggram_figure

            save_figure(
                taggram_figure(pred.chunk_probs, pred.tag_names, pred.times_ms / 1000, shown(pred.path)),
                drawings[pred.path],
            )
            print(f"taggram: {shown(drawings[pred.path])}", file=sys.stderr)
    if cfg.json:
        print(json.dumps(results, indent=2))
    return len(results), failed


# -- what the user reads -------------------------------------------------------------------------
def taggram_paths(base: str | os.PathLike, paths: Sequence[Path]) -> dict[Path, Path]:
    """Where --taggram BASE.png draws each file: BASE.png for one file, BASE_<file stem>.png for several."""
    base = Path(base)
    if len(paths) == 1:
        return {paths[0]: base}
    out: dict[Path, Path] = {}
    used: set[Path] = set()
    for path in paths:
        target, k = base.with_name(f"{base.stem}_{path.stem}{base.suffix or '.png'}"), 1
        while target in used:
            k += 1
            target = base.with_name(f"{base.stem}_{path.stem}_{k}{base.suffix or '.png'}")
        used.add(target)
        out[path] = target
    return out


def format_prediction(pred: TagPrediction, k: int = 10) -> str:
    minutes, seconds = divmod(pred.duration_s, 60)
    n = len(pred.chunk_probs)
    lines = [f"{shown(pred.path)}  {int(minutes)}:{seconds:04.1f}  ({n} chunk{'' if n == 1 else 's'})"]
    width = max(len(t) for t, _ in pred.top(k))
    lines += [f"  {tag:<{width}}  {p:.3f}" for tag, p in pred.top(k)]
    return "\n".join(lines)


def format_embedding_summary(summary: EmbeddingSummary) -> str:
    out = summary.out_dir
    earlier = summary.embedded - summary.computed
    lines = [
        f"embedded {summary.embedded} of {summary.n_files} file(s)"
        + (f" ({earlier} from an earlier run)" if earlier else "")
        + f": {summary.total_chunks} chunks",
        f"{shown(out / EMBEDDINGS)}  ({summary.embedded}, {N_FEATURES}) float32, one row per file",
        f"{shown(out / INDEX)}  row, path, duration_s, n_chunks, chunk_offset",
    ]
    if (out / CHUNKS).is_file():
        lines.append(
            f"{shown(out / CHUNKS)}  ({summary.total_chunks}, {N_FEATURES}) float32, chunks of each file in order"
        )
    if summary.failed:
        lines.append(f"{shown(out / META)}  lists the {len(summary.failed)} skipped file(s) and why")
    return "\n".join(lines)


if __name__ == "__main__":
    cli.run(main)
