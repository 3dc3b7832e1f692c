"""Grade N synthetic nn_from_scratch submissions with stock nbgrader, with nbgrader through
the sandbox (the course's configuration) and with our engine.

    make bench            # N=100
    make bench N=20       # a quick run

Every system runs as a subprocess on the same course directory and is timed twice, on a
small warm-up set and on all N, so that start-up and marginal cost can be told apart:
marginal = (T(N) - T(n0)) / (N - n0). Peak memory is the largest total RSS of the process
tree, sampled every 50 ms, and the largest total PSS (each page shared among processes
counted once: a sandbox shares most of its pages with the fork server it was forked from,
which RSS counts again for each). The last line printed is `speedup: <ratio>x`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import ASSIGNMENT, KINDS, write_submissions  # noqa: E402

from autograder.course import COURSE_ID, REPO, Course  # noqa: E402
from autograder.engine.cluster import local_cluster  # noqa: E402


@dataclass
class Timing:
    system: str
    count: int
    wall: float
    peak_bytes: int
    peak_pss_bytes: int = 0


def proportional_bytes(pid: int) -> int:
    """A process's proportional set size (PSS): its resident pages, each shared page counted
    as its share among the processes that map it. A sandbox forked from the fork server
    shares nearly all its pages with it: RSS counts them again for every child, PSS once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_measured(command: list[str], cwd: Path,
                 also: list[psutil.Process] = ()) -> tuple[float, int, int]:
    """Wall seconds, peak RSS and peak PSS (bytes, each summed over the processes) of one
    command's process tree, plus `also`'s."""
    start = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    peak = peak_pss = 0
    done = threading.Event()

    def sample():
        nonlocal peak, peak_pss
        while not done.is_set():
            total = total_pss = 0
            for root in (process, *also):
                try:
                    for p in (root, *root.children(recursive=True)):
                        total += p.memory_info().rss
                        total_pss += proportional_bytes(p.pid)
                except psutil.Error:
                    pass
            peak, peak_pss = max(peak, total), max(peak_pss, total_pss)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    done.set()
    sampler.join()
    return time.perf_counter() - start, peak, peak_pss


def nbgrader_scores(course: Course) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", COURSE_ID) as gradebook:
        return {s.student.id: s.score for s in gradebook.assignment_submissions(ASSIGNMENT)}


def prepare(workdir: Path, count: int) -> tuple[Course, dict[str, str]]:
    """A course with the assignment generated and `count` submissions in submitted/."""
    course = Course.scaffold(workdir, [ASSIGNMENT])
    course.run("generate_assignment", ASSIGNMENT, "--force")
    release = course.root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    kinds = write_submissions(course.root / "submitted", release, count)
    course.enroll(kinds)  # the roster: nbgrader's autograde grades its students only
    return course, kinds


def stock_autograde() -> list[str]:
    """Settings that put back nbgrader's own autograde (each notebook run in a kernel of
    its own, checks included) in place of the course's, which grades in the sandbox."""
    from nbgrader.converters import Autograde

    steps = Autograde.class_traits()["autograde_preprocessors"].default()
    names = [f"{step.__module__}.{step.__name__}" for step in steps]
    return [f"c.Autograde.autograde_preprocessors = {names!r}",
            'c.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"']


def time_nbgrader(workdir: Path, count: int, sandboxed: bool) -> tuple[Timing, dict[str, float]]:
    course, _ = prepare(workdir, count)
    if not sandboxed:
        course.configure(*stock_autograde())
    nbgrader = str(Path(sys.executable).parent / "nbgrader")
    wall, peak, pss = run_measured([nbgrader, "autograde", ASSIGNMENT, "--force"],
                                   course.root)
    name = "nbgrader autograde, sandboxed" if sandboxed else "nbgrader autograde, stock"
    return Timing(name, count, wall, peak, pss), nbgrader_scores(course)


def engine_scores(course: Course) -> dict[str, float]:
    results = course.root / "results" / ASSIGNMENT
    return {path.stem: json.loads(path.read_text())["score"]
            for path in results.glob("*.json") if not path.name.endswith(".gradescope.json")}


def time_engine(workdir: Path, count: int, jobs: int, scheduler: str | None = None,
                workers: list[psutil.Process] = (), threads: int = 1
                ) -> tuple[Timing, dict[str, float]]:
    course, _ = prepare(workdir, count)
    command = [sys.executable, "-m", "autograder", "grade-assignment", ASSIGNMENT,
               "--course", str(course.root), "--jobs", str(jobs)]
    name = f"engine, {jobs} local job{'s' if jobs > 1 else ''}"
    if scheduler:
        command += ["--scheduler", scheduler]
        name = f"engine on Dask, {len(workers)} worker{'s' if len(workers) > 1 else ''} x " \
               f"{threads} thread{'s' if threads > 1 else ''}"
    wall, peak, pss = run_measured(command, course.root, workers)
    return Timing(name, count, wall, peak, pss), engine_scores(course)


