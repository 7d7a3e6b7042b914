"""Where a matrix's work runs: `local` (this process, a thread per export group, `--jobs` at once) or Ray.

Why a seam here: past one machine (many checkpoints, the full target matrix) the exports and quantizations go to a
Ray cluster, which already places tasks by the memory they declare and retries a task whose worker died. Both
executors build the same variants with the same pipeline, so they give byte-identical bundles; only the Ray one
stages them on a shared path and publishes them from the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdk_build.errors import SpecError

if TYPE_CHECKING:
    from sdk_build.matrix import MatrixJob, VariantOutcome

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
