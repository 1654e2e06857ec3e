"""Export a CLMR encoder, and optionally encoder + probe head, to ONNX; check each with onnxruntime.

python export.py --checkpoint_path runs/pretrain_synthetic/checkpoints/last.ckpt
python export.py --checkpoint_path ENCODER.ckpt --finetuner_checkpoint_path HEAD.ckpt --out exports
python export.py --checkpoint_path ENCODER.ckpt --finetuner_checkpoint_path HEAD.ckpt --web web/model
"""

from __future__ import annotations

from clmr import cli
from clmr.atomic import check_writable
from clmr.config import ConfigError, load_config
from clmr.export import MIN_OPSET, OPSET, TOLERANCE, export_models, max_opset
from clmr.rules import Integer, Number, Option, Text
from clmr.web import check_web_dir, publish_for_web

OPTIONS = {
    "out": Option("exports", Text(), "folder for the .onnx files"),
    "tags": Option("", Text(), "JSON list of tag names (when the head checkpoint has none)"),
    "opset": Option(OPSET, Integer(MIN_OPSET, max_opset, note="the opsets the exporter writes"), "ONNX opset"),
    "tolerance": Option(TOLERANCE, Number(0, low_open=True), "the largest |onnxruntime - PyTorch| accepted"),
    "web": Option("", Text(), "also copy the models into this folder for the browser page (web/)"),
}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="export.py", extra=OPTIONS)
    if not cfg.checkpoint_path:
        raise ConfigError("--checkpoint_path is required: the encoder checkpoint to export")
    if cfg.web:
        check_web_dir(cfg.web)
        if not cfg.finetuner_checkpoint_path:
            raise ConfigError(
                f"--web {cfg.web} needs --finetuner_checkpoint_path: the page tags music with encoder + head"
            )
    check_writable(cfg.out, "--out")  # before the model is loaded and exported, not after
    for exported in export_models(
        cfg.checkpoint_path,
        cfg.finetuner_checkpoint_path or None,
        cfg.out,
        tags=cfg.tags or None,
        opset=cfg.opset,
        tolerance=cfg.tolerance,
    ):
        print(exported.describe())
    if cfg.web:
        copied = publish_for_web(cfg.out, cfg.web)
        print(
            f"{cfg.web}: {', '.join(p.name for p in copied)} for the page (serve it: python web/serve.py --model {cfg.web})"
        )


if __name__ == "__main__":
    cli.run(main)
