"""The warm fork server: imports torch and the child's code once, then forks on request.

    python -I -m autograder.engine.forkserver

It reads requests from stdin and answers on stdout, one JSON object per line:

    -> {"id": 7, "workdir": "/tmp/backprop-sandbox-x"}
    <- {"id": 7, "pid": 12345}                                  the child is running
    <- {"id": 7, "exit": 0, "report": "limits: ...; no network"}  the child has ended

A child that fails before any student code runs (it cannot confine itself, say) ends with
"error" instead of "report": why it could not start.

Each child is forked from this clean process and runs `child.confine_and_execute`, which
confines it before any student code runs; it ends with its submission, so nothing one
student does reaches the next. The server itself never runs student code. It is single-
threaded (forking a multi-threaded process can deadlock the child) and ends when its stdin
closes or its parent dies.
"""

import ctypes
import json
import os
import selectors
import signal
import sys
from pathlib import Path

import torch  # noqa: F401 -- imported once here, so that no child pays for it

from . import child

PR_SET_PDEATHSIG = 1
REPORT_MAX_BYTES = 4096
REPORT, FAILED = b"R", b"E"  # the first byte a child writes to its report pipe


def fork_child(workdir: Path) -> tuple[int, int]:
    """Fork a sandboxed child for workdir; returns its pid and the read end of its report."""
    report_read, report_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(report_read)
            os.setsid()  # a process group of its own, for the trusted side to kill
            devnull = os.open(os.devnull, os.O_RDWR)
            for stream in (0, 1, 2):
                os.dup2(devnull, stream)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            reported = False

            def send_report(line: bytes) -> None:
                nonlocal reported
                os.write(report_write, REPORT + line[:REPORT_MAX_BYTES])
                os.close(report_write)
                reported = True

            try:
                child.confine_and_execute(workdir, send_report)
                code = 0
            except BaseException as error:
                if not reported:
                    os.write(report_write, FAILED + f"{type(error).__name__}: {error}".encode())
                raise
        finally:
            os._exit(code)
    os.close(report_write)
    return pid, report_read


def serve(requests, replies) -> None:
    """Fork a child per request line and report each child's pid, then its end."""
    selector = selectors.DefaultSelector()
    selector.register(requests, selectors.EVENT_READ)
    buffered = b""
    children: dict[int, _Running] = {}

    def reply(message: dict) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    while True:
        for key, _ in selector.select(timeout=0.01):
            if key.fileobj is requests:
                chunk = os.read(requests.fileno(), 65536)
                if not chunk:
                    return
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    request = json.loads(line)
                    pid, report = fork_child(Path(request["workdir"]))
                    children[pid] = _Running(request["id"], report)
                    selector.register(report, selectors.EVENT_READ, pid)
                    reply({"id": request["id"], "pid": pid})
            else:
                children[key.data].read(selector, block=False)
        for pid, status in _reaped():
            running = children.pop(pid)
            running.read(selector, block=True)  # the child is gone: its pipe is at its end
            reply({"id": running.id, "exit": os.waitstatus_to_exitcode(status),
                   **running.report()})


class _Running:
    """A child the server forked: its request id and the report it is writing."""

    def __init__(self, request_id: int, report_fd: int):
        self.id = request_id
        self.fd: int | None = report_fd
        self.chunks: list[bytes] = []

    def read(self, selector, block: bool) -> None:
        """Read the report: what is there now, or (block) up to its end."""
        while self.fd is not None:
            data = os.read(self.fd, REPORT_MAX_BYTES)
            if not data:
                selector.unregister(self.fd)
                os.close(self.fd)
                self.fd = None
            else:
                self.chunks.append(data)
            if not block:
                return

    def report(self) -> dict[str, str]:
        """{"report": the isolation reached} or {"error": why the child could not start}."""
        data = b"".join(self.chunks)[:REPORT_MAX_BYTES + 1]
        text = data[1:].decode(errors="replace").strip()
        return {"report": text} if data[:1] == REPORT else {"error": text or "no report"}


def _reaped() -> list[tuple[int, int]]:
    """(pid, wait status) of every child that has ended since the last call."""
    ended = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, status))


def prepare_children() -> None:
    """Do once, here, what every child would otherwise do on its own: import what the
    notebooks' setup cells import, and run torch's lazy first-use work (printing a tensor,
    the elementwise and matrix kernels, safetensors, and a step of `optim.SGD`, whose first
    use imports torch._dynamo: 2 s here)."""
    from safetensors.torch import load, save

    import autograder.notebook  # noqa: F401 -- every setup cell imports it

    x = torch.linspace(0.1, 0.9, 6, dtype=torch.float64).reshape(2, 3)
    repr(x)
    y = torch.sigmoid(torch.mm(x, x.t())) * (1 - torch.exp(-x.sum(0, keepdim=True)).sum())
    load(save({"y": y.contiguous()}))
    layer = torch.nn.Linear(3, 1, dtype=torch.float64)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    torch.nn.MSELoss()(layer(x), y[:, :1]).backward()
    optimizer.step()


def main() -> None:
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    prepare_children()
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
