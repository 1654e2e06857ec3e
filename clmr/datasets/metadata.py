"""Reading the metadata files of the tagging datasets: ground-truth TSVs, tag lists, old pickles.

Label strings such as `[0.0, 1.0, ...]` are parsed as numbers, never evaluated as code; pickles are
read with an unpickler that builds only plain containers (dict, list, str, int, float).
"""

from __future__ import annotations

import ast
import io
import logging
import os
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from clmr.datasets.dataset import DatasetError

log = logging.getLogger(__name__)


def require_files(folder: Path, names: Iterable[str], how: str) -> None:
    """DatasetError naming every file of `names` missing from `folder`, and how to get them."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        listing = "\n".join(f"  {folder / n}" for n in missing)
        raise DatasetError(f"missing {len(missing)} metadata file(s):\n{listing}\n{how}")


def parse_label_vector(text: str, where: str) -> list[float]:
    """`[0.0, 1, ...]` (a Python/JSON list of numbers) as floats; DatasetError naming `where` otherwise."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise DatasetError(f"{where}: expected a label list like [0, 1, ...], got {text[:40]!r}")
    try:
        return [float(x) for x in body[1:-1].split(",")] if body[1:-1].strip() else []
    except ValueError:
        raise DatasetError(f"{where}: labels must be numbers, got {text[:60]!r}") from None


def read_gt_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """A `id<TAB>[labels]` file (musicnn-training's *_gt_*.tsv): ids in file order and a (rows, tags) float32 array.

    The number of tags is that of the first row; every row must have the same.
    """
    ids, rows = [], []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            key, sep, labels = line.rstrip("\n").partition("\t")
            if not sep:
                raise DatasetError(f"{path}:{lineno}: expected 'id<TAB>[labels]', got {line[:60]!r}")
            vector = parse_label_vector(labels, f"{path}:{lineno}")
            if rows and len(vector) != len(rows[0]):
                raise DatasetError(f"{path}:{lineno}: {len(vector)} labels, but the first row has {len(rows[0])}")
            ids.append(key.strip())
            rows.append(vector)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return ids, np.asarray(rows, dtype=np.float32)


def read_label_names(path: Path) -> list[str]:
    """Tag names from musicnn-training's output_labels_*.txt (`NAME = ['a', 'b', ...]`) or one name per line."""
    text = path.read_text()
    for line in text.splitlines():
        if "=" in line and "[" in line:
            try:
                names = ast.literal_eval(line[line.index("[") :].strip())
            except (ValueError, SyntaxError):
                raise DatasetError(f"{path}: cannot parse the label list {line[:60]!r}") from None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DatasetError(f"{path}: expected a list of tag names, got {line[:60]!r}")
            return names
    names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise DatasetError(f"{path}: no tag names found")
    return names


def check_tag_count(names: Sequence[str], n_labels: int, names_file: Path, labels_file: Path) -> None:
    if len(names) != n_labels:
        raise DatasetError(f"{names_file} names {len(names)} tags, but {labels_file} has {n_labels} labels per clip")


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, strings and numbers only; any class or function is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is allowed")


def load_plain_pickle(path: Path):
    """A pickle of plain data (Python 2 or 3); DatasetError if it holds anything else or is damaged."""
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise DatasetError(f"{path}: not a pickle of plain data ({err})") from None


def existing(name: str, files: list[Path], hint: str) -> list[int]:
    """Indices of the tracks whose audio file exists; one warning for the rest, DatasetError if none does."""
    present = [i for i, f in enumerate(files) if os.path.isfile(f)]
    if len(present) == len(files):
        return present
    if not present:
        example = f" (e.g. {files[0]})" if files else ""
        raise DatasetError(f"{name}: none of the {len(files)} converted audio files exist{example}; {hint}")
    missing = sorted(set(range(len(files))) - set(present))
    log.warning(
        "%s: %d of %d audio files are missing and skipped (first: %s); %s",
        name,
        len(missing),
        len(files),
        files[missing[0]],
        hint,
    )
    return present
