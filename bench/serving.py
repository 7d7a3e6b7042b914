"""Bundle serving vs nginx: download a ~1 GiB bundle from our server and from nginx, side by side.

    python -m bench.serving                                   # a generated 1 GiB file of random bytes
    python -m bench.serving --file /tmp/m1b/gemma3-1b-it-int8-web.task     # a real 1B bundle (1005 MiB)

Both servers serve the same folder in this one invocation: ours is `python -m web_demo` (waitress with
web_demo/wsgi_server.py's sendfile channel, exactly as `nox -s demo` starts it) and nginx is Debian's package
with `sendfile on` (bench/nginx_server.py). The folder holds the bundle (a hard link to `--file`, or a generated
file) and a manifest listing it, since our server only serves manifest-listed files.

Workloads, repeated and interleaved (ours and nginx alternate, in alternating order, so a busy moment on the
machine hits both): one plain GET of the whole file, and `--streams` (64) parallel Range GETs, each a distinct
slice, together the whole file. The Python client (bench/http_download.py: a thread and connection per stream,
`readinto` a preallocated buffer) reassembles the file and checks its sha256 every run; failed requests and
short reads are counted as errors. The same two workloads again with curl writing to /dev/null
(bench/curl_download.py) cross-check that the ratio is the servers' and not the client's. The table gives
median throughput, the ratio ours / nginx, errors, and the server's CPU seconds per GiB (the first place where
a slower server shows why).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.children import ChildFailed, child_process, free_port, http_ok, tree_cpu_seconds, wait_until
from bench.common import DEFAULT_RESULTS_DIR, median, print_table, ratio, write_results
from bench.curl_download import curl_download, find_curl
from bench.http_download import DownloadBuffer, Transfer, download
from bench.nginx_server import NginxMissing, find_nginx, nginx_version, running_nginx
from sdk_build.artifacts.manifest import BundleEntry, sha256_file, update_manifest

MIB = 2**20
GIB = 2**30
SERVERS = ("ours", "nginx")


@dataclasses.dataclass(frozen=True)
class Served:
    """The bundle both servers serve: its folder, file name, size and sha256."""

    directory: Path
    name: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Run:
    server: str
    mode: str
    transfer: Transfer
    server_cpu_s: float


def generate_file(path: Path, size: int, chunk: int = 64 * MIB) -> None:
    """`size` random bytes (incompressible, like a quantized model), written in chunks with progress."""
    with open(path, "wb") as out:
        written = 0
        while written < size:
            n = min(chunk, size - written)
            out.write(os.urandom(n))
            written += n
            print(f"\r  generating {path.name}: {written / MIB:,.0f} / {size / MIB:,.0f} MiB", end="", flush=True)
    print()


def place_file(source: Path, target: Path) -> None:
    """Link `source` into the served folder (a hard link is free; a symlink where the file system refuses)."""
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source.resolve())


def prepare_bundle(directory: Path, source: Path | None, size: int) -> Served:
    """Fill `directory` with one bundle and a manifest listing it (our server only serves listed files)."""
    if source is not None:
        if not source.is_file():
            raise FileNotFoundError(f"--file {source} is not a file")
        name = source.name
        place_file(source, directory / name)
    else:
        name = f"bench-{size // MIB}MiB.task"
        generate_file(directory / name, size)
    path = directory / name
    actual = path.stat().st_size
    print(f"  sha256 of {name} ({actual / MIB:,.1f} MiB) ...", flush=True)
    sha = sha256_file(path)
    # The stamp of the bytes just hashed: the server then trusts them without hashing again (web_demo/bundle_index.py).
    update_manifest(directory, bench_entry(name, actual, sha, mtime_ns=path.stat().st_mtime_ns))
    return Served(directory, name, actual, sha)


def bench_entry(name: str, size: int, sha: str, mtime_ns: int | None = None) -> BundleEntry:
    """A manifest entry for a file that is only served, never run: the model fields say 'benchmark'."""
    return BundleEntry(
        file=name,
        bytes=size,
        sha256=sha,
        model="bench",
        quantization="none",
        ekv=0,
        prefill_lengths=[],
        target="bench",
        format="task",
        instruction_tuned=False,
        start_token="",
        stop_tokens=[],
        prompt_template={},
        checkpoint={"ref": "bench:serving", "fingerprint": ""},
        spec_fingerprint="",
        tool_versions={},
        build_seconds=0.0,
        peak_rss_bytes=0,
        created_utc="1970-01-01T00:00:00Z",
        extra={"purpose": "bench.serving"},
        mtime_ns=mtime_ns,
    )


@contextlib.contextmanager
def running_ours(
    served: Served, work: Path, host: str, port: int, threads: int | None, code_from: Path | None = None
) -> Iterator[int]:
    """`python -m web_demo` (waitress) on the folder; yields its pid once the bundle answers a HEAD.

    `code_from`: a checkout whose web_demo (and sdk_build) to run instead of this one's, to measure a change
    before and after with the same script (e.g. `git archive HEAD | tar -x -C DIR`).
    """
    command = [
        sys.executable,
        "-m",
        "web_demo",
        "--bundles",
        str(served.directory),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if threads is not None:
        command += ["--threads", str(threads)]
    log = work / "web_demo.log"
    base = f"http://{host}:{port}"
    env = None
    if code_from is not None:
        env = {**os.environ, "PYTHONPATH": str(code_from.resolve())}
    with child_process(command, log, env=env, cwd=code_from) as process:
        wait_until(
            lambda: http_ok(f"{base}/bundles/{served.name}", method="HEAD"),
            process,
            log,
            what="python -m web_demo",
            timeout_s=60,
        )
        yield process.pid


def nginx_master_pid(prefix: Path) -> int:
    return int((prefix / "nginx.pid").read_text().strip())


@dataclasses.dataclass(frozen=True)
class Workload:
    """One way of fetching the whole file: which client, how many streams."""

    key: str
    label: str
    client: str  # "python" (bytes kept and verified) or "curl" (discarded; cross-check)
    streams: int


def workloads(streams: int, with_curl: bool) -> list[Workload]:
    found = [
        Workload("single", "1 stream", "python", 1),
        Workload("parallel", f"{streams} parallel ranges", "python", streams),
    ]
    if with_curl:
        found += [
            Workload("curl_single", "1 stream, curl", "curl", 1),
            Workload("curl_parallel", f"{streams} ranges, curl -Z", "curl", streams),
        ]
    return found


def measure(
    served: Served,
    plan: list[Workload],
    *,
    repeats: int,
    host: str,
    threads: int | None,
    nginx_binary: str | None,
    curl: str | None,
    code_from: Path | None = None,
) -> list[Run]:
    """Start both servers, warm both up once, then run the interleaved repeats; return every run."""
    runs: list[Run] = []
    buffer = DownloadBuffer(served.size)
    with tempfile.TemporaryDirectory(prefix="gemma-edge-serving-") as scratch:
        work = Path(scratch)
        ours_port, nginx_port = free_port(host), free_port(host)
        with (
            running_ours(served, work, host, ours_port, threads, code_from) as ours_pid,
            running_nginx(served.directory, work / "nginx", host, nginx_port, f"/{served.name}", nginx_binary),
        ):
            targets = {
                "ours": (ours_port, f"/bundles/{served.name}", ours_pid),
                "nginx": (nginx_port, f"/{served.name}", nginx_master_pid(work / "nginx")),
            }

            def one(server: str, workload: Workload) -> Run:
                port, path, pid = targets[server]
                cpu_before = tree_cpu_seconds(pid)
                if workload.client == "curl" and curl:
                    transfer = curl_download(curl, f"http://{host}:{port}{path}", served.size, workload.streams)
                else:
                    transfer = download(host, port, path, buffer, served.sha256, workload.streams)
                return Run(server, workload.key, transfer, tree_cpu_seconds(pid) - cpu_before)

            for server in SERVERS:  # page cache and connections warm for both before anything is timed
                warm = one(server, plan[0])
                print(
                    f"  warm-up {server}: {warm.transfer.bytes_per_second / MIB:,.0f} MiB/s"
                    f"{'' if warm.transfer.sha256_ok else ' (sha256 MISMATCH)'}",
                    flush=True,
                )
            for repeat in range(repeats):
                order = SERVERS if repeat % 2 == 0 else SERVERS[::-1]
                for workload in plan:
                    for server in order:
                        run = one(server, workload)
                        runs.append(run)
                        t = run.transfer
                        check = {True: "ok", False: "BAD", None: "not kept"}[t.sha256_ok]
                        print(
                            f"  [{repeat + 1}/{repeats}] {server:5} {workload.label:22} "
                            f"{t.bytes_per_second / MIB:8,.0f} MiB/s {t.seconds:6.2f} s  errors {len(t.errors)}  "
                            f"sha256 {check}  server cpu {run.server_cpu_s:.2f} s",
                            flush=True,
                        )
    buffer.release()
    return runs


def summarize(runs: list[Run], served: Served, plan: list[Workload]) -> tuple[list[list[Any]], dict[str, Any]]:
    """Per workload: median MiB/s of each side, ratio, errors, checksum failures, server CPU s per GiB."""
    rows: list[list[Any]] = []
    summary: dict[str, Any] = {}
    for workload in plan:
        per: dict[str, dict[str, Any]] = {}
        for server in SERVERS:
            mine = [r for r in runs if r.server == server and r.mode == workload.key]
            per[server] = {
                "runs": len(mine),
                "median_mib_s": median([r.transfer.bytes_per_second / MIB for r in mine]),
                "all_mib_s": [round(r.transfer.bytes_per_second / MIB, 1) for r in mine],
                "errors": sum(len(r.transfer.errors) for r in mine),
                "error_samples": [e for r in mine for e in r.transfer.errors][:5],
                "sha256_checked": all(r.transfer.sha256_ok is not None for r in mine),
                "sha256_failures": sum(r.transfer.sha256_ok is False for r in mine),
                "server_cpu_s_per_gib": median([r.server_cpu_s / (served.size / GIB) for r in mine]),
            }
        rel = ratio(per["ours"]["median_mib_s"], per["nginx"]["median_mib_s"])
        summary[workload.key] = {
            "label": workload.label,
            "client": workload.client,
            "streams": workload.streams,
            **per,
            "ratio_ours_over_nginx": rel,
        }
        checked = per["ours"]["sha256_checked"] and per["nginx"]["sha256_checked"]
        rows.append(
            [
                workload.label,
                per["ours"]["median_mib_s"],
                per["nginx"]["median_mib_s"],
                rel,
                f"{per['ours']['errors']} / {per['nginx']['errors']}",
                f"{per['ours']['sha256_failures']} / {per['nginx']['sha256_failures']}" if checked else "not kept",
                f"{per['ours']['server_cpu_s_per_gib']:.2f} / {per['nginx']['server_cpu_s_per_gib']:.2f}",
            ]
        )
    return rows, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help="serve this file (e.g. a 1B .task); default: a generated file of --size-mib random bytes",
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the generated file (default 1024)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per server and workload (default 7)")
    parser.add_argument("--streams", type=int, default=64, help="parallel Range requests (default 64)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="waitress threads for our server (default: python -m web_demo's own default)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--nginx", default=None, help="nginx binary (default: nginx on PATH or /usr/sbin/nginx)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the served folder is made (default: the temp dir; --file is hard-linked "
        "there when on the same file system, else symlinked)",
    )
    parser.add_argument(
        "--ours-from",
        type=Path,
        default=None,
        help="run our server from this checkout instead (before/after comparisons, e.g. an older commit)",
    )
    parser.add_argument(
        "--no-curl", action="store_true", help="skip the curl cross-check rows (they are skipped anyway without curl)"
    )
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--name", default="serving", help="results file name (default serving -> serving.json)")
    args = parser.parse_args(argv)
    if args.ours_from is not None and not (args.ours_from / "web_demo" / "__main__.py").is_file():
        parser.error(f"--ours-from {args.ours_from} has no web_demo/__main__.py (give a checkout of this repository)")
    if args.repeats < 1 or args.streams < 1 or args.size_mib < 1:
        parser.error("--repeats, --streams and --size-mib must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        nginx = find_nginx(args.nginx)
    except NginxMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    curl = None if args.no_curl else find_curl()
    if curl is None and not args.no_curl:
        print("note: curl not found; the curl cross-check rows are skipped (apt-get install curl)", flush=True)
    plan = workloads(args.streams, with_curl=curl is not None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gemma-edge-served-", dir=args.work_dir) as folder:
        os.chmod(folder, 0o755)
        print("preparing the served folder", flush=True)
        served = prepare_bundle(Path(folder), args.file, args.size_mib * MIB)
        print(f"serving {served.name}: {served.size:,} bytes, ours (waitress) vs {nginx_version(nginx)}", flush=True)
        try:
            runs = measure(
                served,
                plan,
                repeats=args.repeats,
                host=args.host,
                threads=args.threads,
                nginx_binary=nginx,
                curl=curl,
                code_from=args.ours_from,
            )
        except (ChildFailed, OSError) as exc:  # one line at the CLI edge, with the server's log tail
            print(f"error: {exc}", file=sys.stderr)
            return 1
    rows, summary = summarize(runs, served, plan)
    print_table(
        f"Serving {served.name} ({served.size / GIB:.2f} GiB) over loopback, median of {args.repeats} "
        "(ratio = ours / nginx; pairs are ours / nginx)",
        [
            "workload",
            "ours MiB/s",
            "nginx MiB/s",
            "ratio",
            "errors",
            "bad sha256",
            "server CPU s/GiB",
        ],
        rows,
    )
    path = write_results(
        args.name,
        {
            "command": " ".join(["python -m bench.serving", *(argv if argv is not None else sys.argv[1:])]),
            "file": {
                "name": served.name,
                "bytes": served.size,
                "sha256": served.sha256,
                "source": str(args.file) if args.file else "generated random bytes",
            },
            "servers": {
                "ours": "python -m web_demo (waitress)"
                + (f" --threads {args.threads}" if args.threads else "")
                + (f", code from {args.ours_from}" if args.ours_from else ""),
                "nginx": f"{nginx_version(nginx)}, sendfile on, worker_processes auto",
            },
            "clients": {
                "python": "http.client, one thread and connection per stream, readinto a preallocated buffer, "
                "sha256 of the reassembled file checked",
                "curl": "curl -o /dev/null (-Z --parallel-max N for ranges), statuses and sizes checked, "
                "bytes not kept",
            },
            "repeats": args.repeats,
            "streams": args.streams,
            "results": summary,
            "runs": [
                {
                    "server": r.server,
                    "mode": r.mode,
                    "seconds": round(r.transfer.seconds, 4),
                    "bytes": r.transfer.bytes_received,
                    "errors": list(r.transfer.errors),
                    "sha256_ok": r.transfer.sha256_ok,
                    "server_cpu_s": round(r.server_cpu_s, 3),
                }
                for r in runs
            ],
            "wall_seconds": round(time.monotonic() - started, 1),
        },
        args.results_dir,
    )
    print(f"results: {path}")
    bad = sum(s[k]["errors"] + s[k]["sha256_failures"] for s in summary.values() for k in SERVERS)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
