"""Browser page (web/): how far its tags are from predict.py's, by input format, and its seconds per chunk.

    python bench/bench_web.py            # prints the tables (needs node, chromium, npm ci in web/)
    python bench/bench_web.py --record   # and writes `## Browser page` of docs/PERFORMANCE.md

The test model of tests/test_web.py (the calibrated test encoder and a random linear head, whose outputs
move a lot for small changes of the input) is exported with export.py's code; generated files of each
format go through the page in headless Chromium (one launch) and through predict.py's functions. For
resampled formats the exact 22,050 Hz rendering of the same signal ("truth") is tagged too, so that the
page's difference from predict.py can be set beside the difference soxr itself makes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from _common import ROOT, machine, record, table

sys.path.insert(0, str(ROOT / "tests"))  # the test model and the page driver of tests/test_web.py
from clmr.export import export_models, music_like  # noqa: E402
from clmr.hear import load_model  # noqa: E402
from clmr.inference import predict_files  # noqa: E402
from clmr.web import publish_for_web  # noqa: E402
from conftest import write_checkpoints  # noqa: E402
from web_page import SR, drive, missing_tools, serving, stereo_with_truth  # noqa: E402

KINDS = {  # name: (sample rate, channels, soundfile subtype)
    "22,050 Hz mono, float wav": (SR, 1, "FLOAT"),
    "22,050 Hz mono, 16-bit wav": (SR, 1, "PCM_16"),
    "44,100 Hz stereo, float wav": (44100, 2, "FLOAT"),
    "44,100 Hz stereo, 16-bit wav": (44100, 2, "PCM_16"),
    "48,000 Hz stereo, float wav": (48000, 2, "FLOAT"),
}
TIMEOUT_S = 600


def write_files(root: Path, n_files: int, seconds: float) -> list[dict]:
    """Each kind's files, and for resampled kinds the exact 22,050 Hz mono rendering beside them."""
    cases = []
    for kind, (rate, channels, subtype) in KINDS.items():
        for seed in range(n_files):
            path = root / f"{len(cases):03d}.wav"
            case = {"kind": kind, "path": path}
            if channels == 1:
                sf.write(path, music_like(int(seconds * SR), SR, seed), SR, subtype=subtype)
            else:
                stereo, truth = stereo_with_truth(seconds, rate, seed)
                sf.write(path, stereo, rate, subtype=subtype)
                case["truth"] = root / f"{len(cases):03d}_truth.wav"
                sf.write(case["truth"], truth, SR, subtype="FLOAT")
            cases.append(case)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8, help="files per format")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each file (4 chunks at 12 s)")
    parser.add_argument("--speed_seconds", type=float, default=60.0, help="length of the file timed for speed")
    parser.add_argument("--record", action="store_true", help="write the tables to docs/PERFORMANCE.md")
    args = parser.parse_args()
    if missing_tools():
        print(f"bench_web.py skipped: {missing_tools()}")
        return
    about = machine()
    root = Path(tempfile.mkdtemp())
    enc, head = write_checkpoints(root)
    export_models(enc, head, root / "exports")
    publish_for_web(root / "exports", root / "page")
    cases = write_files(root, args.files, args.seconds)
    speed = root / "speed.wav"
    sf.write(speed, music_like(int(args.speed_seconds * SR), SR, 99), SR, subtype="FLOAT")
    steps = [{"file": str(c["path"])} for c in cases] + [{"file": str(speed)}] * 2  # the first run warms up
    with serving(root / "page") as url:
        shown = drive(url, [{"name": "bench", "steps": steps}], root / "out", TIMEOUT_S)
    version, (session,) = shown["version"], shown["sessions"]
    model = load_model(enc, head)
    predicted = {
        p.path: p
        for p in predict_files([c["path"] for c in cases] + [c["truth"] for c in cases if "truth" in c], model)
    }

    rows = []
    for kind in KINDS:
        mine = [(c, s["result"]) for c, s in zip(cases, session["steps"]) if c["kind"] == kind]
        page = [np.array([r["tags"][t] for t in model.tag_names]) for _, r in mine]
        ours = [predicted[c["path"]].probs for c, _ in mine]
        chunks = [np.abs(np.array(r["chunk_probabilities"]) - predicted[c["path"]].chunk_probs).max() for c, r in mine]
        row = [
            kind,
            len(mine),
            sum(r["n_chunks"] for _, r in mine),
            max(np.abs(a - b).max() for a, b in zip(page, ours)),
            max(chunks),
        ]
        if "truth" in mine[0][0]:
            truth = [predicted[c["truth"]].probs for c, _ in mine]
            row += [
                max(np.abs(a - b).max() for a, b in zip(ours, truth)),
                max(np.abs(a - b).max() for a, b in zip(page, truth)),
            ]
        else:
            row += ["-", "-"]
        rows.append(row)
    agreement = table(
        [
            "file",
            "files",
            "chunks",
            "page vs predict.py, track (max)",
            "page vs predict.py, chunk (max)",
            "predict.py vs truth, track (max)",
            "page vs truth, track (max)",
        ],
        rows,
    )

    timed = session["steps"][-1]["result"]
    n, s = timed["n_chunks"], timed["seconds"]
    where = f"{timed['model']['backend']}, {timed['model']['threads']} threads"
    speed_table = table(
        ["file", "chunks", "where", "decode s", "tagger s/chunk", "encoder s/chunk", "x real time (both)"],
        [
            [
                f"{args.speed_seconds:g} s, 22,050 Hz mono",
                n,
                where,
                s["decode"],
                s["tags"] / n,
                s["embedding"] / n,
                args.speed_seconds / (s["decode"] + s["tags"] + s["embedding"]),
            ]
        ],
    )
    command = "python bench/bench_web.py " + shlex.join(sys.argv[1:])
    body = (
        f"The page in headless Chromium {version} (playwright-core), onnxruntime-web's WebAssembly backend; "
        f'the test model of tests/test_web.py. Largest absolute difference of a tag probability; "truth" is '
        f"predict.py on the same signal rendered at 22,050 Hz mono, without resampling:\n\n{agreement}\n\n"
        f"Speed (the second of two runs of the same file; the encoder runs only for the JSON's embedding):\n\n"
        f"{speed_table}\n\n{about}\n\n`{command.strip()}`"
    )
    print("\n" + agreement + "\n\n" + speed_table)
    if args.record:
        record("Browser page", body)
        print("recorded in docs/PERFORMANCE.md (## Browser page)")


if __name__ == "__main__":
    main()
