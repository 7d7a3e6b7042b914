"""`python -m web_demo --bundles DIR --host 127.0.0.1 --port N`: serve the demo under waitress (production WSGI).

Only parses arguments and starts the server; the app itself comes from `create_app`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from web_demo.wsgi_server import DEFAULT_THREADS


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a folder (it should hold the bundles and manifest.json)")
    return path


def build_parser(prog: str = "python -m web_demo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve the gemma-edge WebGPU demo page.")
    parser.add_argument(
        "--bundles", type=_existing_dir, default=Path("bundles"), help="folder with bundles + manifest.json"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--results-dir", type=Path, default=None, help="also write POSTed benchmark results here")
    parser.add_argument("--vendor-dir", type=Path, default=None,
                        help="the npm-installed @mediapipe/tasks-genai package (default: web_demo/node_modules/...)")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS, help=f"waitress worker threads (default {DEFAULT_THREADS})"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m web_demo") -> int:
    args = build_parser(prog).parse_args(argv)
    from web_demo import create_app
    from web_demo.runtime_files import missing_runtime
    from web_demo.wsgi_server import make_server

    config = {"BUNDLES_DIR": args.bundles, "RESULTS_DIR": args.results_dir}
    if args.vendor_dir is not None:
        config["VENDOR_DIR"] = args.vendor_dir
    try:
        app = create_app(config)
    except Exception as exc:  # noqa: BLE001 - one line at the CLI edge
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = missing_runtime(app.config["VENDOR_DIR"])
    if missing:  # bundles and the API still work; the demo page cannot (it shows this same message)
        print(f"warning: {missing}; the demo page cannot run until then", file=sys.stderr, flush=True)
    server = make_server(app, host=args.host, port=args.port, threads=args.threads)
    host, port = server.effective_host, server.effective_port  # type: ignore[attr-defined]
    print(f"gemma-edge web demo on http://{host}:{port}/ (bundles: {args.bundles.resolve()})", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
