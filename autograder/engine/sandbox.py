"""The trusted side of one sandboxed run: launch the child, watch the clock, read back.

`run_parts` writes the inputs into a fresh working directory in the fork server's spool,
leases a uid, asks for a sandboxed child (see `launch` and `isolation`), and gives the
notebook's cells `startup_seconds` and each part `part_seconds` of the child's own time
(wall-clock time less its waits for a CPU: a busy machine spends none of it). When a
part runs over, or the child dies during a part (`os._exit`, a crash, a CPU limit), the
fork server kills it with everything it started, that part fails with a message saying why,
and a new child runs the parts after it. Nothing the child prints or returns as an exit code
counts: only its files, read by `protocol`, and what the fork server measured.

Whose fault? A child that cannot show, in a report it wrote before any student code, this
run's nonce and the isolation the machine offers (every child, not only the first), a fork
server that died (before, during or after its child, while its files were unread), a
machine too busy to give a stage its time, a kill from outside the sandbox, or a failed
write of the grader's own: these are the grader's failures, raised as GraderError, never
a student's grade.

**Who ended the child** (`_ended`). Its seccomp filter (`isolation.forbid_limits_and_signals`)
lets it neither change its own resource limits nor send a signal, to itself or any process;
with full isolation it is also pid 1 of its own pid namespace, which no signal from inside
that namespace ends. So the only ways its own code can end it by a signal are the kernel's
answers to what it did: a fault (SIGSEGV from a runaway recursion, SIGBUS, SIGILL, SIGFPE,
SIGTRAP, SIGSYS), a limit the grader set and it reached (SIGXCPU, SIGXFSZ, and the hard CPU
limit's SIGKILL, told by the CPU time the fork server measured when it reaped the child), a
timer it set (SIGALRM, SIGVTALRM, SIGPROF) or a pipe it broke (SIGPIPE). Those are the
student's: the part scores 0 with a note that says what happened. Any other end by a signal
the grader did not send (a SIGKILL below the CPU limit: the kernel's out-of-memory killer or
root; a SIGTERM) came from outside: GraderError, graded again once on a fresh fork server,
else no grade.
"""

import contextlib
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..kit import visible
from ..kit.diagnosis import Finding
from ..kit.messages import plain_text
from ..kit.parts import Assignment, Case
from ..kit.python_loops import UNREADABLE, loops_in_notebook
from ..kit.routes import route_in_source
from ..visible_data import examples_bytes
from . import protocol
from .child import child_groups, code_cells
from .errors import GraderError, Tampered
from .isolation import FULL, Limits
from .launch import SERVER_STOPPED, ForkServer, WarmChild
from .uids import leased_uid

POLL_SECONDS = 0.05
BUSY_FACTOR, BUSY_MIN_SECONDS = 10, 60  # see _watch


Outcome = dict[str, torch.Tensor] | Finding


@dataclass
class SandboxRun:
    """What the sandbox produced: per part, each case's outcome or why the part got none."""

    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    failures: dict[str, Finding] = field(default_factory=dict)
    isolation: str = ""

    def settled(self, part_id: str) -> bool:
        return part_id in self.outcomes or part_id in self.failures


def run_parts(notebook: bytes, assignment: Assignment, cases: dict[str, list[Case]],
              limits: Limits, launcher: ForkServer) -> SandboxRun:
    """Run the student's notebook on each part's cases, in sandboxed children.

    Raises GraderError when the grader, not the student, failed."""
    run = SandboxRun()
    for remaining in child_groups(assignment, list(cases)):
        while remaining:
            cells_finished, stopped = _launch(
                notebook, assignment, {part_id: cases[part_id] for part_id in remaining},
                limits, launcher, run)
            remaining = [p for p in remaining if not run.settled(p)]
            if remaining and not cells_finished:  # the next child would stop the same way
                run.failures.update(dict.fromkeys(remaining, Finding(stopped, "stopped")))
            elif remaining:  # the first unsettled part stopped the child; go on after it
                run.failures[remaining[0]] = Finding(
                    stopped or "the sandbox stopped during this part.", "stopped")
            remaining = [p for p in remaining if not run.settled(p)]
    return run


