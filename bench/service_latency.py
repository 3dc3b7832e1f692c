"""Feedback latency of the grading service: a burst of N submissions arriving within 10 s.

    .venv/bin/python bench/service_latency.py --n 100      # the issue's figure
    .venv/bin/python bench/service_latency.py --n 20       # a quick run

A fresh course (the assignment generated into its gradebook), then `python -m autograder
serve` on it as a subprocess, warm (its fork server up) before the burst. N synthetic
submissions (bench/synthetic.py's mix, one student each) arrive at even intervals over 10 s,
each written into the exchange's inbound/ exactly as `nbgrader submit` writes it (the
notebook, timestamp.txt, submission_secret.txt, then the folder made rwx for all; the
`nbgrader submit` command itself costs 5 s of CPU a call, which would load the two cores
more than the service does). Latency of a submission: from the moment its folder is
complete to the moment its released feedback exists under the name `nbgrader
fetch_feedback` looks for (polled every 20 ms). Prints p50, p95 and the maximum, the
median of two stages (from the service's log), the feedback batches (size, CPU a page), and
the CPU that the service's whole process tree (its feedback processes, the fork server and
the sandboxes it waited for included) used from the first submission to the last feedback.
`--keep` keeps the course and the service's log in the workdir.
"""

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import ASSIGNMENT, KINDS  # noqa: E402

from autograder.course import COURSE_ID, REPO, Course  # noqa: E402
from autograder.submissions import answered, student_answers  # noqa: E402

BURST_SECONDS = 10.0


def notebooks(release: Path, count: int) -> list[bytes]:
    made = {}
    for index in range(min(count, len(KINDS))):
        _, solved, edits = KINDS[index]
        made[index] = nbformat.writes(answered(release, student_answers(
            ASSIGNMENT, solved, edits))).encode()
    return [made[index % len(KINDS)] for index in range(count)]


