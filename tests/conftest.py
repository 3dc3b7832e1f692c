"""Shared helpers: the solution functions of an assignment, taken from its source notebook,
and grading one part against autograd's references, as the engine does."""

import contextlib
import fcntl
import io
import os
import shutil
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path

# One thread per torch: `make test` runs a worker per core, and each spawns graders, kernels
# and nbgrader commands beside it. torch's default (a thread per core in every process) has
# the threads of tiny matrix products spin against each other: a training part's references
# then cost ten times the CPU (learn_2d: 5.7 s against 0.5 s on 2 busy cores). Subprocesses
# inherit the setting; the sandboxed children get it from the fork server anyway.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from autograder.course import Course
from autograder.kit.grading import PartResult
from autograder.references import get
from autograder.references.graded import grade_with_references
from autograder.submissions import defined_names
from autograder.visible_data import RELEASE_CACHE

# A fixed seed for the hidden cases where a test needs them reproducible (the engine draws a
# fresh one for every submission).
HIDDEN_SEED = 20_261_122


torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@cache
def solution_functions(assignment: str) -> dict:
    """The names the answer cells of the source notebook define."""
    return defined_names(assignment)


def grade(assignment: str, part_id: str, function, kind: str = "hidden") -> PartResult:
    """The verdict on function for one part, on its hidden (or visible) cases."""
    part = get(assignment).part(part_id)
    return grade_with_references(part, function, part.cases(kind, HIDDEN_SEED))


def command_here(*argv: str) -> subprocess.CompletedProcess:
    """`python -m autograder ARGV` run by its main() in this process, on this worker's warm
    fork server: its exit status and output, without the 4 to 5 s of CPU that a process of
    its own spends importing torch twice (its own and its fork server's). Its output goes
    through the encodings of a real process's pipes (stdout strict UTF-8: a lone surrogate
    fails here as it would there). Tests whose subject is the process itself (killed, run
    twice at once, its environment, a reproduction without this process's memo) start one."""
    from autograder import cli

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace",
                              write_through=True)
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(list(argv))
        except SystemExit as stop:  # ended as the interpreter ends it
            code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue().decode("utf-8"),
                                       err.getvalue().decode("utf-8"))


def sgd_run(model, x, y, epochs, lr):
    """The textbook loop with nn.MSELoss and torch.optim.SGD; the losses before each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.MSELoss()(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float64)


def shared_folder(tmp_path_factory) -> Path:
    """A folder of this test run that every xdist worker shares."""
    folder = tmp_path_factory.getbasetemp()
    return folder.parent if "PYTEST_XDIST_WORKER" in os.environ else folder


@pytest.fixture(scope="session", autouse=True)
def release_cache(tmp_path_factory):
    """Each release's visible data computed once per test run, by whichever process needs it
    first (`visible_data.RELEASE_CACHE`), instead of by each `generate_assignment`."""
    folder = shared_folder(tmp_path_factory) / "release-cache"
    folder.mkdir(exist_ok=True)
    os.environ[RELEASE_CACHE] = str(folder)


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory):
    """A function: a fresh course in a folder with one assignment generated into its release
    and gradebook, as `nbgrader generate_assignment` leaves them (5 to 10 s of CPU each),
    copied from a generation made once per test run and shared by the xdist workers."""
    shared = shared_folder(tmp_path_factory)

    def make(workdir: Path, assignment: str) -> Course:
        template = shared / f"generated-{assignment}"
        with open(shared / f"generated-{assignment}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (template / "generated").exists():
                Course.scaffold(template, [assignment]).run("generate_assignment", assignment,
                                                            "--force")
                (template / "generated").touch()
        course = Course.scaffold(workdir, [assignment])
        shutil.copytree(template / "course" / "assignments", course.root / "assignments")
        shutil.copy(template / "course" / "gradebook.db", course.root)
        return course

    return make


@pytest.fixture(scope="session")
def nn_solution():
    return solution_functions("nn_from_scratch")


@pytest.fixture(scope="session")
def neuron_solution():
    return solution_functions("single_neuron")


# `make test` runs the test files on every core and one more worker (pytest-xdist, --dist
# loadfile; the extra worker fills the cores while another waits on a browser, a kernel's
# start or a lock), the longest first, so that the short ones fill in beside them and the
# workers end together. Long is wall time on 2 cores: the files that mostly wait (a live
# service polled, submissions that sleep on a Dask cluster) start early, beside files that
# compute, instead of ending the run with one worker waiting alone; test_hub waits for its
# environment, built from the start beside the others (pytest_collection_finish), so it goes
# once that is likely done. pyproject.toml keeps xdist from reordering the files by their
# number of tests.
LONGEST_FIRST = ("test_nbgrader_cycle.py", "test_student_kit.py", "test_faults.py",
                 "test_exchange_attacks.py", "test_cluster.py", "test_nbgrader_sandbox.py",
                 "test_engine_attacks.py", "test_hub.py", "test_release.py",
                 "test_engine_door.py", "test_pages.py", "test_diagnosis.py",
                 "test_service.py", "test_corpus_checks.py", "test_engine_course.py",
                 "test_engine.py")


def pytest_collection_modifyitems(config, items):
    """The longest test file goes first; tests marked cuda are skipped on a machine without
    a CUDA device."""
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name)
               if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """When a test of a hub will run, the hub's environment is built from the start, in a
    process beside the tests (on a fresh machine: pip's installs, a minute or more of mostly
    waiting on the disk), by one worker. The hub's own setup then takes the build's lock,
    finds the environment current, or builds it again and says why."""
    if session.config.option.collectonly or os.environ.get(
            "PYTEST_XDIST_WORKER", "gw0") != "gw0" or not any(
            item.path.name == "test_hub.py" and "hub" in item.fixturenames
            and not any(mark.args and mark.args[0] for mark in item.iter_markers("skipif"))
            for item in session.items):
        return
    session.config.hub_build = subprocess.Popen(
        [sys.executable, "-c", "from autograder.hub import build_environment; "
         "build_environment(say=lambda line: None)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def pytest_sessionfinish(session, exitstatus):
    """The build is waited for (another worker's hub may be waiting for it too), or ended
    when the run stops early (the next build starts over)."""
    build = getattr(session.config, "hub_build", None)
    if build and build.poll() is None:
        if session.shouldstop or session.shouldfail or exitstatus == pytest.ExitCode.INTERRUPTED:
            os.killpg(build.pid, signal.SIGKILL)
        build.wait()
