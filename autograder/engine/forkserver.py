"""The warm fork server: imports torch and the child's code once, then forks on request.

    python -I -m autograder.engine.forkserver --spool DIR [--isolated]

It runs inside bubblewrap when isolated (see `isolation`), and never runs student code. It
reads requests from stdin and answers on stdout, one JSON object per line:

    -> {"id": 6, "prepare": "s7", "bytes": 150000000}   a working directory DIR/s7, a tmpfs
    <- {"id": 6, "prepared": true}                      (or "error": why not)
    -> {"id": 7, "name": "s7", "uid": 1500000123, "nonce": "..."}   fork a child for DIR/s7
    <- {"id": 7, "pid": 1234}                                      it is running
    -> {"id": 7, "kill": true}                                     kill it (and all it left)
    <- {"id": 7, "exit": -9, "report": "...", "timed_cpu": 0.004, "cpu": 1.2}  it has ended
    -> {"release": "s7"}                                 remove DIR/s7 and what waits for it

"cpu" is the CPU time the child used in all (its rusage, read when it is reaped).
"report" is the first line the child wrote, before any student code: the isolation it
reached and the request's nonce, as JSON; a child that could not confine itself ends with
"error" instead. When isolated, each child is pid 1 of a pid namespace of its own, so
killing it kills every process it started.

**Timing.** A timed part (the speed of a function) is measured here, where no student code
runs: the child says when it is ready, the server reads the child's CPU clock, moves the
timed inputs into the child's working directory (until then the child cannot read them)
and lets it go; when the child says its outputs are written, the server reads the clock
again and kills it at once. "timed_cpu" is the CPU time the child used in between.

It is single-threaded (forking a multi-threaded process can deadlock the child) and ends
when its stdin closes or its parent dies.
"""

import argparse
import contextlib
import ctypes
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import torch  # noqa: F401 -- imported once here, so that no child pays for it

from . import child, protocol
from .isolation import CLONE_NEWPID, MS_NODEV, MS_NOSUID

PR_SET_PDEATHSIG = 1
MNT_DETACH = 2
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters
REPORT_MAX_BYTES = 4096
REPORT, FAILED = b"R", b"E"  # the first byte a child writes to its report pipe


