"""The process ``core.model.footprint.measure_memory`` starts: resident memory of one ONNX prediction.

``python -m airflow_mlops.core.model.memory_probe <folder> <threads>``: loads ``<folder>/model.onnx``
and ``<folder>/feeds.json``, then runs one prediction and prints ``{"delta", "peak", "method"}``
(bytes) as the last line. A process of its own, so that nothing the packaging task allocated
before counts; it imports numpy and onnxruntime only.

``delta``: how far the prediction raised resident memory above what it was right before it
(graph loaded, feeds built). On Linux the high-water mark ``VmHWM`` is reset first by writing 5
to ``/proc/self/clear_refs``, so the peak is the prediction's own; where that is not possible the
growth of ``ru_maxrss`` is used, which is 0 when loading peaked higher (a lower bound).
``peak``: the process's peak resident memory overall (``VmHWM`` on Linux: ``ru_maxrss`` of a process
started by fork and exec can report the parent's size).
"""

from __future__ import annotations

import gc
import json
import resource
import sys

import numpy as np

from airflow_mlops.core.model.features import onnx_session


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes() -> int:
    """``ru_maxrss``: KiB on Linux, bytes on macOS."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def main(folder: str, threads: int) -> dict[str, object]:
    with open(f"{folder}/model.onnx", "rb") as handle:
        session = onnx_session(handle.read(), threads=threads)
    with open(f"{folder}/feeds.json", encoding="utf-8") as handle:
        encoded = json.load(handle)
    feeds = {
        name: (np.asarray(item["values"], dtype=object) if item["kind"] == "str"
               else np.asarray(item["values"], dtype=np.float32)).reshape(-1, 1)
        for name, item in encoded.items()
    }  # fmt: skip
    del encoded
    gc.collect()
    hwm = _status_kib("VmHWM")  # this process's own peak so far (ru_maxrss may carry the parent's: fork)
    loading_peak = hwm * 1024 if hwm is not None else _max_rss_bytes()
    before_rss = _status_kib("VmRSS")
    if before_rss is not None and _reset_peak():  # the reset lowers VmHWM to the RSS of now
        session.run(None, feeds)
        peak = (_status_kib("VmHWM") or before_rss) * 1024
        delta, method = max(0, peak - before_rss * 1024), "VmHWM after clear_refs"
    else:
        session.run(None, feeds)
        peak = _max_rss_bytes()
        delta, method = max(0, peak - loading_peak), "ru_maxrss growth (lower bound)"
    return {"delta": delta, "peak": max(loading_peak, peak), "method": method}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
