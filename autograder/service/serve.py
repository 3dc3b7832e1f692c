"""The service's loop over its courses, and `--health`."""

import grp
import os
import pwd
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from ..engine.course_config import CourseError, load_course
from .course import CourseService
from .feedback import FEEDBACK_PROCESSES, FEEDBACK_START_SECONDS, FeedbackProcesses
from .inbound import is_complete
from .journal import Journal
from .log import log

POLL_SECONDS = 0.25
COLLECT_THREADS = 2


def serve(courses: list[Path], max_per_hour: int | None = None, jobs: int | None = None,
          poll: float = POLL_SECONDS, identity: str = "owner") -> int:
    """Run until SIGTERM or SIGINT; 2 when a course cannot be served at all."""
    from ..engine.launch import warm_up

    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        log("stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    jobs = jobs or os.cpu_count() or 1
    os.umask(0o002)  # before any process starts: see shared_with_instructors
    warm_up()  # the fork server imports torch while this process imports nbgrader
    pool, collectors = ThreadPoolExecutor(jobs), ThreadPoolExecutor(COLLECT_THREADS)
    feedback = FeedbackProcesses(FEEDBACK_PROCESSES)
    try:
        warming = feedback.warm_up(courses)  # and the feedback processes nbconvert
        try:
            services = [CourseService(root, pool, jobs, collectors, feedback, max_per_hour,
                                      identity) for root in courses]
        except CourseError as error:
            log("error", why=str(error))
            return 2
        if os.geteuid() == 0:
            for service in services:
                service.gradebook.refresh()
                if not shared_with_instructors(service.course, service.gradebook.students):
                    return 2
        if identity == "folder-name":
            log("warning", why="--identity folder-name: whoever can write inbound/ can "
                               "submit as any student on the roster")
        # What grading and recording need (torch, the gradebook's ORM) is imported before
        # the first submission, not while it waits.
        import nbgrader.api  # noqa: F401

        from ..engine import runner  # noqa: F401
        try:
            for future in warming:
                future.result(timeout=FEEDBACK_START_SECONDS)
        except Exception as error:  # each batch says so again, and is tried again later
            log("feedback-fault", error=f"the feedback process did not start: "
                                        f"{type(error).__name__}: {error}")
        log("serving", courses=len(services), jobs=jobs, max_per_hour=max_per_hour or "none",
            poll=poll, identity=identity)
        while not stopping:
            futures = []
            for service in services:
                futures += service.step()
            if futures:
                finished, _ = wait(futures, timeout=poll, return_when=FIRST_COMPLETED)
                for service in services:
                    service.take(finished)
            else:
                time.sleep(poll)
        # Stopping: what is on its way is finished and recorded, its feedback released;
        # nothing new starts.
        for service in services:
            service.drain()
            service.close()
        log("stopped")
        return 0
    finally:
        pool.shutdown(cancel_futures=True)
        collectors.shutdown(cancel_futures=True)
        feedback.close()


def shared_with_instructors(course, students: set[str]) -> bool:
    """The course's step folders (submitted, autograded, feedback) take the course root's
    group and setgid, so that what the service writes in them as root (with umask 002) is
    that group's to replace: the instructor's formgrader autogrades again over it. Not when
    a student on the roster is in that group (they could rewrite grades): False, and the log
    says why; the service does not serve such a course."""
    gid = course.root.stat().st_gid
    try:
        group = grp.getgrgid(gid)
        name, members = group.gr_name, set(group.gr_mem)
    except KeyError:  # a number without a name: no member list to read
        name, members = str(gid), set()
    members |= {account.pw_name for account in pwd.getpwall() if account.pw_gid == gid}
    if inside := sorted(members & students):
        log("error", why=f"the course root's group {name} holds students "
                         f"({', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''}): "
                         "they could rewrite what the service writes there; give the course "
                         "root a group of staff only")
        return False
    for step in (course.submitted_directory, course.autograded_directory,
                 course.feedback_directory):
        folder = course.root / step
        folder.mkdir(exist_ok=True)
        os.chown(folder, -1, gid)
        folder.chmod(folder.stat().st_mode | 0o2070)
    return True


def health(courses: list[Path]) -> int:
    """Print each course's queue: complete folders in inbound/ (as the service judges
    them) without a final journal state, and the age of the oldest (from its ctime).
    Exit 0 (2 if a course's configuration cannot be read)."""
    from nbgrader.exchange.default import Exchange

    now = time.time()
    for root in courses:
        try:
            course = load_course(root)
        except CourseError as error:
            print(f"{root}: error: {error}")
            return 2
        journal = Journal(course.root)
        inbound = Path(Exchange(config=course.config).root) / course.course_id / "inbound"
        ages = []
        for entry in os.scandir(inbound) if inbound.is_dir() else ():
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not journal.is_final(entry.name) and is_complete(entry.path, info):
                ages.append(now - info.st_ctime)
        print(f"course={course.course_id} root={course.root} queued={len(ages)} "
              f"oldest_seconds={max(ages, default=0.0):.1f}")
    return 0


def main(args) -> int:
    """`python -m autograder serve` (see cli.py)."""
    courses = [Path(course) for course in (args.course or [Path.cwd()])]
    if args.health:
        return health(courses)
    return serve(courses, args.max_per_hour, args.jobs, identity=args.identity)
