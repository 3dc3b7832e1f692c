"""The sandboxed child: the only code that runs a student's code.

Forked by the fork server, it confines itself (`isolation.isolate`), writes one line
describing the isolation to the report pipe and closes it (so nothing the student runs can
write there), then `execute_request`: it runs the notebook's code cells except the test cells,
calls the student's function on every case of every requested part, and writes the plain
tensors and a status per case (see `protocol`). It never judges anything: the trusted
parent computes the references and the verdicts from these files alone.
"""

import contextlib
import dataclasses
import json
import linecache
import os
import socket
import sys
from pathlib import Path

import torch
from IPython.core.inputtransformer2 import TransformerManager

from ..kit import assignment_parts, manual_backprop
from ..kit.grading import call_student
from ..kit.parts import StudentError
from . import protocol
from .isolation import Limits, isolate

MAX_CELL_ERRORS = 20


def is_test_cell(cell: dict) -> bool:
    """An nbgrader autograder-test cell: graded, and not an answer the student writes."""
    metadata = cell.get("metadata", {}).get("nbgrader", {})
    return bool(metadata.get("grade")) and not metadata.get("solution")


def is_demo_cell(cell: dict) -> bool:
    """A cell the source notebook tags "demo": it shows a result and defines nothing the
    checks need (e.g. training on the tutorial's data), so grading need not run it."""
    return "demo" in cell.get("metadata", {}).get("tags", [])


def code_cells(notebook: dict) -> list[str]:
    """The source of the notebook's code cells that the child runs: all but the tests and
    the demos."""
    cells = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code" and not is_test_cell(cell) \
                and not is_demo_cell(cell):
            source = cell.get("source", "")
            cells.append("".join(source) if isinstance(source, list) else str(source))
    return cells


class QuietShell:
    """What `get_ipython()` returns in the child: magics and shell commands do nothing,
    except the cell magics that only time or capture a cell, whose code runs."""

    RUN_BODY = frozenset({"time", "timeit", "capture"})

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def run_cell_magic(self, name: str, _line: str, body: str) -> None:
        if name in self.RUN_BODY:
            exec(compile(body, f"<%%{name} cell>", "exec"), self.namespace)

    def __getattr__(self, _name: str):
        return lambda *args, **kwargs: None


def exec_cell(code: str, filename: str, namespace: dict) -> None:
    """Run one cell's code in namespace. Its source is registered in linecache, as IPython
    does, so that `inspect.getsource` can read the functions it defines."""
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    exec(compile(code, filename, "exec"), namespace)


def run_cells(cells: list[str]) -> tuple[dict, list[str]]:
    """Run the cells in one fresh namespace, as a kernel would; the namespace and errors.

    IPython syntax (`%matplotlib inline`, `!pip ...`) is translated as IPython does and
    then ignored, so that it costs the cell nothing.
    """
    namespace: dict = {"__name__": "__main__"}
    shell = QuietShell(namespace)
    namespace["get_ipython"] = lambda: shell
    to_python = TransformerManager().transform_cell
    errors = []
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        for index, source in enumerate(cells, start=1):
            try:
                exec_cell(to_python(source), f"<code cell {index}>", namespace)
            except (Exception, SystemExit, KeyboardInterrupt) as error:
                if len(errors) < MAX_CELL_ERRORS:
                    errors.append(f"code cell {index} raised {type(error).__name__}: "
                                  f"{str(error)[:200]}")
    return namespace, errors


def run_order(assignment, part_ids: list[str]) -> list[str]:
    """The order a child runs parts in: the manual-backprop parts first (in a child that
    runs one, autograd is forbidden from before the notebook's first cell to its end), then
    the others, a timed part last."""
    def rank(part_id: str) -> int:
        part = assignment.part(part_id)
        return 2 if part.timed else 0 if part.manual_backprop else 1
    return sorted(part_ids, key=rank)


def child_groups(assignment, part_ids: list[str]) -> list[list[str]]:
    """The parts each child runs, each group in `run_order`: a part that trains with autograd
    (`uses_autograd`) runs apart from the manual-backprop parts, since a child that runs one
    forbids autograd from its first cell to its end."""
    ordered = run_order(assignment, part_ids)
    autograd = [p for p in ordered if assignment.part(p).uses_autograd]
    rest = [p for p in ordered if p not in autograd]
    if not any(assignment.part(p).manual_backprop for p in rest):
        return [ordered]
    return [group for group in (rest, autograd) if group]


