"""Command line: `python -m autograder COMMAND` (also installed as `backprop-lab`)."""

import argparse
import sys
from pathlib import Path

from .course import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("release", help="regenerate assignments/ and solutions/ from source/")
    demo = commands.add_parser("demo", help="run a simulated class through the nbgrader cycle")
    demo.add_argument("--workdir", type=Path, default=REPO / "build" / "demo",
                      help="where the demo course and exchange go (default: build/demo)")
    grade = commands.add_parser("grade", help="grade one notebook in the sandbox")
    grade.add_argument("notebook", type=Path)
    grade.add_argument("--assignment", required=True, help="the nbgrader assignment id")
    grade.add_argument("--seed", type=int, default=None,
                       help="the seed of the hidden cases (default: a fresh one, reported)")
    grade.add_argument("--json", action="store_true", help="print one JSON object")
    grade.add_argument("--gradescope", type=Path, default=None,
                       help="also write Gradescope's results.json there")
    course = commands.add_parser(
        "grade-assignment", help="grade every submission of an assignment of a course "
                                 "into its gradebook (resumable)")
    course.add_argument("assignment")
    course.add_argument("--course", type=Path, default=Path.cwd(),
                        help="the nbgrader course root (default: the current directory)")
    course.add_argument("--results", type=Path, default=None,
                        help="where the JSON results go (default: COURSE/results)")
    course.add_argument("--regrade", action="store_true",
                        help="grade again the submissions already graded (same seeds)")
    course.add_argument("--no-gradebook", action="store_true",
                        help="write the JSON results only")
    course.add_argument("--jobs", type=int, default=None,
                        help="submissions graded at once (default: one per CPU core)")
    course.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                        help="grade on this Dask cluster instead of this machine")
    course.add_argument("--wait", action="store_true",
                        help="if another run is grading this course, wait for it to end "
                             "(default: stop)")
    report = commands.add_parser(
        "report", help="a class report of a graded assignment: HTML with plots, and a CSV")
    report.add_argument("assignment")
    report.add_argument("--course", type=Path, default=Path.cwd(),
                        help="the nbgrader course root (default: the current directory)")
    report.add_argument("--results", type=Path, default=None,
                        help="where grade-assignment wrote its results (default: "
                             "COURSE/results)")
    report.add_argument("--out", type=Path, default=None,
                        help="where the report goes (default: COURSE/reports)")
    report.add_argument("--help-below", type=float, default=0.5, metavar="SHARE",
                        help="students below this share of the points need help "
                             "(default: 0.5)")
    serve = commands.add_parser(
        "serve", help="grade each submission as it arrives in the exchange, and release "
                      "its feedback (a long-running service)")
    serve.add_argument("--course", type=Path, action="append", default=None,
                       help="an nbgrader course root (repeat for several; default: the "
                            "current directory)")
    serve.add_argument("--max-per-hour", type=int, default=None, metavar="N",
                       help="grade at most N submissions per account per hour; the others "
                            "get a message instead (default: no limit)")
    serve.add_argument("--identity", choices=("owner", "folder-name"), default="owner",
                       help="who submitted: the inbound folder's owner, a unix account "
                            "(default); folder-name trusts the folder's name, for a course "
                            "simulated by one unix user only")
    serve.add_argument("--jobs", type=int, default=None,
                       help="submissions graded at once (default: one per CPU core)")
    serve.add_argument("--health", action="store_true",
                       help="print each course's queue (count, age of the oldest) and exit")
    for command in (grade, course):
        command.add_argument("--part-seconds", type=float, default=None,
                             help="wall-clock limit of each part, in seconds")
        command.add_argument("--memory-mib", type=int, default=None,
                             help="memory the student's code may use, in MiB")
    args = parser.parse_args(argv)

    if args.command == "release":
        from .course import generate_release
        generate_release()
        print("Regenerated assignments/ and solutions/ from source/.")
    elif args.command == "demo":
        from .demo import run_demo
        run_demo(args.workdir)
    elif args.command == "grade":
        from .references import ASSIGNMENTS
        if args.assignment not in ASSIGNMENTS:
            parser.error(f"unknown assignment {args.assignment!r}; known: "
                         f"{', '.join(ASSIGNMENTS)}")
        return _grade(args)
    elif args.command == "grade-assignment":
        return _grade_assignment(args)
    elif args.command == "report":
        return _report(args, parser)
    elif args.command == "serve":
        return _serve(args)
    return 0


def _serve(args) -> int:
    from .service import main as serve_main
    return serve_main(args)


