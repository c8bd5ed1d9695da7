"""A second thread for one training step: the step's two expensive parts, split in halves.

Why not BLAS's own threads? OpenBLAS splits each matrix product over its threads, which
spin-wait for each other: on a machine where the other core is busy, a dense run fell from
~40,000 to ~2,000 images/s. And the element-wise half of a step (Adam's update, ReLU,
softmax, scaling the batch) runs on one core whatever BLAS does. So MLP Lab keeps BLAS at
one thread and, with ``TrainConfig(threads=2)``, splits the work itself where it is big:
the first layer's two products (a half of the batch rows, a half of w1's rows each) and
the optimizer's update (a half of the flat parameter array each). NumPy releases Python's
lock (the GIL) inside its matrix products and element-wise loops, so the two halves
really run at the same time; a thread that waits sleeps instead of spinning.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Callable


class HelperThread:
    """One worker thread that runs a job while the caller runs another: ``both(mine, theirs)``.

    Start it for a run and ``close`` it at the end (a ``with`` block does), so no thread
    outlives its run.
    """

    def __init__(self, name: str = "mlp-core-helper"):
        # Two locks used as one-way signals: cheaper to hand over than a Condition or Queue.
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._job: Callable[[], None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # handed to the caller, raised there
                self._error = exc
            self._done.release()

    def both(self, mine: Callable[[], None], theirs: Callable[[], None]) -> None:
        """Run ``theirs`` on the helper thread and ``mine`` here; return when both are done.

        ``theirs`` runs in a copy of the caller's context, so NumPy's error settings
        (``np.errstate``, kept in a context variable) are the same on both threads."""
        context = contextvars.copy_context()
        self._job = lambda: context.run(theirs)
        self._go.release()
        try:
            mine()
        finally:
            self._done.acquire()  # even if mine() failed: never leave the helper mid-job
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        if self._thread.is_alive():
            self._job = None
            self._go.release()
            self._thread.join()

    def __enter__(self) -> "HelperThread":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
