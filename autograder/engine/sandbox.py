"""The trusted side of one sandboxed run: launch the child, watch the clock, read back.

`run_parts` writes the inputs into a fresh private working directory, starts a sandboxed
child in a session of its own (cold or warm: see `launch`), and gives the notebook's cells
`startup_seconds` and each part `part_seconds` of wall-clock time. When a part runs over,
or the child dies during a part (`os._exit`, a crash, a CPU limit), the whole process group
is killed (and, when the child ran as a uid of its own, every process of that uid), that
part fails with a message saying why, and a new child runs the parts after it. Nothing the
child prints or returns as an exit code counts: only its files, read by `protocol`.
"""

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..diagnosis import Finding
from ..parts import Assignment, Case
from . import protocol
from .isolation import Limits, sandbox_uid
from .launch import Child, Launcher

POLL_SECONDS = 0.05


class GraderError(RuntimeError):
    """The grader failed, not the student (the sandbox could not start or prove its
    confinement, the fork server died, a disk filled up): no grade may be recorded."""

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
              limits: Limits, launcher: Launcher) -> SandboxRun:
    """Run the student's notebook on each part's cases, in sandboxed children."""
    run = SandboxRun()
    remaining = list(cases)
    while remaining:
        cells_finished, stopped = _launch(
            notebook, assignment, {part_id: cases[part_id] for part_id in remaining}, limits,
            launcher, run)
        remaining = [p for p in remaining if not run.settled(p)]
        if remaining and not cells_finished:  # the next child would stop the same way
            run.failures.update(dict.fromkeys(remaining, Finding(stopped, "stopped")))
        elif remaining:  # the first unsettled part stopped the child; go on after it
            run.failures[remaining[0]] = Finding(
                stopped or "the sandbox stopped during this part.", "stopped")
        remaining = [p for p in remaining if not run.settled(p)]
    return run


def _launch(notebook: bytes, assignment: Assignment, cases: dict[str, list[Case]],
            limits: Limits, launcher: Launcher, run: SandboxRun) -> tuple[bool, str | None]:
    """One child for these parts. Returns (cells finished?, why it stopped early or None)."""
    parts = [assignment.part(part_id) for part_id in cases]
    workdir = Path(tempfile.mkdtemp(prefix="backprop-sandbox-"))
    try:
        (workdir / protocol.SUBMISSION).write_bytes(notebook)
        protocol.write_request(workdir, assignment.name, cases, limits.to_json())
        child = launcher.start(workdir)
        why = _watch(child, workdir, parts, limits)
        _kill(child)
        reached = child.report()
        run.isolation = run.isolation or reached
        try:
            status = protocol.read_status(workdir)
            if status is None and not reached:  # before any student code: not the student's
                raise GraderError(f"the sandbox failed to start ({why}): "
                                   f"{child.output_tail()}")
            if status is None or not status["cells_done"]:
                return False, (f"the notebook did not run to the end: its code {why}. Make sure "
                               f"every cell runs from top to bottom without ending the process.")
            run.outcomes.update(protocol.read_outcomes(
                workdir, parts, {p: len(c) for p, c in cases.items()}, status,
                protocol.cases_device(cases)))
        except protocol.Tampered as error:
            message = (f"the grading files in the sandbox were changed by the notebook's code "
                       f"({error}), so this was not graded.")
            run.failures.update({p.id: Finding(message, "not_graded") for p in parts
                                 if not run.settled(p.id)})
            return True, message
        running = next((p for p in parts if p.id not in status["parts"]), None)
        return True, running and f"{running.function} {why}."
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _watch(child: Child, workdir: Path, parts, limits: Limits) -> str:
    """Wait for the child; kill it when a stage runs over. Says how it ended."""
    start = time.monotonic()
    overall = start + limits.startup_seconds + limits.part_seconds * len(parts)
    deadline, progress, stage_seconds = start + limits.startup_seconds, -1, None
    while child.poll() is None:
        now = time.monotonic()
        done = _progress(workdir)
        if done > progress:
            progress, stage_seconds = done, limits.part_seconds
            deadline = now + limits.part_seconds
        if now > min(deadline, overall):
            _kill(child)
            if stage_seconds is None:
                return f"did not finish within {limits.startup_seconds:g} s"
            return (f"did not finish within {stage_seconds:g} s: look for a loop that never "
                    f"ends, or far more work than the cases need")
        child.wait(POLL_SECONDS)  # wakes at once when the child ends
    code = child.poll()
    if code == -signal.SIGXCPU:
        return "used up its CPU time"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name} (out of memory?)"
    return (f"ended the process (exit status {code}): os._exit or a crash stops the grading")


def _progress(workdir: Path) -> int:
    """-1 before the cells are done, then the number of parts done (as the child says)."""
    try:
        status = protocol.read_status(workdir)
    except protocol.Tampered:
        return -1
    if not status or not status["cells_done"]:
        return -1
    return len(status["parts"])


def _kill(child: Child) -> None:
    """Kill the child's process group and, if it ran as its own uid, all that uid's processes."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    kill_sandbox_user(child.pid)
    child.wait()


def kill_sandbox_user(pid: int) -> None:
    """Kill every process of the uid the sandbox with this pid dropped to (root only)."""
    if os.geteuid() != 0:
        return
    uid = sandbox_uid(pid)
    if not _has_processes(uid):  # the usual case; forking this big process costs 10+ ms
        return
    helper = os.fork()
    if helper == 0:
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)  # every process this uid may signal: its own
        finally:
            os._exit(0)
    os.waitpid(helper, 0)


def _has_processes(uid: int) -> bool:
    """Whether any process runs as uid (a new one may start meanwhile: the kill is -1 wide)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    return True
            except FileNotFoundError:
                pass
    return False