def _launch(notebook: bytes, assignment: Assignment, cases: dict[str, list[Case]],
            limits: Limits, launcher: ForkServer, run: SandboxRun) -> tuple[bool, str | None]:
    """One child for these parts. Returns (cells finished?, why it stopped early or None)."""
    parts = [assignment.part(part_id) for part_id in cases]
    try:
        name, workdir = launcher.workdir(limits.workdir_bytes())
    except OSError as error:
        raise GraderError(f"the sandbox could not be prepared: {error}") from None
    try:
        try:
            (workdir / protocol.SUBMISSION).write_bytes(notebook)
            # The notebook's example data, as the release ships it, without its checks.
            (workdir / visible.FILE).write_bytes(examples_bytes(assignment.name))
            protocol.write_request(workdir, assignment.name, cases, limits.to_json(),
                                   frozenset(p.id for p in parts if p.timed),
                                   protocol.timed_inputs_waiting(workdir))
        except OSError as error:
            raise GraderError(f"the grader could not write the sandbox's inputs: "
                              f"{error}") from None
        nonce = secrets.token_hex(16)
        full = launcher.isolation == FULL
        with leased_uid() if full else contextlib.nullcontext() as uid:
            try:
                child = launcher.start(name, uid, nonce)
            except OSError as error:
                raise GraderError(f"the sandbox could not be started: {error}") from None
            stopped = _watch(child, workdir, parts, limits)
            child.kill()
        # Every child, not only the first: a later one may be the one the server lost.
        shown = _isolation_shown(child, nonce, launcher.isolation, stopped or "it ended")
        run.isolation = run.isolation or shown
        why = stopped or _ended(child, limits)
        return _read_back(workdir, parts, cases, child, why, run, notebook)
    finally:
        launcher.release(name)


def _read_back(workdir: Path, parts, cases: dict[str, list[Case]], child: WarmChild,
               why: str, run: SandboxRun, notebook: bytes) -> tuple[bool, str | None]:
    """Record what the child left: each part's outcomes, or why it has none."""
    try:
        status = protocol.read_status(workdir)
        if status is None or not status["cells_done"]:
            _still_there(workdir)
            return False, (f"the notebook did not run to the end: its code {why}. Make sure "
                           f"every cell runs from top to bottom without ending the process.")
        slots = {p.id: protocol.timed_slot_bytes([list(value.shape) for case in cases[p.id]
                                                  for value in case.args.values()
                                                  if isinstance(value, torch.Tensor)])
                 for p in parts if p.timed}
        outcomes = protocol.read_outcomes(
            workdir, parts, {p: len(c) for p, c in cases.items()}, status,
            protocol.cases_device(cases), slots)
    except (Tampered, ValueError, TypeError, KeyError, IndexError, OverflowError,
            RecursionError, MemoryError, RuntimeError) as error:  # from the child's files
        _still_there(workdir)
        message = (f"the grading files in the sandbox were changed by the notebook's code "
                   f"({error}), so this was not graded.")
        run.failures.update({p.id: Finding(message, "not_graded") for p in parts
                             if not run.settled(p.id)})
        return True, message
    except OSError as error:
        raise GraderError(f"the grader could not read the sandbox's results: {error}") from None
    for part in parts:
        if part.id in outcomes and hasattr(part.call, "route"):
            outcomes[part.id] = _off_route(outcomes[part.id], part, notebook)
        if part.id in outcomes and "python_loops" in part.output_names():
            loops = loops_in_notebook(notebook, part.function, code_cells)
            outcomes[part.id] = _measured(outcomes[part.id], part.timed, child.timed_cpu,
                                          UNREADABLE if loops is None else loops)
    run.outcomes.update(outcomes)
    running = next((p for p in parts if p.id not in status["parts"]), None)
    return True, running and f"{running.function} {why}."


