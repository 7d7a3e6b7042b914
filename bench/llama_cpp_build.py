"""Build llama.cpp once, from the source llama-cpp-python ships on PyPI, and find it again afterwards.

llama.cpp has no wheel we can trust to run on an arbitrary CPU, and the only registry this project may use is PyPI;
`llama-cpp-python`'s sdist vendors the whole llama.cpp tree (`vendor/llama.cpp`) next to its ctypes bindings. So:
download that sdist at a pinned version, build `llama-bench` (the speed side) and the shared `libllama` (the logits
side, driven through the sdist's own bindings, which match that very library) with CMake, and keep the result in a
cache directory keyed by version and CPU flags. Later runs only check that the cache is whole.

The CPU flags are chosen from /proc/cpuinfo rather than with GGML_NATIVE=ON: `-march=native` has produced binaries
that die with "Illegal instruction" on these virtual machines, and baking in AVX-512 (as on the machine the first measurements were
written on) would crash on the AVX2-only CPUs other runs land on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from sdk_build.sources.checkpoint import default_cache_dir
from sdk_build.system.atomic import atomic_write_json

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
DISKCACHE_VERSION = "5.6.3"  # llama_cpp/__init__ imports it (llama_cache.py); pure Python
BUILD_TARGETS = ("llama-bench", "llama", "llama-quantize")  # llama-quantize: the K-quant GGUFs gguf-py cannot write
BUILD_LAYOUT_VERSION = "2"  # bump when the cmake options or the cache layout change

# /proc/cpuinfo flag -> ggml CMake option. Ordered as ggml's own CMakeLists lists them.
CPU_FLAG_OPTIONS: tuple[tuple[str, str], ...] = (
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("bmi2", "GGML_BMI2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("avx_vnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
    ("amx_tile", "GGML_AMX_TILE"),
    ("amx_int8", "GGML_AMX_INT8"),
    ("amx_bf16", "GGML_AMX_BF16"),
)
FIXED_CMAKE_OPTIONS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_COMMON=ON",
)


class LlamaCppError(RuntimeError):
    """llama.cpp could not be fetched, built or found; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class LlamaCppBuild:
    """A finished build: where its pieces are and how it was made."""

    root: Path
    version: str
    cmake_options: tuple[str, ...]

    @property
    def bin_dir(self) -> Path:
        return self.root / "build" / "bin"

    @property
    def llama_bench(self) -> Path:
        return self.bin_dir / "llama-bench"

    @property
    def llama_quantize(self) -> Path:
        return self.bin_dir / "llama-quantize"

    @property
    def lib_dir(self) -> Path:
        """Folder holding libllama.so (and the libggml*.so it needs): what LLAMA_CPP_LIB_PATH must name."""
        return self.bin_dir

    @property
    def python_dir(self) -> Path:
        """The sdist's `llama_cpp` bindings plus diskcache: put on PYTHONPATH of the process that uses them."""
        return self.root / "python"

    def python_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process that imports `llama_cpp` against this very libllama."""
        env = dict(os.environ if base is None else base)
        env["LLAMA_CPP_LIB_PATH"] = str(self.lib_dir)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.python_dir), env.get("PYTHONPATH", "")) if p)
        return env

    def describe(self) -> dict[str, object]:
        return {"llama_cpp_python": self.version, "root": str(self.root), "cmake_options": list(self.cmake_options)}


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_options_for(flags: set[str]) -> tuple[str, ...]:
    """ggml's instruction-set options, each ON exactly when this CPU reports the feature."""
    chosen = [f"-D{option}={'ON' if flag in flags else 'OFF'}" for flag, option in CPU_FLAG_OPTIONS]
    return (*FIXED_CMAKE_OPTIONS, *chosen)


def this_cpu_options() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError as exc:
        raise LlamaCppError(f"cannot read /proc/cpuinfo to choose llama.cpp's CPU flags: {exc}") from exc
    return cmake_options_for(cpu_flags(text))


def build_root(cache_dir: Path, version: str, options: tuple[str, ...]) -> Path:
    """One folder per (version, options): a build for another CPU never overwrites this one."""
    digest = hashlib.sha256(json.dumps([BUILD_LAYOUT_VERSION, list(options)]).encode()).hexdigest()[:12]
    return Path(cache_dir) / "llama.cpp" / f"llama-cpp-python-{version}-{digest}"


