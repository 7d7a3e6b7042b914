"""A second client for the serving benchmark: curl, writing to /dev/null (a cross-check, not a verification).

bench/http_download.py keeps every byte to check the sha256, which costs the client a write into a 1 GiB buffer;
curl reads into a small cache-resident buffer and discards it. If ours / nginx comes out the same with both
clients, the ratio is the servers', not the client's. Statuses and sizes are checked per transfer (curl's
`-w`), bytes are not.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from bench.http_download import Transfer, slices


class CurlMissing(RuntimeError):
    pass


def find_curl() -> str | None:
    return shutil.which("curl")


def curl_command(curl: str, url: str, size: int, streams: int) -> list[str]:
    """One curl process: a plain GET, or `streams` Range GETs run in parallel (-Z), one connection each."""
    report = ["-w", "%{http_code} %{size_download}\\n", "-o", "/dev/null", "--http1.1", "-sS"]
    if streams == 1:
        return [curl, *report, url]
    command = [curl, "-Z", "--parallel-max", str(streams), "--parallel-immediate"]
    for index, (start, stop) in enumerate(slices(size, streams)):
        if index:
            command.append("--next")
        command += [*report, "-r", f"{start}-{stop - 1}", url]
    return command


def curl_download(curl: str, url: str, size: int, streams: int) -> Transfer:
    """Time one curl run fetching the whole file; errors are wrong statuses, wrong sizes and curl's own."""
    command = curl_command(curl, url, size, streams)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    expected_status = "200" if streams == 1 else "206"
    wanted = sorted(stop - start for start, stop in slices(size, streams))
    errors: list[str] = []
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    sizes = sorted(int(parts[1]) for parts in lines if len(parts) == 2 and parts[1].isdigit())
    bad_status = [parts[0] for parts in lines if parts and parts[0] != expected_status]
    if bad_status:
        errors.append(f"HTTP statuses {sorted(set(bad_status))} (expected {expected_status})")
    if sizes != wanted:
        errors.append(f"sizes received differ from the slices asked for ({len(sizes)} transfers reported)")
    if done.returncode != 0:
        errors.append(f"curl exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return Transfer(streams, seconds, sum(sizes), tuple(errors), None)