def execute_request(workdir: Path, request: dict, cases: dict, notebook: bytes,
                    timer: socket.socket | None = None) -> None:
    """Run the notebook and every requested case, in `run_order`; write status and outputs
    in workdir.

    A timed part comes last (see `_run_timed`): the child gets its cases from the fork server
    (timer) only once the server has read this process's CPU clock, says DONE when its
    outputs are written, and the server ends it there."""
    device = torch.device(request["device"])
    assignment = assignment_parts.get(request["assignment"])
    # Copies, taken before any student code: what the cells do to the grader's own objects
    # (a frozen dataclass yields to object.__setattr__) does not reach these.
    order = [(dataclasses.replace(assignment.part(part_id)), part_id in request["timed"])
             for part_id in run_order(assignment, list(request["parts"]))]
    manual_backprop.lock_down()  # before any student code: see manual_backprop
    sys.addaudithook(_refuse_escapes)  # for good: an audit hook cannot be removed
    status: dict = {"cells_done": False, "cell_errors": [], "parts": {}, "on_device": []}
    with contextlib.ExitStack() as no_autograd:
        if any(part.manual_backprop for part, _ in order):
            no_autograd.enter_context(manual_backprop.forbidden("the notebook's code"))
        namespace, status["cell_errors"] = run_cells(code_cells(json.loads(notebook)))
        status["cells_done"] = True
        protocol.write_status(workdir, status)
        # Autograd stays forbidden to the end of a child that ran a manual part: no later
        # code can compute their results with it and write them over the outputs.
        for part, timed in order:
            if timed:  # the fork server ends the child after it
                _run_timed(workdir, request, part, namespace, device, status, timer)
                return
            outcomes, returned = _call_all(part, namespace.get(part.function),
                                           cases[part.id], device, status["cell_errors"])
            outputs: dict[str, torch.Tensor] = {}
            for index, tensors in enumerate(returned):
                for name, tensor in tensors.items():
                    outputs[protocol.key(part.id, index, name)] = protocol.own_copy(tensor)
                    if not tensor.is_cpu:
                        status["on_device"].append(protocol.key(part.id, index, name))
            status["parts"][part.id] = outcomes
            protocol.write_progress(workdir, status, outputs)


def _run_timed(workdir: Path, request: dict, part, namespace: dict, device: torch.device,
               status: dict, timer: socket.socket | None) -> None:
    """A timed part: warm up on zeros, map the output slots, then on the fork server's clock
    get the cases, call, copy the results into their slots, write the status, say DONE."""
    function = namespace.get(part.function)
    if callable(function):
        _call_all(part, function, protocol.warm_up_cases(request, part.id), device)
    slots = protocol.TimedSlots(workdir, request, part.id, part.output_names())
    status["timed_outputs"] = {}
    if timer is not None:
        timer.sendall(protocol.READY)
        timer.recv(1)
    outcomes, returned = _call_all(part, function,
                                   protocol.read_timed_cases(workdir, request, part.id),
                                   device, status["cell_errors"], slots.copy_in)
    for index, tensors in enumerate(returned):
        try:
            described = slots.store(index, tensors)
        except ValueError as error:
            outcomes[index:] = [protocol.failure(StudentError(str(error)).finding())]
            break
        status["timed_outputs"].update(described)
        status["on_device"] += [protocol.key(part.id, index, name)
                                for name, tensor in tensors.items() if not tensor.is_cpu]
    status["parts"][part.id] = outcomes
    protocol.write_status(workdir, status)
    if timer is not None:
        timer.sendall(protocol.DONE)
        timer.recv(1)  # the server kills this process: nothing after this counts


# What student code may not do, beside what the OS already refuses (a process or a thread):
# call C through ctypes (and undo the guards in memory), walk the interpreter's objects or
# reach the grader's frames (where its state and the parts it runs are held), trace or
# profile the grader's code.
FORBIDDEN_EVENTS = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
                              "ctypes.cdata", "gc.get_objects", "gc.get_referrers",
                              "gc.get_referents", "sys._getframe", "sys._current_frames",
                              "sys.setprofile", "sys.settrace", "os.fork", "os.forkpty",
                              "os.exec", "os.spawn", "os.posix_spawn", "os.system",
                              "subprocess.Popen", "_thread.start_new_thread"})
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
# A function's code and defaults (where the grader keeps what it bound before the cells).
FUNCTION_INTERNALS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})


class Forbidden(RuntimeError, ValueError):
    """Student code did something the sandbox refuses (an audit event it blocks). A
    ValueError too, so that the standard library's "which module called me" lookups,
    which expect one where frames are unavailable, carry on without a name."""