def _still_there(workdir: Path) -> None:
    """GraderError when the working directory is gone: the fork server stopped (and its
    spool vanished) before the child's files were read, so a missing file says nothing
    about the student's code."""
    if not workdir.is_dir():
        raise GraderError("the fork server stopped before the sandbox's results were read: "
                          "no grade was recorded")


def _off_route(outcomes: list[Outcome], part, notebook: bytes) -> list[Outcome]:
    """A part with a route rule (`routes.Route`): its outcomes, failed when the function's
    source in the notebook leaves the route, read here on the trusted side."""
    why = route_in_source(notebook, part.function, code_cells, part.call.route, part.returns)
    if why is None:
        return outcomes
    return [Finding(why, "route_not_taught") if not isinstance(o, Finding) else o
            for o in outcomes]


def _isolation_shown(child: WarmChild, nonce: str, offered: str, why: str) -> str:
    """What the child reached, as its report (written before any student code) says; a
    GraderError unless it carries this run's nonce and the isolation the machine offers."""
    if (child.error or "").startswith(SERVER_STOPPED):
        raise GraderError(f"{child.error} while it graded: no grade was recorded")
    try:
        report = protocol.loads_untrusted(child.report.encode(), "the sandbox's report")
        reached, full, echoed = report["isolation"], report["full"], report["nonce"]
    except (Tampered, KeyError, TypeError):
        raise GraderError(f"the sandbox failed to start ({why}): "
                          f"{plain_text(child.error) or 'no report'}") from None
    if echoed != nonce:
        raise GraderError("the sandbox's report does not carry this run's nonce")
    if offered == FULL and not full:
        raise GraderError("the sandbox did not reach the full isolation this machine offers")
    return f"{offered}: {reached}"


def _measured(outcomes: list[Outcome], timed: bool, cpu_seconds: float | None, loops: int
              ) -> list[Outcome]:
    """A part's outcomes with the grader's own measures in place of what the child said:
    the Python loops found in the notebook's source, and for a timed part the CPU time the
    fork server measured, shared out over the calls."""
    calls = [outcome for outcome in outcomes if not isinstance(outcome, Finding)]
    measures = {"python_loops": torch.tensor(float(loops), dtype=torch.float64)}
    if not timed:
        return [o if isinstance(o, Finding) else {**o, **measures} for o in outcomes]
    if cpu_seconds is None:
        return [Finding("the timing never started: the code stopped the grader's clock "
                        "handshake.", "not_graded") if not isinstance(o, Finding) else o
                for o in outcomes]
    measures["cpu_seconds"] = torch.tensor(cpu_seconds / max(len(calls), 1),
                                           dtype=torch.float64)
    return [o if isinstance(o, Finding) else {**o, **measures} for o in outcomes]


class _OwnClock:
    """The child's own time: wall-clock seconds less those it spent ready to run but
    waiting for a CPU (`WarmChild.waited_for_cpu`), so that a busy machine does not spend
    a student's time limit. A sleep or a loop counts; another process's turn does not."""

    def __init__(self, child: WarmChild):
        self.child = child
        self.waited = child.waited_for_cpu() or 0.0
        self.start = self.own(), time.monotonic()

    def own(self) -> float:
        self.waited = max(self.waited, self.child.waited_for_cpu() or 0.0)  # gone: the last
        return time.monotonic() - self.waited


