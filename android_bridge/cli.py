"""`python -m android_bridge devices|connect|facts|push|bench`: thin argument parsing over the package.

Each subcommand validates its arguments, calls one plain function, prints what it returns, and turns an
`AndroidBridgeError` into one line on stderr with exit status 1 (2 for bad arguments, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from android_bridge.errors import AndroidBridgeError, BenchmarkTimeoutError, DeviceDisconnectedError
from sdk_build.artifacts.manifest import MANIFEST_NAME, load_manifest

HELP = {
    "adb_host": "adb server host (default: ADB_SERVER_SOCKET, ANDROID_ADB_SERVER_HOST, 127.0.0.1)",
    "adb_port": "adb server port (default: ADB_SERVER_SOCKET, ANDROID_ADB_SERVER_PORT, 5037)",
    "serial": "device serial from `devices` (USB serial or HOST:PORT; HOST:PORT is `adb connect`ed if needed)",
    "binary": "LiteRT-LM `litert_lm_main` for the phone's ABI (default: $LITERT_LM_MAIN); see docs/android_bridge.md",
    "bundle_dir": "benchmark every .task/.litertlm listed in DIR/manifest.json (or found in DIR)",
    "out": "write results as JSON (a list of the lab's result records) here, and a Markdown table beside it",
    "thermal_limit": "start a run only below this skin (else battery) temperature, degrees C",
    "timeout": "time-out of one benchmark run, seconds",
}


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a file")
    return path


def _existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a folder")
    return path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser(prog: str = "python -m android_bridge") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--adb-host", help=HELP["adb_host"])
    parser.add_argument("--adb-port", type=int, help=HELP["adb_port"])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list devices the adb server sees")
    connect = sub.add_parser("connect", help="adb connect HOST:PORT")
    connect.add_argument("address", help="HOST:PORT of a device adb can reach over TCP")
    facts = sub.add_parser("facts", help="print what a device is (JSON)")
    facts.add_argument("--serial", required=True, help=HELP["serial"])
    push = sub.add_parser("push", help="push a file unless the device has the same sha256 (resumable)")
    push.add_argument("--serial", required=True, help=HELP["serial"])
    push.add_argument("file", type=_existing_file, help="the file to push (a bundle)")
    push.add_argument("--remote-dir", default="/data/local/tmp/gemma-edge",
                      help="folder on the device (default /data/local/tmp/gemma-edge)")
    push.add_argument("--chunk-mib", type=_positive, default=64, help="resume granularity, MiB")
    bench = sub.add_parser("bench", help="benchmark bundles on a device with litert_lm_main")
    bench.add_argument("--serial", required=True, help=HELP["serial"])
    bench.add_argument("--bundle", type=_existing_file, action="append", default=[], help="a bundle file (repeatable)")
    bench.add_argument("--bundles", "--bundle-dir", dest="bundle_dir", type=_existing_dir,
                       help=HELP["bundle_dir"] + " (--bundle-dir: its older name)")
    bench.add_argument("--binary", type=Path, default=os.environ.get("LITERT_LM_MAIN"), help=HELP["binary"])
    bench.add_argument("--lib", type=_existing_file, action="append", default=[],
                       help="shared library to push beside the binary (GPU accelerator .so), repeatable")
    bench.add_argument("--backend", choices=("cpu", "gpu"), action="append", help="repeatable (default: cpu)")
    bench.add_argument("--prefill", type=_positive, default=256, help="prefill tokens (default 256)")
    bench.add_argument("--decode", type=_positive, default=256, help="decode tokens (default 256)")
    bench.add_argument("--runs", type=_positive, default=3, help="measured runs per bundle (default 3)")
    bench.add_argument("--warmup", type=int, default=1, help="discarded warm-up runs (default 1)")
    bench.add_argument("--threads", type=int, default=None,
                       help="--num_cpu_threads (default: number of big cores; 0: omit)")
    bench.add_argument("--thermal-limit", type=float, default=40.0, help=HELP["thermal_limit"])
    bench.add_argument("--cooldown-max", type=float, default=600.0, help="longest wait for cooling, seconds")
    bench.add_argument("--timeout", type=float, default=600.0, help=HELP["timeout"])
    bench.add_argument("--output", "--out", dest="out", type=Path, default=Path("reports/android.json"),
                       help=HELP["out"] + " (--out: its older name)")
    bench.add_argument("--log-dir", type=Path, help="keep each run's raw litert_lm_main log here")
    return parser


def bundles_in(folder: Path) -> list[Path]:
    if (folder / MANIFEST_NAME).is_file():
        found = [folder / e.file for e in load_manifest(folder).bundles if (folder / e.file).is_file()]
    else:
        found = sorted([*folder.glob("*.task"), *folder.glob("*.litertlm")])
    return found


def main(argv: Sequence[str] | None = None, prog: str = "python -m android_bridge") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return _dispatch(args)
    except AndroidBridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from android_bridge import discovery, facts, push
    from android_bridge.server import resolve_server

    server = resolve_server(args.adb_host, args.adb_port)
    if args.command == "devices":
        for dev in discovery.list_devices(server):
            print(f"{dev.serial}\t{dev.state}\t{dev.transport}\tmodel:{dev.model}\tproduct:{dev.product}")
        return 0
    if args.command == "connect":
        dev = discovery.connect(server, args.address)
        print(f"connected {dev.serial} ({dev.model}) on {server}")
        return 0
    if args.command == "facts":
        device = discovery.open_device(server, args.serial)
        print(json.dumps(facts.read_facts(device).to_dict(), indent=2))
        return 0
    if args.command == "push":
        device = discovery.open_device(server, args.serial)
        report = push.push_file(device, args.file, args.remote_dir, chunk_bytes=args.chunk_mib * 2**20,
                                progress=_progress)
        print(file=sys.stderr)
        print(json.dumps(report.__dict__, indent=2))
        return 0
    return _bench(args)


def _progress(done: int, total: int) -> None:
    print(f"\r{done / 2**20:.1f} / {total / 2**20:.1f} MiB", end="", file=sys.stderr, flush=True)


def _bench(args: argparse.Namespace) -> int:
    from android_bridge.benchmark import run_android_benchmark
    from android_bridge.report import markdown_table, write_results

    if args.binary is None or not Path(args.binary).is_file():
        raise AndroidBridgeError(f"litert_lm_main binary {args.binary} not found: pass --binary PATH or set "
                                 "LITERT_LM_MAIN (docs/android_bridge.md says where to get it)")
    bundles = list(args.bundle) + (bundles_in(args.bundle_dir) if args.bundle_dir else [])
    if not bundles:
        raise AndroidBridgeError("no bundles: pass --bundle FILE or --bundle-dir DIR (with .task/.litertlm files)")
    results = []
    failed = False
    for bundle in bundles:
        for backend in args.backend or ["cpu"]:
            try:
                result = run_android_benchmark(
                    args.serial, bundle, binary_path=args.binary, backend=backend, prefill_tokens=args.prefill,
                    decode_tokens=args.decode, runs=args.runs, warmup=args.warmup, adb_host=args.adb_host,
                    adb_port=args.adb_port, thermal_limit_c=args.thermal_limit, cooldown_max_s=args.cooldown_max,
                    timeout_s=args.timeout, threads=args.threads, binary_libs=args.lib, log_dir=args.log_dir,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True))
            except (DeviceDisconnectedError, BenchmarkTimeoutError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                if exc.result is None:
                    raise
                result = exc.result
            failed = failed or result.status != "ok"
            results.append(result)
            write_results(results, args.out)  # after every bundle: a crash later keeps what was measured
    json_path, table_path = write_results(results, args.out)
    print(markdown_table(results))
    print(f"wrote {json_path} and {table_path}", file=sys.stderr)
    return 1 if failed else 0
