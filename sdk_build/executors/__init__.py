"""Where a plan's work runs: `local` (this process, a thread per export group, `--jobs` at once) or Ray.

`run_matrix` / `run_jobs` are the entry points (the CLI, tests, benchmarks); `sdk_build.matrix` is the plan they
run and knows nothing of executors.

Why a seam here: past one machine (many checkpoints, the full target matrix) the exports and quantizations go to a
Ray cluster, which already places tasks by the memory they declare and retries a task whose worker died. Both
executors build the same variants with the same pipeline, so they give byte-identical bundles; only the Ray one
stages them on a shared path and publishes them from the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sdk_build.errors import SpecError
from sdk_build.matrix import Matrix, MatrixJob, VariantOutcome, check_parallelism, plan_job
from sdk_build.spec import Target

if TYPE_CHECKING:
    from sdk_build.lora.spec import LoraSpec

LOCAL = "local"


def check_executor(value: str) -> str:
    """`local`, `ray` or `ray://HOST:PORT`; anything else is refused with the forms that are accepted."""
    if value == LOCAL or value == "ray" or (value.startswith("ray://") and len(value) > len("ray://")):
        return value
    raise SpecError(f"unknown executor {value!r}: use local (the default), ray (a Ray cluster running here, or a "
                    "new one on this machine) or ray://HEAD:PORT (a Ray client connection to a cluster's head)")


def run_on(executor: str, jobs: list[MatrixJob], *, jobs_at_once: int = 1) -> list[VariantOutcome]:
    """Run `jobs` on `executor`; one outcome per planned variant, in plan order."""
    check_executor(executor)
    if executor == LOCAL:
        from sdk_build.executors.local import run_local

        return run_local(jobs, jobs_at_once)
    from sdk_build.executors.ray_cluster import run_ray

    return run_ray(jobs, executor)


def run_matrix(
    checkpoint_ref: str,
    matrix: Matrix,
    output_dir: Path,
    *,
    only: tuple[Target, ...] | None = None,
    jobs: int = 1,
    cache_dir: Path | None = None,
    allow_custom_shape: bool = False,
    available_bytes: int | None = None,
    lora: LoraSpec | None = None,
    window_kv_cache: bool | None = None,
    executor: str = "local",
) -> list[VariantOutcome]:
    """Build every planned variant; exports grouped, groups run `jobs` at a time. Returns one outcome per variant.

    `lora` applies one LoRA adapter to every variant (fused or runtime, see `sdk_build.lora.build`).
    `window_kv_cache` None: each file gets window-sized local KV caches when all its targets take them
    (`sdk_build.convert.kv_cache.window_kv_cache_default`); True/False: every file.
    `executor`: "local" (this machine, `jobs` groups at once) or "ray" / "ray://HOST:PORT" (sdk_build/executors).
    """
    job = plan_job(checkpoint_ref, matrix, output_dir, only=only, cache_dir=cache_dir,
                   allow_custom_shape=allow_custom_shape, lora=lora, window_kv_cache=window_kv_cache)
    return run_jobs([job], jobs=jobs, available_bytes=available_bytes, executor=executor)


def run_jobs(
    matrix_jobs: list[MatrixJob], *, jobs: int = 1, available_bytes: int | None = None, executor: str = "local"
) -> list[VariantOutcome]:
    """Run planned matrices (one per checkpoint) on `executor`; outcomes in plan order, job after job."""
    if executor == "local":
        from sdk_build.system.memory import available_bytes as read_available

        available = available_bytes if available_bytes is not None else read_available()
        for job in matrix_jobs:
            check_parallelism(jobs, job.checkpoint.shape, job.plan, available)
    return run_on(executor, matrix_jobs, jobs_at_once=jobs)
