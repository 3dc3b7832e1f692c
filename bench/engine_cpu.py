"""The CPU a submission costs the engine on bench.py's synthetic class, sandboxes included.

    .venv/bin/python bench/engine_cpu.py                 # N=100 and 5, --jobs 2
    .venv/bin/python bench/engine_cpu.py --n 40 --jobs 1

Runs `grade-assignment nn_from_scratch --jobs J` as `bench.py` does, on a course of `small`
and one of `n` submissions, and prints wall and CPU seconds of each run and the marginal
cost, (X(n) - X(small)) / (n - small). The CPU is the command's own and its reaped
children's (rusage), plus the fork server's with the sandboxes it reaped (read from /proc
while it runs: it is killed, not reaped, at the end). On a machine shared with other work
the wall clock measures the others too; the CPU does not.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import ASSIGNMENT  # noqa: E402

from bench import prepare  # noqa: E402


def fork_server_cpu(root: psutil.Process) -> float | None:
    """The fork server's CPU seconds with its reaped children's, if it is running under
    root (the fork server runs its module, and its parent does not: bubblewrap's command
    line names it too, but bubblewrap is not python)."""
    def serves(process: psutil.Process) -> bool:
        return process.name() != "bwrap" \
            and "autograder.engine.forkserver" in " ".join(process.cmdline())

    try:
        processes = root.children(recursive=True)
    except psutil.Error:  # root or a child of it ended meanwhile
        return None
    for process in processes:
        try:
            if serves(process) and not serves(process.parent()):
                times = process.cpu_times()
                return times.user + times.system + times.children_user + times.children_system
        except (psutil.Error, AttributeError):  # ended, or its parent did (None)
            continue
    return None


def measured(n: int, jobs: int, workdir: Path) -> tuple[float, float]:
    """Wall and CPU seconds of grading a fresh course of n synthetic submissions."""
    course, _ = prepare(workdir, n)
    command = [sys.executable, "-m", "autograder", "grade-assignment", ASSIGNMENT,
               "--course", str(course.root), "--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = psutil.Popen(command, cwd=course.root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    server, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            seen = fork_server_cpu(process)
            server[0] = server[0] if seen is None else seen
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, own + server[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="submissions of the large run")
    parser.add_argument("--small", type=int, default=5, help="submissions of the small run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=Path("build") / "engine-cpu")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    runs = {}
    for n in (args.small, args.n):
        runs[n] = measured(n, args.jobs, args.workdir / str(n))
        print(f"N={n}: wall {runs[n][0]:.1f} s, CPU {runs[n][1]:.1f} s", flush=True)
    wall, cpu = ((b - a) / (args.n - args.small)
                 for a, b in zip(runs[args.small], runs[args.n], strict=True))
    print(f"{ASSIGNMENT}, {args.jobs} jobs: marginal {wall:.3f} s wall, {cpu:.3f} s CPU "
          f"a submission")


if __name__ == "__main__":
    main()
