"""The feedback processes: nbgrader's GenerateFeedback and ReleaseFeedback for the graded
submissions, in processes of their own.

A page costs 0.04 to 0.06 s of CPU in pure Python (nbconvert's templates, nbgrader's
gradebook queries; each process remembers the rendered cells and keeps its gradebook open:
see autograder.pages, autograder.feedback and grades.py): on the service's own thread it
held the interpreter's lock for most of each submission's cost. So FEEDBACK_PROCESSES
processes (a pebble pool with multiprocessing's spawn, started and warmed up before the
service says `serving`, a little less favoured by the scheduler than the gradings) generate
and release the feedback, a batch of up to FEEDBACK_BATCH pages of one assignment at a
time, in one GenerateFeedback run (the other students excluded; each alone if that run
fails); their templates are compiled once a process, not once a run. A batch has a time
budget and a process a memory cap: a student's markdown can take minutes or gigabytes to
render, and the service then stops that process (see course.released_batch for what happens
to its pages). A feedback process dies with the service (SIGKILL when its parent dies);
only the service's process writes the journal, after a batch has come back.
"""

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from ..engine.course_config import CourseConfig, load_course

FEEDBACK_NICE = 5  # the feedback process's niceness above the service's: gradings first
FEEDBACK_PROCESSES = 2  # each a batch at a time: both cores when the gradings are done
FEEDBACK_BATCH = 6  # pages a batch at most: a batch's pages all go out at its end
FEEDBACK_START_SECONDS = 120  # its imports (nbconvert, nbgrader) on a busy machine
FEEDBACK_BASE_SECONDS = 20.0  # a batch's time budget: this, and FEEDBACK_PAGE_SECONDS a page
FEEDBACK_PAGE_SECONDS = 5.0  # (a page takes 0.1 to 0.3 s of CPU; 2 s on a loaded machine)
FEEDBACK_MEMORY_BYTES = 3 << 30  # a feedback process's address space


def course_directory(course: CourseConfig):
    """nbgrader's CourseDirectory for a course, rooted where the course is."""
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=course.config)
    coursedir.root = str(course.root)
    return coursedir


def batch_seconds(pages: int) -> float:
    """The time a batch of pages may take before its process is stopped."""
    return FEEDBACK_BASE_SECONDS + FEEDBACK_PAGE_SECONDS * pages


