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

import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path

import psutil


@contextmanager
def dask_executor(scheduler: str, connect_seconds: float = 30) -> Iterator[Executor]:
    """A concurrent.futures Executor whose tasks run on the Dask cluster at scheduler."""
    from distributed import Client

    with Client(scheduler, timeout=f"{connect_seconds}s") as client:
        yield client.get_executor(pure=False, retries=0)


@contextmanager
def local_cluster(workers: int, threads: int = 1
                  ) -> Iterator[tuple[str, list[psutil.Process]]]:
    """A real `dask scheduler` and `dask worker`s on loopback, for tests and benchmarks.

    Yields the scheduler's address and the worker processes (started without a nanny, so
    that killing one loses that worker for good); stops them all afterwards.
    """
    dask = str(Path(sys.executable).parent / "dask")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [psutil.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    processes += [psutil.Popen([dask, "worker", address, "--nthreads", str(threads),
                                "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                               **quiet) for _ in range(workers)]
    try:
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=180)
        yield address, processes[1:]
    finally:
        for process in processes:
            if process.is_running():
                process.kill()
                process.wait()
