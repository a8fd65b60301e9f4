"""What a call allocates at its peak, as tracemalloc sees it: numpy's allocations are traced, a numba kernel's
own are not. Shared by the memory-budget tests of the rollouts."""
import tracemalloc


def traced_peak(run) -> int:
    """Bytes `run()` holds at its peak beyond what was held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