class FeedbackProcesses:
    """The processes that generate and release feedback (see feedback_batch): a pebble
    ProcessPool started with multiprocessing's spawn (the service's process has threads:
    no fork). Each batch has a time budget (batch_seconds) and each process a memory cap
    (FEEDBACK_MEMORY_BYTES): a page that takes longer, or a process that dies, fails that
    batch alone (TimeoutError, ProcessExpired), and pebble starts a new process in its
    place. A student's markdown can be made to render slowly or hugely: no page may hold
    up the others' feedback for long."""

    def __init__(self, processes: int = 1):
        self.processes = processes
        self._pool = None

    def _executor(self):
        from pebble import ProcessPool

        if self._pool is None:
            self._pool = ProcessPool(
                self.processes, context=multiprocessing.get_context("spawn"),
                initializer=_feedback_process_start,
                initargs=(os.getpid(), FEEDBACK_NICE, FEEDBACK_MEMORY_BYTES))
        return self._pool

    def warm_up(self, roots: list[Path]) -> list[Future]:
        """Import nbgrader and nbconvert there and read the courses' configurations: one
        task a process."""
        return [self._executor().schedule(_feedback_warm_up, ([str(root) for root in roots],),
                                          timeout=FEEDBACK_START_SECONDS)
                for _ in range(self.processes)]

    def submit(self, root: Path, assignment: str, students: list[str]) -> Future:
        """Send a batch (see feedback_batch), with its time budget."""
        return self._executor().schedule(feedback_batch, (str(root), assignment, students),
                                         timeout=batch_seconds(len(students)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


_FEEDBACK_COURSES: dict[str, tuple] = {}  # in the feedback process: root -> (course, api)


def _feedback_process_start(parent: int, nice: int, memory: int) -> None:
    """The feedback process's start: it dies with the service (SIGKILL when its parent
    dies; its parent asks it to stop otherwise, after the last batch), gives way to the
    gradings, and holds at most `memory` bytes (a page past it fails with MemoryError)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C or a unit's SIGTERM to the group:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the service stops it when it is done
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0  # DEATHSIG
    except (OSError, AttributeError):
        armed = False
    if not armed:  # not Linux: look for the parent every second
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
    os.nice(nice)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _feedback_course(root: str):
    """A course's configuration and NbGraderAPI, in the feedback process; its feedback
    exporter keeps its compiled templates from one run to the next (_keeping_templates)."""
    if root not in _FEEDBACK_COURSES:
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config
        from traitlets.utils.importstring import import_item

        course = load_course(Path(root))
        config = Config(course.config)
        preprocessors = config.GenerateFeedback.get("preprocessors")
        if isinstance(preprocessors, list):
            config.GenerateFeedback.preprocessors = [
                GRADES_FROM_KEPT_GRADEBOOK if step in GET_GRADES else step
                for step in preprocessors]
        exporter = config.GenerateFeedback.get("exporter_class")
        if exporter is not None:
            config.GenerateFeedback.exporter_class = _keeping_templates(
                import_item(exporter) if isinstance(exporter, str) else exporter)
        _FEEDBACK_COURSES[root] = course, NbGraderAPI(coursedir=course_directory(course),
                                                      config=config)
    return _FEEDBACK_COURSES[root]


GET_GRADES = ("nbgrader.preprocessors.GetGrades", "nbgrader.preprocessors.getgrades.GetGrades")
GRADES_FROM_KEPT_GRADEBOOK = "autograder.service.grades.GradesFromKeptGradebook"


_COMPILED_TEMPLATES = None  # in the feedback process: jinja2's compiled templates, by source


def _keeping_templates(exporter_class: type) -> type:
    """The exporter class, its jinja2 environment given a bytecode cache held in memory:
    each GenerateFeedback run makes a new exporter, whose new environment compiled every
    template again (70 ms a run, most of a one-page run's overhead); jinja2 checks each
    cached template against its source's checksum. The pages are the same."""
    global _COMPILED_TEMPLATES
    from jinja2 import BytecodeCache

    if not hasattr(exporter_class, "_create_environment"):  # not a TemplateExporter
        return exporter_class
    if _COMPILED_TEMPLATES is None:
        class Compiled(BytecodeCache):
            def __init__(self):
                self.code: dict[str, tuple[str, object]] = {}

            def load_bytecode(self, bucket):
                checksum, code = self.code.get(bucket.key, (None, None))
                if checksum == bucket.checksum:
                    bucket.code = code

            def dump_bytecode(self, bucket):
                self.code[bucket.key] = bucket.checksum, bucket.code

        _COMPILED_TEMPLATES = Compiled()
    cache = _COMPILED_TEMPLATES

    class KeepingTemplates(exporter_class):
        def _create_environment(self):
            environment = super()._create_environment()
            environment.bytecode_cache = cache
            return environment

    return KeepingTemplates


def _feedback_warm_up(roots: list[str]) -> None:
    """Import what a batch needs, the exporter and preprocessors that the courses name
    included, before the first batch."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    from nbgrader.converters import GenerateFeedback
    from traitlets.config import Config

    for root in roots:
        _, api = _feedback_course(root)
        converter = GenerateFeedback(coursedir=api.coursedir, parent=api)
        config = Config()
        config.HTMLExporter.template_name = "feedback"  # as NbGraderAPI.generate_feedback
        converter.update_config(config)
        page = new_notebook(cells=[new_markdown_cell("*warm-up* $x$"), new_code_cell("x = 1")])
        exporter = converter.exporter_class(parent=converter, config=converter.config)
        # A page of nothing: the exporter's own imports, before the first batch. Only a
        # warm-up: if it fails, the first batch says what fails.
        with contextlib.suppress(Exception):
            exporter.from_notebook_node(page, {"nbgrader": {
                "score": 0, "max_score": 0, "late_penalty": 0, "student": "",
                "assignment": "", "notebook": ""}})


def feedback_batch(root: str, assignment: str, students: list[str]
                   ) -> tuple[dict[str, str | None], float]:
    """In the feedback process: nbgrader's GenerateFeedback for these students of a course,
    in one run (every other student excluded), then ReleaseFeedback for each; if the run
    fails, each student's page is generated on its own, so that one page's fault is that
    student's alone. ({student: None, or what failed}, the CPU seconds it took)."""
    cpu = time.process_time()
    course, api = _feedback_course(root)
    together = len(students) > 1 and _generate(course, api, assignment, set(students))
    faults: dict[str, str | None] = {}
    for student in students:
        steps = [("release_feedback", api.release_feedback)]
        if not together:
            steps.insert(0, ("generate_feedback", api.generate_feedback))
        faults[student] = None
        try:
            for step, call in steps:
                outcome = call(assignment, student)
                if not outcome.get("success"):
                    raise RuntimeError(f"{step} failed: "
                                       f"{(outcome.get('error') or outcome.get('log'))[-500:]}")
        except Exception as error:
            faults[student] = str(error)
    return faults, time.process_time() - cpu


def _generate(course: CourseConfig, api, assignment: str, students: set[str]) -> bool:
    """GenerateFeedback for these students only, in one run; whether it worked."""
    autograded = replace(course, submitted_directory=course.autograded_directory)
    others = set(autograded.students(assignment)) - students
    api.coursedir.student_id_exclude = ",".join(sorted(others))
    try:
        return bool(api.generate_feedback(assignment).get("success"))
    except Exception:  # each is generated on its own then, and says what failed
        return False
    finally:
        api.coursedir.student_id_exclude = ""


