"""Screenshot of the demo after an answer (for docs/web_demo_screenshot.png).

    python -m web_demo.screenshot --bundles DIR [--bundle FILE] [--runtime auto|mediapipe|litert-lm] [--prompt TEXT]
                                  [--out docs/web_demo_screenshot.png]

Starts the app under waitress on a free loopback port (or uses --base-url), asks one question in headless
Chromium and saves a full-page PNG. The runtime is the page's: by default the one for the bundle's format
(`.task`: MediaPipe, `.litertlm`: LiteRT-LM).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from web_demo.automation import RUNTIMES, ask, launch_browser, open_demo

DEFAULT_PROMPT = "The capital of France is"


@contextlib.contextmanager
def serve_in_thread(bundles: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """The real app under the production server (web_demo.wsgi_server) in a daemon thread; yields its base URL."""
    from web_demo import create_app
    from web_demo.wsgi_server import make_server

    server = make_server(create_app({"BUNDLES_DIR": bundles}), host=host, port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"  # type: ignore[attr-defined]
    finally:
        server.close()


def capture_screenshot(
    base_url: str,
    bundle_file: str,
    out: Path,
    prompt: str = DEFAULT_PROMPT,
    *,
    precision: str = "auto",
    runtime: str = "auto",
    max_tokens: int | None = 32,
    chromium_path: str | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Ask `prompt` with `bundle_file` and save a full-page PNG at `out`; returns what `ask` returned."""
    with launch_browser(chromium_path) as context:
        page = open_demo(context, base_url)
        page.set_viewport_size({"width": 1000, "height": 900})
        answer = ask(page, bundle_file, prompt, precision=precision, runtime=runtime, max_tokens=max_tokens, top_k=1,
                     temperature=0, timeout_s=timeout_s)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    return answer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m web_demo.screenshot", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundles", type=Path, help="serve this bundle folder on a free port")
    source.add_argument("--base-url", help="use a running web_demo server")
    parser.add_argument("--bundle", help="bundle file name (default: the first .task in the manifest)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="what to ask the model")
    parser.add_argument("--precision", default="auto", choices=["auto", "f16", "f32"],
                        help="activation precision the page asks for (default auto: F16 where the adapter has shader-f16)")
    parser.add_argument("--runtime", default="auto", choices=list(RUNTIMES),
                        help="the page's runtime (default auto: by the bundle's format)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for the answer (the real 270M: minutes)")
    parser.add_argument("--max-tokens", type=int, default=32,
                        help="prompt + answer tokens (default 32: the 270M decodes ~0.5 tok/s on SwiftShader)")
    parser.add_argument("--output", "--out", dest="out", type=Path, default=Path("docs/web_demo_screenshot.png"),
                        help="PNG to write (default docs/web_demo_screenshot.png; --out: its older name)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    with contextlib.ExitStack() as stack:
        base_url = args.base_url or stack.enter_context(serve_in_thread(args.bundles))
        bundle = args.bundle
        if bundle is None:
            import json
            import urllib.request

            with urllib.request.urlopen(f"{base_url}/api/bundles?format=task") as response:
                listed = json.load(response)["bundles"]
            if not listed:
                print("error: no .task bundle in the manifest", file=sys.stderr)
                return 2
            bundle = listed[0]["file"]
        answer = capture_screenshot(base_url, bundle, args.out, args.prompt, precision=args.precision,
                                    runtime=args.runtime, max_tokens=args.max_tokens, timeout_s=args.timeout)
    if answer["error"]:
        print(f"warning: the page reported an error: {answer['error']}", file=sys.stderr)
    print(f"saved {args.out} ({bundle}: {answer['text'][:80]!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