def submit(inbound: Path, student: str, notebook: bytes) -> tuple[Path, str]:
    """What nbgrader submit writes into inbound/; the folder and its secret."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    folder = inbound / f"{student}+{ASSIGNMENT}+{stamp}+{secrets.token_urlsafe(9)}"
    folder.mkdir()
    (folder / f"{ASSIGNMENT}.ipynb").write_bytes(notebook)
    (folder / "timestamp.txt").write_text(stamp)
    secret = secrets.token_hex(64)
    (folder / "submission_secret.txt").write_text(secret)
    os.chmod(folder, 0o777)
    return folder, secret


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def stage_seconds(log: str) -> dict[str, list[float]]:
    """From the service's log: seconds from collected to graded (the sandbox, queueing
    included) and from graded to released (the gradebook, then generate and release)."""
    at: dict[tuple[str, str], float] = {}
    for line in log.splitlines():
        stamp, _, rest = line.partition(" ")
        event = rest.partition(" ")[0]
        found = re.search(r'submission="([^"]*)"', rest)
        if found and event in ("collected", "graded", "released"):
            at[event, found[1]] = datetime.fromisoformat(stamp.replace("Z", "+00:00")
                                                         ).timestamp()
    names = {name for _, name in at}
    return {"collected->graded": [at["graded", n] - at["collected", n] for n in names
                                  if ("graded", n) in at and ("collected", n) in at],
            "graded->released": [at["released", n] - at["graded", n] for n in names
                                 if ("released", n) in at and ("graded", n) in at]}


def tree_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds used so far by a process and all its descendants, those that ended and
    were waited for included (the sandboxes: their fork server waits for each), by part:
    the service's own process, its feedback processes, the sandboxes (bubblewrap, the fork
    server and its children) and anything else it started."""
    parents, used, names = {}, {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                command = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            used[int(entry.name)] = sum(int(value) for value in fields[11:15])
            names[int(entry.name)] = command
    ticks = os.sysconf("SC_CLK_TCK")
    parts = {"service": used.get(root, 0) / ticks}
    for child in (pid for pid, parent in parents.items() if parent == root):
        tree, grown = {child}, True
        while grown:
            found = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= found
            grown = bool(found)
        part = "feedback" if b"spawn_main" in names[child] else "sandboxes" \
            if b"bwrap" in names[child] or b"forkserver" in names[child] else "other"
        parts[part] = parts.get(part, 0.0) + sum(used.get(pid, 0) for pid in tree) / ticks
    return parts


def feedback_batches(log: str) -> list[tuple[int, float, float]]:
    """From the service's log: each feedback batch's size, seconds (sent to back) and CPU
    seconds in the feedback process."""
    return [(int(size), float(seconds), float(cpu)) for size, seconds, cpu in re.findall(
        r" feedback-batch .*submissions=(\d+) seconds=([\d.]+) cpu=([\d.]+)", log)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "service-latency")
    parser.add_argument("--keep", action="store_true",
                        help="keep the course and the service's log in the workdir")
    args = parser.parse_args()
    from nbgrader.utils import notebook_hash

    course = Course.scaffold(args.workdir, [ASSIGNMENT])
    course.run("generate_assignment", ASSIGNMENT, "--force")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", COURSE_ID) as book:
        for index in range(args.n):  # the roster: the service grades its students only
            book.update_or_create_student(f"student{index:04d}")
    inbound = course.exchange / COURSE_ID / "inbound"
    inbound.mkdir(parents=True)
    feedback = course.exchange / COURSE_ID / "feedback"
    made = notebooks(course.root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                     args.n)
    log = args.workdir / "service.log"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "w") as out:
        # One unix user writes every student's folder here: names are trusted.
        service = subprocess.Popen([sys.executable, "-m", "autograder", "serve", "--course",
                                    str(course.root), "--identity", "folder-name"], cwd=REPO,
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while " serving " not in log.read_text():
            if service.poll() is not None:
                sys.exit(f"the service stopped:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(1.0)  # the fork server's torch import, started beside the service's
        submitted: dict[str, float] = {}
        waiting: dict[str, str] = {}
        latency: dict[str, float] = {}
        load = os.getloadavg()[0]
        cpu_before = tree_cpu_seconds(service.pid)
        start = time.monotonic()
        step = BURST_SECONDS / max(1, args.n - 1) if args.n > 1 else 0.0
        index = 0
        deadline = start + BURST_SECONDS + 600
        while len(latency) < args.n:
            now = time.monotonic()
            while index < args.n and now >= start + index * step:
                student = f"student{index:04d}"
                _, secret = submit(inbound, student, made[index])
                submitted[student] = time.monotonic()
                waiting[student] = notebook_hash(secret=secret, notebook_id=ASSIGNMENT)
                index += 1
            for student, name in list(waiting.items()):
                if (feedback / f"{name}.html").exists():
                    latency[student] = time.monotonic() - submitted[student]
                    del waiting[student]
            if now > deadline or service.poll() is not None:
                sys.exit(f"not all feedback came back:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        spread = max(submitted.values()) - min(submitted.values())
        cpu_after = tree_cpu_seconds(service.pid)
        parts = {part: seconds - cpu_before.get(part, 0.0) for part, seconds in cpu_after.items()}
        cpu = sum(parts.values())
    finally:
        service.terminate()
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:  # its figures are taken: do not lose them
            print("the service took over 60 s to stop: killed", file=sys.stderr)
            service.kill()
            service.wait()
    values = list(latency.values())
    stages = stage_seconds(log.read_text())
    batches = feedback_batches(log.read_text())
    print(f"N={args.n} submissions over {spread:.1f} s on {os.cpu_count()} cores, "
          f"load average at the start: {load:.1f}")
    print(f"submit -> feedback ready to fetch: p50 {statistics.median(values):.2f} s, "
          f"p95 {percentile(values, 0.95):.2f} s, max {max(values):.2f} s")
    print("median seconds per stage: " + ", ".join(
        f"{stage} {statistics.median(times):.2f}" for stage, times in stages.items() if times))
    if batches:
        pages = sum(size for size, _, _ in batches)
        print(f"feedback: {len(batches)} batches of "
              f"{statistics.median(size for size, _, _ in batches):g} (median) to "
              f"{max(size for size, _, _ in batches)} pages, "
              f"{sum(cpu for _, _, cpu in batches) / pages:.3f} s of CPU a page, "
              f"{sum(seconds for _, seconds, _ in batches) / pages:.3f} s a page sent to back")
    print(f"CPU from the first submission to the last feedback (the service, its processes "
          f"and sandboxes): {cpu:.1f} s, {cpu / args.n:.3f} s a submission; load average at "
          f"the end: {os.getloadavg()[0]:.1f}")
    print("of it, CPU s a submission: " + ", ".join(
        f"{part} {seconds / args.n:.3f}" for part, seconds in parts.items()))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
