"""How many threads NumPy's matrix library (BLAS) may use, process-wide.

Measured here (2 cores, other work running): with two BLAS threads a dense training run
fell from ~40,000 to ~2,000 images/s whenever the other core was busy, because OpenBLAS's
threads wait for each other; with one thread it barely moved. A classroom server runs
many trainers at once, so MLP Lab uses one BLAS thread per process by default.
"""

from __future__ import annotations


def set_blas_threads(n: int) -> bool:
    """Limit BLAS to ``n`` threads for the whole process. Returns False (and changes
    nothing) where threadpoolctl is not installed."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 (optional: mlp_core needs NumPy only)
    except ImportError:
        return False
    threadpool_limits(limits=n, user_api="blas")  # not used as a context: stays in force
    return True


def blas_threads() -> int | None:
    """The BLAS thread count in force now (None if unknown)."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415 (optional, as above)
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None
