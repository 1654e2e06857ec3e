"""Serve the CLMR web page on http://127.0.0.1:8000, cross-origin isolated (multi-threaded WebAssembly).

    python web/serve.py                          # the page, its model from web/model/
    python web/serve.py --model exports --port 0 # another model folder; port 0: any free port

Standard library only. Every response carries the COOP/COEP headers that make the page
cross-origin isolated, which is what lets onnxruntime-web run its WebAssembly on several threads.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
HOST, PORT = "127.0.0.1", 8000
MODEL_URL = "/model/"
RUNTIME = WEB / "node_modules" / "onnxruntime-web" / "dist"
ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".json": "application/json",
}


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Files under web/, /model/ from the model folder, with isolation headers and no caching."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args, model_dir: Path, quiet: bool, **kwargs):
        self.model_dir, self.quiet = model_dir, quiet
        super().__init__(*args, directory=str(WEB), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.split("?", 1)[0].startswith(MODEL_URL):
            name = path.split("?", 1)[0][len(MODEL_URL) :]
            return str(self.model_dir / Path(name).name) if name else str(self.model_dir)
        return super().translate_path(path)

    def end_headers(self) -> None:
        for key, value in ISOLATION.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=PORT, help="0: any free port (the URL is printed)")
    parser.add_argument(
        "--model",
        type=Path,
        default=WEB / "model",
        help="folder with clmr_tagger.onnx, clmr_tagger.json (and clmr_encoder.onnx)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if not (RUNTIME / "ort.wasm.min.mjs").is_file():
        print(f"warning: {RUNTIME} is missing; run `npm ci` in {WEB} first", file=sys.stderr)
    if not (args.model / "clmr_tagger.json").is_file():
        print(
            f"warning: no model in {args.model}; export one with `python export.py ... --web {args.model}`",
            file=sys.stderr,
        )
    handler = functools.partial(PageHandler, model_dir=args.model.resolve(), quiet=args.quiet)
    try:
        server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as err:
        print(f"error: cannot serve on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"serving http://{args.host}:{server.server_address[1]}/  (model: {args.model}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
