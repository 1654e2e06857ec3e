"""Which output each input of a conversion gets: the jobs of `preprocess.py`.

Each output mirrors its input's path below the output root, with `.wav`; inputs whose outputs would
collide (tone.flac and tone.ogg -> tone.wav) keep their extension instead (tone.flac.wav, tone.ogg.wav).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from clmr.audio import AUDIO_EXTENSIONS
from clmr.filenames import shown

INPUT_EXTENSIONS = AUDIO_EXTENSIONS + (".au", ".snd")


class PreprocessError(ValueError):
    """A conversion that cannot start or go on: a missing input folder, a bad option, outputs that would
    collide, an output folder that stopped taking files."""


@dataclass(frozen=True)
class Job:
    """Convert `src` to `dst`; `skip` holds a reason when the input is known to be unusable."""

    src: Path
    dst: Path
    skip: str = ""


def plan_mirror(
    src_root: str | os.PathLike,
    dst_root: str | os.PathLike,
    exclude: Mapping[str, str] | None = None,
    extensions: Iterable[str] = INPUT_EXTENSIONS,
) -> list[Job]:
    """One job per audio file below `src_root`, its output at the same relative path below `dst_root` as .wav.

    `exclude` maps relative input paths (with `/`) to the reason they are skipped. Inputs whose outputs
    would collide are given distinct ones (`distinct_outputs`).
    """
    if not Path(src_root).is_dir():
        raise PreprocessError(f"{shown(src_root)}: input folder not found")
    src_root, dst_root = Path(src_root).resolve(), Path(dst_root).resolve()
    extensions = tuple(e.lower() for e in extensions)
    exclude = exclude or {}
    jobs = []
    for src in sorted(src_root.rglob("*")):
        if src.suffix.lower() not in extensions or src.name.startswith(".") or not src.is_file():
            continue
        rel = src.relative_to(src_root)
        if dst_root in src.parents:  # an output folder inside the input folder is not input
            continue
        jobs.append(Job(src, dst_root / rel.with_suffix(".wav"), exclude.get(rel.as_posix(), "")))
    return distinct_outputs(jobs)


def distinct_outputs(jobs: list[Job]) -> list[Job]:
    """Never two inputs onto one output: where outputs collide (tone.flac, tone.ogg -> tone.wav; compared
    case-insensitively, for case-insensitive disks), a .wav input keeps its name and the others keep their
    extension (tone.flac.wav, tone.ogg.wav). A collision that remains is refused, naming both inputs."""
    groups: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        groups[_output_key(job.dst)].append(job)
    out = []
    for job in jobs:
        group = groups[_output_key(job.dst)]
        keeps_name = len(group) == 1 or (
            job.src.suffix.lower() == ".wav" and sum(j.src.suffix.lower() == ".wav" for j in group) == 1
        )
        out.append(job if keeps_name else Job(job.src, job.dst.with_name(job.src.name + ".wav"), job.skip))
    owner: dict[str, Job] = {}
    for job in out:
        other = owner.setdefault(_output_key(job.dst), job)
        if other is not job:
            raise PreprocessError(
                f"{shown(other.src)} and {shown(job.src)} would both be converted to "
                f"{shown(job.dst)}; rename one of them"
            )
    return out


def _output_key(dst: Path) -> str:
    return str(dst).casefold()
