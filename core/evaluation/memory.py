"""Peak resident memory (RSS) of this process, per stage: Linux's high-water mark, reset when a stage starts."""
from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


def _hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:                                  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The largest RSS of this process so far (MB), or since the last stage started when stages are metered."""
    hwm = _hwm_mb()
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def rss_meter() -> Iterator[dict]:
    """`with rss_meter() as m:` ... then m["peak_mb"] is the peak RSS during the block (MB) and m["exact"] whether it
    is the block's own (False where the peak cannot be reset: then it is the process's peak so far)."""
    out: dict = {"exact": _reset_hwm()}
    try:
        yield out
    finally:
        out["peak_mb"] = round(peak_rss_mb(), 1)
