"""`python -m bench.http.profiled FACTORY PORT OUT`: the service as `make bench` runs it (uvicorn, one
worker, same flags), with cProfile on a CPU clock: SIGUSR1 starts profiling, SIGUSR2 stops it and
writes the stats to OUT (pstats format).

A CPU clock, not the wall clock: on a loaded two-core machine the service is often runnable but not
running (PostgreSQL, woken by each query, takes the core), and a wall-clock sampler charges that wait
to whatever line was running, mostly the socket write. Only the benchmark's `--profile cprofile`
starts the service this way; the measured runs use the plain uvicorn command.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from typing import Any

import uvicorn


def main(argv: list[str]) -> int:
    factory, port, out = argv
    profiler = cProfile.Profile(time.process_time)

    def start(*_: Any) -> None:
        profiler.enable()

    def stop(*_: Any) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    uvicorn.run(factory, factory=True, host="127.0.0.1", port=int(port), access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
