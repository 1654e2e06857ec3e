"""Export a CLMR encoder, and optionally encoder + probe head, to ONNX; check each with onnxruntime.

    python export.py --checkpoint_path runs/pretrain_synthetic/checkpoints/last.ckpt
    python export.py --checkpoint_path ENCODER.ckpt --finetuner_checkpoint_path HEAD.ckpt --out exports
"""
from __future__ import annotations

from clmr import cli
from clmr.atomic import check_writable
from clmr.config import ConfigError, load_config
from clmr.export import OPSET, TOLERANCE, export_models

# --out: folder for the .onnx files; --tags: JSON list of tag names (when the head checkpoint has none);
# --tolerance: the largest |onnxruntime - PyTorch| accepted.
OPTIONS = {"out": "exports", "tags": "", "opset": OPSET, "tolerance": TOLERANCE}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="export.py", extra=OPTIONS)
    if not cfg.checkpoint_path:
        raise ConfigError("--checkpoint_path is required: the encoder checkpoint to export")
    check_writable(cfg.out, "--out")  # before the model is loaded and exported, not after
    for exported in export_models(cfg.checkpoint_path, cfg.finetuner_checkpoint_path or None, cfg.out,
                                  tags=cfg.tags or None, opset=cfg.opset, tolerance=cfg.tolerance):
        print(exported.describe())


if __name__ == "__main__":
    cli.run(main)
