"""The trusted side of one sandboxed run: launch the child, watch the clock, read back.

`run_parts` writes the inputs into a fresh working directory in the fork server's spool,
leases a uid, asks for a sandboxed child (see `launch` and `isolation`), and gives the
notebook's cells `startup_seconds` and each part `part_seconds` of wall-clock time. When a
part runs over, or the child dies during a part (`os._exit`, a crash, a CPU limit), the
fork server kills it with everything it started, that part fails with a message saying why,
and a new child runs the parts after it. Nothing the child prints or returns as an exit code
counts: only its files, read by `protocol`, and what the fork server measured.

Whose fault? A child that cannot show, in a report it wrote before any student code, this
run's nonce and the isolation the machine offers, a fork server that died, a kill from
outside the sandbox's limits, or a failed write of the grader's own: these are the grader's
failures, raised as GraderError, never a student's grade.
"""

import contextlib
import json
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..kit import visible
from ..kit.diagnosis import Finding
from ..kit.parts import Assignment, Case
from ..kit.python_loops import UNREADABLE, calls_in_notebook, loops_in_notebook
from ..visible_data import examples_bytes
from . import protocol
from .child import code_cells, run_order
from .errors import GraderError, Tampered
from .isolation import FULL, Limits
from .launch import SERVER_STOPPED, ForkServer, WarmChild
from .uids import leased_uid

POLL_SECONDS = 0.05


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
    remaining = run_order(assignment, list(cases))
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
            child = launcher.start(name, uid, nonce)
            why, killed_by_us = _watch(child, workdir, parts, limits)
            child.kill()
        run.isolation = run.isolation or _isolation_shown(child, nonce, launcher.isolation, why)
        ended_by_server = child.timed_cpu is not None  # after a timed part's DONE
        if full and child.poll() == -signal.SIGKILL and not (killed_by_us or ended_by_server):
            raise GraderError("the sandbox was killed from outside its limits (SIGKILL): "
                              "is the machine out of memory?")
        return _read_back(workdir, parts, cases, child, why, run, notebook)
    finally:
        launcher.release(name)


def _read_back(workdir: Path, parts, cases: dict[str, list[Case]], child: WarmChild,
               why: str, run: SandboxRun, notebook: bytes) -> tuple[bool, str | None]:
    """Record what the child left: each part's outcomes, or why it has none."""
    try:
        status = protocol.read_status(workdir)
        if status is None or not status["cells_done"]:
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
        message = (f"the grading files in the sandbox were changed by the notebook's code "
                   f"({error}), so this was not graded.")
        run.failures.update({p.id: Finding(message, "not_graded") for p in parts
                             if not run.settled(p.id)})
        return True, message
    except OSError as error:
        raise GraderError(f"the grader could not read the sandbox's results: {error}") from None
    for part in parts:
        if part.id in outcomes and hasattr(part.call, "refused"):
            outcomes[part.id] = _refused_calls(outcomes[part.id], part, notebook)
        if part.id in outcomes and "python_loops" in part.output_names():
            loops = loops_in_notebook(notebook, part.function, code_cells)
            outcomes[part.id] = _measured(outcomes[part.id], part.timed, child.timed_cpu,
                                          UNREADABLE if loops is None else loops)
    run.outcomes.update(outcomes)
    running = next((p for p in parts if p.id not in status["parts"]), None)
    return True, running and f"{running.function} {why}."


def _refused_calls(outcomes: list[Outcome], part, notebook: bytes) -> list[Outcome]:
    """A part that refuses some built-ins (`parts.refusing`): its outcomes, failed when the
    function's source in the notebook calls one of them, read here on the trusted side."""
    called = calls_in_notebook(notebook, part.function, code_cells)
    if called is None:
        why = (f"the grader cannot read {part.function} in the notebook's source: define it "
               f"with `def` at the top of a cell, and do not rebind its name or build code "
               f"with exec.")
    elif used := sorted(called & part.call.refused):
        why = f"{part.function} calls {used[0].strip('_')}: {part.call.advice}"
    else:
        return outcomes
    return [Finding(why, "route_not_taught") if not isinstance(o, Finding) else o
            for o in outcomes]


def _isolation_shown(child: WarmChild, nonce: str, offered: str, why: str) -> str:
    """What the child reached, as its report (written before any student code) says; a
    GraderError unless it carries this run's nonce and the isolation the machine offers."""
    if child.error == SERVER_STOPPED:
        raise GraderError("the fork server stopped while it graded: no grade was recorded")
    try:
        report = json.loads(child.report)
        reached, full, echoed = report["isolation"], report["full"], report["nonce"]
    except (ValueError, KeyError, TypeError):
        raise GraderError(f"the sandbox failed to start ({why}): "
                          f"{child.error or 'no report'}") from None
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


def _watch(child: WarmChild, workdir: Path, parts, limits: Limits) -> tuple[str, bool]:
    """Wait for the child; kill it when a stage runs over. Says how it ended, and whether
    the grader killed it."""
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
            child.kill()
            if stage_seconds is None:
                return f"did not finish within {limits.startup_seconds:g} s", True
            return (f"did not finish within {stage_seconds:g} s: look for a loop that never "
                    f"ends, or far more work than the cases need"), True
        child.wait(POLL_SECONDS)  # wakes at once when the child ends
    code = child.poll()
    if code == -signal.SIGXCPU:
        return "used up its CPU time", False
    if code < 0:
        return f"was killed by {signal.Signals(-code).name} (out of memory?)", False
    return f"ended the process (exit status {code}): os._exit or a crash stops the grading", \
        False


def _progress(workdir: Path) -> int:
    """-1 before the cells are done, then the number of parts done (as the child says)."""
    try:
        status = protocol.read_status(workdir)
    except (Tampered, OSError):
        return -1
    if not status or not status["cells_done"]:
        return -1
    return len(status["parts"])
