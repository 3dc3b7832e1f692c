"""The sandboxed child: the only code that runs a student's code.

    python -m autograder.engine.child WORKDIR [--report-fd FD]

It imports torch, confines itself (`isolation.isolate`), writes one line describing the
isolation to the report pipe and closes it (so nothing the student runs can write there),
then `execute_request(WORKDIR)`: it runs the notebook's code cells except the test cells,
calls the student's function on every case of every requested part, and writes the plain
tensors and a status per case (see `protocol`). It never judges anything: the trusted
parent computes the references and the verdicts from these files alone.
"""

import argparse
import contextlib
import json
import linecache
import os
import sys
from pathlib import Path

import torch
from IPython.core.inputtransformer2 import TransformerManager

from .. import assignments, manual_backprop
from ..grading import call_student
from ..parts import StudentError
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


def execute_request(workdir: Path) -> None:
    """Run the notebook in workdir and every requested case; write status and outputs."""
    request, cases = protocol.read_request(workdir)
    device = torch.device(request["device"])
    assignment = assignments.get(request["assignment"])
    manual_backprop.install()  # before any student code: see manual_backprop
    status: dict = {"cells_done": False, "cell_errors": [], "parts": {}, "on_device": []}
    outputs: dict[str, torch.Tensor] = {}
    notebook = json.loads((workdir / protocol.SUBMISSION).read_bytes())
    namespace, status["cell_errors"] = run_cells(code_cells(notebook))
    status["cells_done"] = True
    protocol.write_progress(workdir, status, outputs)
    for part_id, part_cases in cases.items():
        part = assignment.part(part_id)
        function = namespace.get(part.function)
        outcomes = []
        for index, case in enumerate(part_cases):
            try:
                if not callable(function):
                    raise StudentError(_missing(part.function, function, status["cell_errors"]),
                                       "missing_function")
                returned = call_student(part, function, case)
                _check_devices(returned, device)
            except StudentError as error:
                outcomes.append(protocol.failure(error.finding()))
                break
            for name, tensor in returned.items():  # copied now: later code may change it
                outputs[protocol.key(part_id, index, name)] = protocol.own_copy(tensor)
                if not tensor.is_cpu:
                    status["on_device"].append(protocol.key(part_id, index, name))
            outcomes.append(protocol.OK)
        status["parts"][part_id] = outcomes
        protocol.write_progress(workdir, status, outputs)


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


def confine_and_execute(workdir: Path, send_report) -> None:
    """Confine this process, report the isolation reached, then run the request in workdir.

    Every file descriptor it inherited, but the standard ones, is closed before any student
    code runs, so that the code cannot write to the report or to anything its parent left
    open. (Those CUDA opens for itself stay open: its context cannot work without them.)
    """
    request = json.loads((workdir / protocol.REQUEST).read_text())
    inherited = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2]
    torch.set_num_threads(1)
    device = torch.device(request["device"])
    if device.type == "cuda":
        # Before the limits, which CUDA's context and libraries would exceed: they reserve far
        # more address space. A small product on the device creates them.
        torch.ones(2, 2, device=device).mm(torch.ones(2, 2, device=device))
    reached = isolate(workdir, Limits.from_json(request["limits"]))
    send_report(reached.encode()[:4000] + b"\n")
    for fd in inherited:
        with contextlib.suppress(OSError):  # one was listdir's own, closed already
            os.close(fd)
    execute_request(Path.cwd())


def main(argv: list[str] | None = None) -> int:
    """Entry point of a child started cold: `python -m autograder.engine.child WORKDIR`."""
    parser = argparse.ArgumentParser(prog="python -m autograder.engine.child")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--report-fd", type=int, required=True,
                        help="a pipe to write the isolation reached to")
    args = parser.parse_args(argv)
    confine_and_execute(args.workdir, lambda line: os.write(args.report_fd, line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