def _limits(args):
    from dataclasses import replace

    from .engine import DEFAULT_LIMITS
    from .engine.isolation import MIB
    limits = DEFAULT_LIMITS
    if args.part_seconds is not None:
        limits = replace(limits, part_seconds=args.part_seconds)
    if args.memory_mib is not None:
        limits = replace(limits, memory_bytes=args.memory_mib * MIB)
    return limits


def _grade(args) -> int:
    import json

    from .engine import grade_notebook
    from .engine.errors import GraderError
    from .engine.results import write_gradescope
    from .engine.runner import describe_fault
    try:
        result = grade_notebook(args.notebook, args.assignment, seed=args.seed,
                                limits=_limits(args))
    except (GraderError, OSError) as error:
        print_plain(f"error: not graded: the grader failed ({describe_fault(error)})",
                    sys.stderr)
        return 1
    if args.gradescope:
        write_gradescope(result, args.gradescope)
    if args.json:
        print(json.dumps(result.to_json()))  # ASCII: every other character escaped
    else:
        print_plain(result.feedback())
        print_plain(f"(seed {result.seed}; sandbox: {result.isolation or 'not started'})")
    return 0


def print_plain(text: str, stream=None) -> None:
    """Print text that may hold what a student wrote: control characters (ANSI escapes,
    carriage returns) and lone surrogates escaped, and whatever the terminal cannot encode
    written as an escape, so that any string prints, as itself."""
    from .kit.messages import plain_text

    stream = stream or sys.stdout
    stream.write(plain_text(text).encode(stream.encoding or "utf-8", "backslashreplace")
                 .decode(stream.encoding or "utf-8") + "\n")


def _grade_assignment(args) -> int:
    """Exit status: 0 all graded, 1 some submissions not graded or not recorded for the
    grader's faults (a rerun finishes them), 2 nothing graded (the course, the assignment,
    the configuration or the lock: one line says which)."""
    from contextlib import nullcontext

    if not args.scheduler:
        from .engine.errors import GraderError
        from .engine.launch import warm_up
        try:
            warm_up()  # the fork server imports torch while this process does the same
        except (GraderError, OSError) as error:
            print(f"error: the sandbox cannot start: {error}", file=sys.stderr)
            return 2

    from tqdm import tqdm

    from .engine.cluster import dask_executor
    from .engine.course_config import CourseError
    from .engine.isolation import describe_isolation
    from .engine.runner import GradingRun, UngradedSubmissions
    from .kit.messages import plain_text

    def waiting(holder: str) -> None:
        print(f"waiting for the grading run that holds this course: {holder}", file=sys.stderr)

    try:
        run = GradingRun(args.course, args.assignment, results=args.results,
                         limits=_limits(args), gradebook=not args.no_gradebook,
                         regrade=args.regrade, wait=args.wait, on_wait=waiting)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with run:
        if not args.scheduler:
            print(describe_isolation(), file=sys.stderr)
        if not run.students:
            print(f"0 submissions found in {run.submissions_glob}")
            return 0
        progress = tqdm(total=len(run.students), unit="submission", desc=args.assignment,
                        smoothing=0.1)

        def report(result, now):
            state = "graded" if now else "already graded"
            progress.write(plain_text(f"{result.student:20} {result.score:g}/"
                                      f"{result.max_score:g}  {state}"
                                      f"{'  ' + result.note if result.note else ''}", False))
            progress.update()

        def fault(student, why):
            progress.write(plain_text(f"{student:20} {why}", False))
            progress.update()

        cluster = dask_executor(args.scheduler) if args.scheduler else nullcontext()
        try:
            with progress, cluster as executor:
                run.grade(args.jobs, executor, on_result=report, on_fault=fault)
        except UngradedSubmissions as error:
            print(f"{len(error.faults)} of {len(run.students)} submissions were not graded or "
                  f"not recorded, for faults of the grader (run again to finish them):",
                  file=sys.stderr)
            for student, why in error.faults.items():
                print_plain(f"  {student}: {why}", sys.stderr)
            return 1
    return 0


def written_points(course: Path, assignment: str):
    """The written answers' points from the course's gradebook, or none without one."""
    from .engine.course_config import CourseError
    from .report import read_written

    try:
        return read_written(course, assignment)
    except (CourseError, OSError):
        return {}


def _report(args, parser) -> int:
    from .report import ClassReport, NoResults, read_results, write_report

    results = (args.results or args.course / "results") / args.assignment
    try:
        report = ClassReport(args.assignment, read_results(results), args.help_below,
                             written_points(args.course, args.assignment))
    except NoResults as error:
        parser.exit(1, f"error: {error}\n")
    page, table = write_report(report, args.out or args.course / "reports")
    print(report.summary())
    print(f"report: {page}\ncsv:    {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
