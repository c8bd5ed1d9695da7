"""A token bucket: how many requests one browser session may make, in bursts and over time.

Pure (no Streamlit): ``mlp_lab.session`` puts one in front of each session's rerun requests.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """Up to ``burst`` requests at once, then ``rate`` a second; ``allow()`` says whether
    this one may go (and takes a token if so). Thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if not (rate > 0 and burst >= 1):
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()
        self.refused = 0  # requests refused so far

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.refused += 1
            return False