def time_floor(workdir: Path, count: int) -> tuple[Timing, dict[str, float]]:
    """The student code and the reference checks alone: in this process, no sandbox, the
    same hidden cases as the engine's (a fresh seed per submission)."""
    from autograder import references
    from autograder.engine.child import code_cells, run_cells
    from autograder.references.graded import grade_with_references

    course, _ = prepare(workdir, count)
    graded = references.get(ASSIGNMENT)
    notebooks = {path.parent.parent.name: json.loads(path.read_bytes())
                 for path in sorted((course.root / "submitted").glob(f"*/{ASSIGNMENT}/*.ipynb"))}
    scores = {}
    start = time.perf_counter()
    for seed, (student, notebook) in enumerate(notebooks.items()):
        namespace, _ = run_cells(code_cells(notebook))
        scores[student] = sum(grade_with_references(part, namespace.get(part.function),
                                                    part.cases("hidden", seed)).score
                              for part in graded.parts)
    wall = time.perf_counter() - start
    return Timing("floor (no start-up, in-process)", count, wall, 0), scores


def report(rows: list[tuple[Timing, Timing]], baseline: Timing) -> None:
    print(f"{'system':38} {'N':>5} {'wall s':>8} {'subs/s':>8} {'marginal s':>11} "
          f"{'peak MiB':>9} {'PSS MiB':>8} {'vs nbgrader':>12}")
    for small, full in rows:
        marginal = (full.wall - small.wall) / (full.count - small.count)
        peak = f"{full.peak_bytes / 2**20:9.0f}" if full.peak_bytes else f"{'-':>9}"
        pss = f"{full.peak_pss_bytes / 2**20:8.0f}" if full.peak_pss_bytes else f"{'-':>8}"
        ratio = (full.count / full.wall) / (baseline.count / baseline.wall)
        print(f"{full.system:38} {full.count:5d} {full.wall:8.1f} {full.count / full.wall:8.2f} "
              f"{marginal:11.3f} {peak} {pss} {ratio:11.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of submissions")
    parser.add_argument("--warmup", type=int, default=5, help="size of the small run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="local jobs of the engine's main run (default: all cores)")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    work = args.workdir

    warmup = min(args.warmup, max(1, args.n // 2))

    def both(measure, name, **kwargs):
        small, _ = measure(work / f"{name}-small", warmup, **kwargs)
        full, scores = measure(work / name, args.n, **kwargs)
        return (small, full), scores

    rows, scores = {}, {}
    rows["nbgrader"], scores["nbgrader"] = both(time_nbgrader, "nbgrader", sandboxed=False)
    rows["sandboxed"], scores["sandboxed"] = both(time_nbgrader, "sandboxed", sandboxed=True)
    rows["floor"], scores["floor"] = both(time_floor, "floor")
    rows["engine-1"], scores["engine-1"] = both(time_engine, "engine-1", jobs=1)
    rows["engine"], scores["engine"] = both(time_engine, "engine", jobs=args.jobs)
    # The README's deployment: one `dask worker --nthreads <cores>` on each grading machine.
    with local_cluster(1, threads=args.jobs) as (address, workers):
        rows["dask"], scores["dask"] = both(time_engine, "dask", jobs=args.jobs,
                                            scheduler=address, workers=workers,
                                            threads=args.jobs)
    # Two single-threaded workers: two machines' worth of processes on this one.
    with local_cluster(2) as (address, workers):
        rows["dask-2"], scores["dask-2"] = both(time_engine, "dask-2", jobs=2,
                                                scheduler=address, workers=workers)
    baseline = rows["nbgrader"][1]
    report(list(rows.values()), baseline)
    differ = scores_that_differ(scores, kinds_of(work / "engine-1"))
    print("scores identical on every path:", not differ)
    sandboxed = rows["sandboxed"][1]
    print(f"nbgrader autograde, sandboxed: {sandboxed.wall / sandboxed.count:.2f} s a "
          f"submission against {baseline.wall / baseline.count:.2f} s stock "
          f"({(sandboxed.count / sandboxed.wall) / (baseline.count / baseline.wall):.1f}x)")
    engine = rows["engine"][1]
    speedup = (engine.count / engine.wall) / (baseline.count / baseline.wall)
    print(f"speedup: {speedup:.1f}x")
    if differ:  # a ratio against a run that graded other work is no ratio
        raise SystemExit("scores differ from the engine's:\n" + "\n".join(differ))


def kinds_of(course_root: Path) -> dict[str, str]:
    """{student: the synthetic kind of their submission} (bench/synthetic.py's cycle)."""
    students = sorted(path.name for path in (course_root / "course" / "submitted").iterdir())
    return {student: KINDS[index % len(KINDS)][0] for index, student in enumerate(students)}


def scores_that_differ(scores: dict[str, dict[str, float]], kinds: dict[str, str]
                       ) -> list[str]:
    """One line per path and kind of submission whose scores are not the engine's, with
    one student of that kind as an example."""
    expected, lines = scores["engine-1"], []
    for path, found in scores.items():
        examples = {}
        for student, score in expected.items():
            if found.get(student) != score:
                examples.setdefault(kinds.get(student, "?"), (student, found.get(student)))
        lines += [f"  {path}: {kind} (e.g. {student}: {got} against {expected[student]})"
                  for kind, (student, got) in sorted(examples.items())]
    return lines

if __name__ == "__main__":
    main()