def ensure_llama_cpp(
    cache_dir: Path | None = None, version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int | None = None
) -> LlamaCppBuild:
    """The cached build for this CPU, building it first (about 5-10 minutes on 2 cores) when missing."""
    options = this_cpu_options()
    root = build_root(cache_dir or default_cache_dir(), version, options)
    build = LlamaCppBuild(root, version, options)
    marker = root / "READY.json"
    if marker.is_file() and _complete(build):
        return build
    root.mkdir(parents=True, exist_ok=True)
    source = _fetch_source(root, version)
    _cmake_build(source / "vendor" / "llama.cpp", root / "build", options, jobs or os.cpu_count() or 2)
    _install_bindings(source, build.python_dir)
    if not _complete(build):
        raise LlamaCppError(f"llama.cpp built, but {build.llama_bench} or libllama.so is missing under {build.bin_dir}")
    shutil.rmtree(source / "vendor" / "llama.cpp" / "models", ignore_errors=True)  # test vocabularies, ~100 MB
    atomic_write_json(marker, {**build.describe(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return build


def _complete(build: LlamaCppBuild) -> bool:
    return (
        build.llama_bench.is_file()
        and build.llama_quantize.is_file()
        and (build.lib_dir / "libllama.so").is_file()
        and (build.python_dir / "llama_cpp" / "llama_cpp.py").is_file()
        and (build.python_dir / "diskcache").is_dir()
    )


def _log(message: str) -> None:
    print(f"[llama.cpp] {message}", file=sys.stderr, flush=True)


def _fetch_source(root: Path, version: str) -> Path:
    """Download (pip) and unpack the llama-cpp-python sdist into root/src, once."""
    source = root / "src"
    if (source / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return source
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        _log(f"downloading the llama-cpp-python {version} sdist (vendored llama.cpp) from PyPI")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary=:all:",
            "--no-deps",
            "--quiet",
            f"llama-cpp-python=={version}",
            "-d",
            tmp,
        ]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        archives = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise LlamaCppError(
                f"`pip download llama-cpp-python=={version}` failed (is PyPI reachable?): "
                + " ".join(done.stderr.strip().splitlines()[-3:])
            )
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")
        tops = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
            raise LlamaCppError(f"the llama-cpp-python {version} sdist has no vendor/llama.cpp; pin another version")
        shutil.rmtree(source, ignore_errors=True)
        os.replace(tops[0], source)
    return source


_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


def _cmake_build(llama_dir: Path, build_dir: Path, options: tuple[str, ...], jobs: int) -> None:
    """Configure and build the targets, printing cmake's percentage as it goes; the full log goes to a file."""
    log_path = build_dir.parent / "build.log"
    build_dir.mkdir(parents=True, exist_ok=True)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(llama_dir), "-B", str(build_dir), *generator, *options]
    compile_ = ["cmake", "--build", str(build_dir), "--target", *BUILD_TARGETS, "-j", str(jobs)]
    if not shutil.which("cmake"):
        raise LlamaCppError("cmake is not installed; install it (apt-get install cmake ninja-build g++)")
    _log(f"building {', '.join(BUILD_TARGETS)} with {jobs} jobs (5-10 minutes on 2 cores); log: {log_path}")
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        for step in (configure, compile_):
            log.write("$ " + " ".join(step) + "\n")
            log.flush()
            _run_with_progress(step, log, started)
    _log(f"built in {time.monotonic() - started:.0f} s")


def _run_with_progress(command: list[str], log, started: float) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    last_shown = -10
    tail: list[str] = []
    for line in process.stdout:
        log.write(line)
        tail = (tail + [line.rstrip()])[-6:]
        match = _PERCENT.match(line) or re.match(r"^\[(\d+)/(\d+)\]", line)
        if match:
            percent = int(match.group(1)) if match.lastindex == 1 else 100 * int(match.group(1)) // int(match.group(2))
            if percent >= last_shown + 10:
                last_shown = percent
                _log(f"{percent:3d}% ({time.monotonic() - started:.0f} s)")
    if process.wait() != 0:
        raise LlamaCppError(f"`{' '.join(command[:3])} ...` failed:\n" + "\n".join(tail))


def _install_bindings(source: Path, python_dir: Path) -> None:
    """Copy the sdist's ctypes bindings (pure Python) and install their one missing dependency beside them."""
    staging = python_dir.with_name(python_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source / "llama_cpp", staging / "llama_cpp")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(staging),
            f"diskcache=={DISKCACHE_VERSION}",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise LlamaCppError(f"installing diskcache for the llama_cpp bindings failed: {done.stderr.strip()[-400:]}")
    shutil.rmtree(python_dir, ignore_errors=True)
    os.replace(staging, python_dir)


def main() -> None:
    """`python -m bench.llama_cpp_build`: build (or find) llama.cpp and print where it is."""
    try:
        build = ensure_llama_cpp()
    except LlamaCppError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(build.describe(), indent=2))


if __name__ == "__main__":
    main()
