from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="clmr",
    version="0.1.0",
    description="Contrastive Learning of Musical Representations (CLMR): pre-training, probing and export",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["clmr", "clmr.*"]),
    install_requires=[
        "torch>=2.4",
        "torchaudio>=2.4",
        "pytorch-lightning>=2.2,<3",
        "simclr>=1.0.2",
        "soundfile>=0.12",
        "soxr>=0.3",
        "numpy>=1.24",
        "pyyaml>=6",
        "scikit-learn>=1.3",
        "tensorboard>=2.14",
        "julius>=0.2.7",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={"export": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"], "test": ["pytest>=8"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
    ],
)