def _watch(child: WarmChild, workdir: Path, parts, limits: Limits) -> str | None:
    """Wait for the child; kill it when a stage runs over its time on the child's own clock
    (`_OwnClock`). Why the grader stopped it, or None when it ended without the grader.

    The child says when a part is done, and its student code can say so too: only the
    parts asked of it count, and once the cells are done all of them together get no more
    than their limits' sum, so that claims give no part the startup's unused time.

    A stage that takes BUSY_FACTOR times its limit (and at least BUSY_MIN_SECONDS) in
    wall-clock time without running over on the child's clock shows a machine too busy to
    grade: GraderError, no grade."""
    clock = _OwnClock(child)
    asked = {part.id for part in parts}
    overall = limits.part_seconds * len(parts)  # all the parts, from the cells' end
    progress, limit, stage, cells = -1, limits.startup_seconds, clock.start, None
    while child.poll() is None:
        own, wall = clock.own(), time.monotonic()
        done = _progress(workdir, asked)
        if done > progress:
            progress, limit, stage = done, limits.part_seconds, (own, wall)
            cells = cells or stage
        if own - stage[0] > limit or cells and own - cells[0] > overall:
            child.kill()
            if progress < 0:
                return f"did not finish within {limits.startup_seconds:g} s"
            return (f"did not finish within {limits.part_seconds:g} s: look for a loop that "
                    f"never ends, or far more work than the cases need")
        if wall - stage[1] > _busy(limit) or cells and wall - cells[1] > _busy(overall):
            child.kill()
            raise GraderError(f"the machine is too busy to grade: the sandbox ran "
                              f"{own - stage[0]:.1f} s of its own in {wall - stage[1]:.0f} s; "
                              f"no grade was recorded")
        child.wait(POLL_SECONDS)  # wakes at once when the child ends
    return None


def _busy(limit: float) -> float:
    """The wall-clock seconds after which a stage of this limit shows a machine too busy."""
    return max(BUSY_FACTOR * limit, BUSY_MIN_SECONDS)


# The signals a child's own code can bring on it without sending any (see the module's
# docstring), and what each says to the student.
_CRASH = ("crashed ({}): a bug in compiled code, or a recursion far deeper than Python's own "
          "limit allows (sys.setrecursionlimit), stops the process")
SELF_INFLICTED = {
    **{sig: _CRASH.format(sig.name) for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                                                 signal.SIGFPE, signal.SIGTRAP)},
    signal.SIGSYS: "made a system call that the sandbox refuses (SIGSYS)",
    signal.SIGXCPU: "used up its CPU time",
    signal.SIGXFSZ: "wrote a file larger than the sandbox allows (SIGXFSZ)",
    signal.SIGPIPE: "wrote to a pipe that nothing reads (SIGPIPE)",
    **{sig: f"was ended by a timer it set itself ({sig.name}: signal.alarm or "
            f"signal.setitimer)" for sig in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF)},
}


def _ended(child: WarmChild, limits: Limits) -> str:
    """How the child ended without the grader, in words for the student; GraderError when a
    signal from outside the sandbox ended it (see the module's docstring)."""
    code = child.poll()
    if code >= 0:
        return (f"ended the process (exit status {code}): os._exit or a crash stops the "
                f"grading")
    if child.timed_cpu is not None:  # the fork server ended it after its timed part
        return "was ended after its timed part"
    killed_by = signal.Signals(-code)
    if killed_by in SELF_INFLICTED:
        return SELF_INFLICTED[killed_by]
    if killed_by == signal.SIGKILL and child.cpu >= limits.cpu_seconds:
        return f"used up its CPU time ({limits.cpu_seconds} s)"
    raise GraderError(f"the sandbox was killed from outside ({killed_by.name}, after "
                      f"{child.cpu:.1f} s of CPU): is the machine out of memory, or did "
                      f"someone kill it?")


def _progress(workdir: Path, asked: set[str]) -> int:
    """-1 before the cells are done, then the number of the parts asked that are done (as
    the child says)."""
    try:
        status = protocol.read_status(workdir)
    except (Tampered, OSError):
        return -1
    if not status or not status["cells_done"]:
        return -1
    return len(asked & set(status["parts"]))
