"""Grading beyond one machine, on Dask distributed.

    dask scheduler                          # on one machine: listens on tcp://HOST:8786
    dask worker tcp://HOST:8786             # on each grading machine, same environment
    python -m autograder grade-assignment ASSIGNMENT --scheduler tcp://HOST:8786

Each submission is one Dask task, `runner.grade_submission`: the notebook's bytes in, the
result as JSON data out. The worker that runs it is the trusted side for that submission: it
computes the references and the verdict, and runs the student's code in its own sandboxed
children exactly as a local run would. The results come back to the machine that asked,
which writes each one, once.

Retries are Dask's: when a worker is lost, the scheduler runs that worker's unfinished
tasks again elsewhere (up to `distributed.scheduler.allowed-failures` times), and only
those. A student's own failure is never an exception, only a result with a message, so it
is never retried.
"""

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager


@contextmanager
def dask_executor(scheduler: str, connect_seconds: float = 30) -> Iterator[Executor]:
    """A concurrent.futures Executor whose tasks run on the Dask cluster at scheduler."""
    from distributed import Client

    with Client(scheduler, timeout=f"{connect_seconds}s") as client:
        yield client.get_executor(pure=False, retries=0)