class Server:
    """Forks children for requests and reports their pids, ends and timings."""

    def __init__(self, spool: Path, isolated: bool):
        self.spool = spool
        self.isolated = isolated
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.pid = os.getpid()
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY) if isolated else -1
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Running] = {}  # by pid
        self.by_id: dict[int, _Running] = {}

    def fork_child(self, request: dict) -> "_Running":
        """Fork a sandboxed child for one request (pid 1 of its own namespace if isolated)."""
        report_read, report_write = os.pipe()
        timer, child_timer = socket.socketpair()
        name = _plain_name(str(request["name"]))
        if self.isolated and self.libc.unshare(CLONE_NEWPID) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID)")
        try:
            pid = os.fork()
        finally:
            if self.isolated and os.getpid() == self.pid:  # only the next fork is pid 1
                self.libc.setns(self.own_pid_namespace, CLONE_NEWPID)
        if pid == 0:
            self._run_child(request, name, report_write, child_timer.detach())
        os.close(report_write)
        child_timer.close()
        running = _Running(request["id"], pid, name, report_read, timer, _pidfd(pid))
        self.selector.register(report_read, selectors.EVENT_READ, running)
        self.selector.register(timer, selectors.EVENT_READ, running)
        if running.pidfd is not None:  # readable once the child has ended: reap it at once
            self.selector.register(running.pidfd, selectors.EVENT_READ, running)
        self.children[pid] = running
        self.by_id[running.id] = running
        return running

    def _run_child(self, request: dict, name: str, report_write: int, timer_fd: int) -> None:
        code = 1
        try:
            os.setsid()  # a session and process group of its own
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
                child.confine_and_execute(self.spool, name, request.get("uid"),
                                          str(request.get("nonce", "")), send_report, timer_fd)
                code = 0
            except BaseException as error:
                if not reported:
                    os.write(report_write, FAILED + f"{type(error).__name__}: {error}".encode())
                raise
        finally:
            os._exit(code)

    def let_go(self, running: "_Running") -> None:
        """The child is ready for its timed inputs: note its CPU clock, hand them over.

        The child may ask at any time and may have planted links: every name is opened
        without following links, and only the grader's own folder and file are touched."""
        if running.cpu_at_go is not None:
            return
        running.cpu_at_go = cpu_time_of(running.pid)
        workdir = self.spool / running.name
        waiting = protocol.timed_inputs_waiting(workdir)
        with contextlib.suppress(OSError):
            folder = os.open(waiting.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                inputs = os.open(waiting.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
                try:
                    if os.fstat(folder).st_uid == os.fstat(inputs).st_uid == os.getuid():
                        os.fchmod(inputs, 0o644)
                        os.replace(waiting.name, workdir / protocol.TIMED, src_dir_fd=folder)
                finally:
                    os.close(inputs)
            finally:
                os.close(folder)
        with contextlib.suppress(OSError):
            running.timer.send(protocol.GO)

    def prepare(self, name: str, size: int) -> None:
        """A working directory for name: when isolated, a tmpfs of its own of this size."""
        workdir = self.spool / _plain_name(name)
        workdir.mkdir(mode=0o700)
        if self.isolated:
            options = f"size={size},nr_inodes=4096,mode=0700".encode()
            if self.libc.mount(b"tmpfs", str(workdir).encode(), b"tmpfs",
                               MS_NOSUID | MS_NODEV, options) != 0:
                raise OSError(ctypes.get_errno(), f"mount tmpfs on {workdir}")

    def release(self, name: str) -> None:
        """Remove name's working directory."""
        workdir = self.spool / _plain_name(name)
        if self.isolated:
            self.libc.umount2(str(workdir).encode(), MNT_DETACH)
        shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def kill(running: "_Running") -> None:
        """Kill the child's process group (isolated: its pid namespace, all it started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.pid, signal.SIGKILL)


def _plain_name(name: str) -> str:
    if not name.isalnum():
        raise ValueError(f"a working directory's name is letters and digits: {name!r}")
    return name


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the child pid ends (Linux 5.3+), or None
    where the kernel has none: then the server polls for ended children."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def cpu_time_of(pid: int) -> float:
    """The CPU time (user and system) the process pid has used so far, in seconds."""
    return time.clock_gettime(((~pid) << 3) | 2)  # the kernel's CPU clock of a process


def serve(server: Server, requests, replies) -> None:
    """Fork a child per request line, kill on request, and report each child's end."""
    selector = server.selector
    selector.register(requests, selectors.EVENT_READ)
    buffered = b""

    def reply(message: dict) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    while True:
        polling = any(running.pidfd is None for running in server.children.values())
        for key, _ in selector.select(timeout=0.01 if polling else None):
            if key.fileobj is requests:
                chunk = os.read(requests.fileno(), 65536)
                if not chunk:
                    return
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    request = json.loads(line)
                    if request.get("kill"):
                        if request["id"] in server.by_id:
                            server.kill(server.by_id[request["id"]])
                    elif "release" in request:
                        server.release(request["release"])
                    elif "prepare" in request:
                        try:
                            server.prepare(request["prepare"], int(request["bytes"]))
                            reply({"id": request["id"], "prepared": True})
                        except (OSError, ValueError) as error:
                            reply({"id": request["id"], "error": str(error)})
                    else:
                        running = server.fork_child(request)
                        reply({"id": running.id, "pid": running.pid})
            elif isinstance(key.fileobj, socket.socket):
                key.data.timer_event(server)
            elif key.fd != key.data.pidfd:  # the child ended: reaped below
                key.data.read(selector, block=False)
        for pid, status, cpu in _reaped():
            running = server.children.pop(pid, None)
            if running is None:
                continue
            del server.by_id[running.id]
            running.read(selector, block=True)  # the child is gone: its pipe is at its end
            running.close(selector)
            reply({"id": running.id, "exit": os.waitstatus_to_exitcode(status),
                   "timed_cpu": running.timed_cpu, "cpu": cpu, **running.report()})


class _Running:
    """A child the server forked: its request id, pid, report and timer."""

    def __init__(self, request_id: int, pid: int, name: str, report_fd: int,
                 timer: socket.socket, pidfd: int | None):
        self.id = request_id
        self.pid = pid
        self.pidfd = pidfd
        self.name = name
        self.fd: int | None = report_fd
        self.timer: socket.socket | None = timer
        self.chunks: list[bytes] = []
        self.cpu_at_go: float | None = None
        self.timed_cpu: float | None = None  # from READY's clock to DONE's

    def read(self, selector, block: bool) -> None:
        """Read the report: what is there now, or (block) up to its end."""
        while self.fd is not None:
            data = os.read(self.fd, REPORT_MAX_BYTES)
            if not data:
                selector.unregister(self.fd)
                os.close(self.fd)
                self.fd = None
            else:
                self.chunks.append(data[:REPORT_MAX_BYTES * 2])
                del self.chunks[2:]
            if not block:
                return

    def timer_event(self, server: Server) -> None:
        """The child wrote on its timer socket: its first READY lets it go, a DONE after
        that stops the clock and the child. Anything else (its end, a repeat, any other
        bytes) closes the socket: a child that floods it would otherwise keep this server
        busy reading it a few bytes at a time while it waits, using no CPU of its own."""
        try:
            data = self.timer.recv(16)
        except OSError:
            data = b""
        if data == protocol.READY and self.cpu_at_go is None:
            server.let_go(self)
        elif data == protocol.DONE and self.cpu_at_go is not None:
            self.timed_cpu = max(0.0, cpu_time_of(self.pid) - self.cpu_at_go)
            server.kill(self)
        else:
            server.selector.unregister(self.timer)
            self.timer.close()
            self.timer = None

    def close(self, selector) -> None:
        if self.timer is not None:
            selector.unregister(self.timer)
            self.timer.close()
            self.timer = None
        if self.pidfd is not None:
            selector.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def report(self) -> dict[str, str]:
        """{"report": what the child reported} or {"error": why it could not start}."""
        data = b"".join(self.chunks)[:REPORT_MAX_BYTES + 1]
        text = data[1:].decode(errors="replace").strip()
        return {"report": text} if data[:1] == REPORT else {"error": text or "no report"}


def _reaped() -> list[tuple[int, int, float]]:
    """(pid, wait status, CPU seconds it used) of every child that has ended since the last
    call."""
    ended = []
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, status, usage.ru_utime + usage.ru_stime))


