"""Peak resident memory (RSS) of this process, per stage, sampled by a thread (the kernel's high-water mark is never
reset, so /usr/bin/time and wait4 still see the process's true peak)."""
from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SAMPLE_SECONDS = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """The current RSS of this process (MB), or its peak so far where /proc is not available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2 ** 20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """The largest RSS of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def rss_meter() -> Iterator[dict]:
    """`with rss_meter() as m:` ... then m["peak_mb"] is the peak RSS during the block (MB): the process's peak when
    it rose during the block (exact), else the largest RSS sampled every 20 ms."""
    out: dict = {}
    start, stop, seen = peak_rss_mb(), threading.Event(), [rss_mb()]

    def sample() -> None:
        while not stop.wait(SAMPLE_SECONDS):
            seen[0] = max(seen[0], rss_mb())
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        end = peak_rss_mb()
        out["peak_mb"] = round(end if end > start else max(seen[0], rss_mb()), 1)