def _refuse_escapes(event: str, args) -> None:
    if event == "import" and _grader_module(args[0]):
        raise Forbidden(f"import {args[0]} is not allowed while grading: only the student kit "
                        f"(autograder.kit) can be imported")
    attribute = args[1] if event.startswith("object.") and len(args) > 1 else None
    if event in FORBIDDEN_EVENTS or event == "object.__getattr__" and \
            attribute in FRAME_ATTRIBUTES or event == "object.__setattr__" and \
            attribute in FUNCTION_INTERNALS:
        what = f"{event} ({attribute})" if attribute else event
        raise Forbidden(f"{what} is not allowed while grading: the sandbox refuses it")


def _grader_module(name: object) -> bool:
    """A module of the grader's, not of the student kit. (With bubblewrap their files are not
    in the sandbox at all; this also holds where it is absent.)"""
    return isinstance(name, str) and (name == "autograder" or name.startswith("autograder.")) \
        and not (name == "autograder.kit" or name.startswith("autograder.kit."))


def _call_all(part, function, part_cases: list, device: torch.device,
              cell_errors: list[str] = (), copies=None
              ) -> tuple[list, list[dict[str, torch.Tensor]]]:
    """Call the student's function on each case, up to the first that fails: the outcome
    of each case ("ok" or why it failed) and the tensors each successful call returned.
    copies(index, case): the copies of the case's arguments the function is given (by
    default `call_student` makes them)."""
    outcomes, returned = [], []
    for index, case in enumerate(part_cases):
        try:
            if not callable(function):
                raise StudentError(_missing(part.function, function, cell_errors),
                                   "missing_function")
            tensors = call_student(part, function, case,
                                   copies(index, case) if copies else None)
            _check_devices(tensors, device)
            _check_plain_numbers(part.function, tensors)
        except StudentError as error:
            outcomes.append(protocol.failure(error.finding()))
            break
        returned.append(tensors)
        outcomes.append(protocol.OK)
    return outcomes, returned


def _check_plain_numbers(function: str, returned: dict[str, torch.Tensor]) -> None:
    """Outputs of real numbers (or booleans), no larger than the grader reads back."""
    for name, tensor in returned.items():
        if str(tensor.dtype) not in protocol.PLAIN_DTYPES:
            raise StudentError(f"{name} from {function} is a tensor of {tensor.dtype}: the "
                               f"results are real numbers (float64).", "wrong_type")
        if tensor.numel() > protocol.MAX_OUTPUT_ENTRIES:
            raise StudentError(f"{name} from {function} has {tensor.numel()} entries, far "
                               f"more than the case needs.", "shape")


def _check_devices(returned: dict[str, torch.Tensor], device: torch.device) -> None:
    """Outputs travel back from the CPU or the inputs' device; any other is the student's."""
    for name, tensor in returned.items():
        if not tensor.is_cpu and tensor.device != device:
            raise StudentError(f"{name} is on {tensor.device}, but the inputs are on {device}.",
                               "wrong_device")


def _missing(name: str, value, cell_errors: list[str]) -> str:
    if value is not None:
        return f"{name} should be a function, but it is a {type(value).__name__}."
    message = f"{name} is not defined in the notebook: keep its name as given."
    if cell_errors:
        message += f" ({cell_errors[0]}.)"
    return message


def confine_and_execute(spool: Path, name: str, uid: int | None, nonce: str,
                        send_report, timer_fd: int) -> None:
    """Confine this process, report the isolation reached, then run the request.

    The report, written before any student code runs, is JSON: the request's nonce (so the
    trusted side knows this child, and no other, wrote it) and the isolation reached. Every
    file descriptor it inherited, but the standard ones and its timer socket, is closed
    before any student code runs, so that the code cannot write to the report or to
    anything its parent left open. (Those CUDA opens for itself stay open: its context
    cannot work without them.)
    """
    request, cases = protocol.read_request(spool / name)
    notebook = (spool / name / protocol.SUBMISSION).read_bytes()
    inherited = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) not in (0, 1, 2,
                                                                                  timer_fd)]
    torch.set_num_threads(1)
    device = torch.device(request["device"])
    if device.type == "cuda":
        # Before the limits, which CUDA's context and libraries would exceed: they reserve far
        # more address space. A small product on the device creates them.
        torch.ones(2, 2, device=device).mm(torch.ones(2, 2, device=device))
    workdir, reached = isolate(spool, name, Limits.from_json(request["limits"]), uid)
    send_report(json.dumps({"nonce": nonce, "isolation": reached,
                            "full": uid is not None}).encode() + b"\n")
    for fd in inherited:
        with contextlib.suppress(OSError):  # one was listdir's own, closed already
            os.close(fd)
    execute_request(workdir, request, cases, notebook, socket.socket(fileno=timer_fd))