def prepare_children() -> None:
    """Do once, here, what every child would otherwise do on its own: import what the
    notebooks' setup cells import, and run torch's lazy first-use work (printing a tensor,
    the elementwise and matrix kernels, safetensors, and a step of `optim.SGD`, whose first
    use imports torch._dynamo: 2 s here)."""
    from safetensors.torch import load, save

    import autograder.kit  # noqa: F401 -- every setup cell imports it
    import autograder.kit.assignment_parts  # noqa: F401 -- every child reads its parts
    import autograder.kit.notebook  # noqa: F401 -- the setup cell's checker and example

    x = torch.linspace(0.1, 0.9, 6, dtype=torch.float64).reshape(2, 3)
    repr(x)
    y = torch.sigmoid(torch.mm(x, x.t())) * (1 - torch.exp(-x.sum(0, keepdim=True)).sum())
    load(save({"y": y.contiguous()}))
    layer = torch.nn.Linear(3, 1, dtype=torch.float64)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    torch.nn.MSELoss()(layer(x), y[:, :1]).backward()
    optimizer.step()


def keep_freed_memory() -> None:
    """Let malloc keep the memory a child frees and hand it out again, instead of mapping
    fresh pages (and faulting on each) for every large tensor: a timed call then costs what
    the computation costs, in an old process or a new one."""
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m autograder.engine.forkserver")
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--isolated", action="store_true",
                        help="inside bubblewrap, as root: namespaces and uids per child")
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    keep_freed_memory()
    prepare_children()
    serve(Server(args.spool, args.isolated), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
