"""How a sandboxed child process starts: cold, or warm from a server that imported torch.

Both kinds run the same code in the child (`child.confine_and_execute`): it confines itself
with `isolation.isolate` before any student code runs, so isolation is the same either way.

* `ColdLauncher` starts a fresh `python -I -m autograder.engine.child`. Every child pays
  for starting Python and importing torch (about 3 s here).
* `WarmLauncher` asks a fork server (`forkserver.py`) that imported torch and the child's
  code once to fork a new child: about 15 ms instead of 3 s. The server never runs student
  code: each submission gets its own freshly forked process, which ends with the
  submission, so nothing one student does reaches the next.

Why not the standard library's multiprocessing "forkserver"? On Python 3.11 its
`__main__` preload is a no-op, so every child re-imports the parent's main script (3 s
when that script imports nbformat), and it moves the process object with pickle. Ours
speaks JSON lines over pipes and forks from a process that imported nothing else.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

REPORT_MAX_BYTES = 4096
SERVER_START_SECONDS = 120  # importing torch on a busy machine
# What the fork server starts with: no thread pool, so that it forks as a single-threaded
# process (the children run single-threaded anyway).
FORK_SERVER_ENVIRONMENT = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                           "OMP_NUM_THREADS": "1"}


class Child(Protocol):
    """A started sandboxed child, as the trusted side watches it."""

    pid: int

    def poll(self) -> int | None:
        """Its exit code (negative: killed by that signal), or None while it runs."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for it to end, at most timeout seconds; its exit code, or None if running."""

    def report(self) -> str:
        """The line describing the isolation it reached, written before any student code."""

    def output_tail(self) -> str:
        """The last lines it printed, to explain a child that failed to start."""


class ColdLauncher:
    """Each child is a fresh Python process."""

    name = "cold"

    def start(self, workdir: Path) -> Child:
        return _ColdChild(workdir)


class WarmLauncher:
    """Each child is forked from the fork server, which imported torch once."""

    name = "warm"

    def start(self, workdir: Path) -> Child:
        return _fork_server().start(workdir)


Launcher = ColdLauncher | WarmLauncher


def default_launcher() -> Launcher:
    """The warm launcher: what the engine uses unless told otherwise."""
    return WarmLauncher()


def warm_up() -> None:
    """Start this process's fork server now, so that it imports torch while we work on."""
    _fork_server()


_SERVER_LOCK = threading.Lock()
_SERVER: "_ForkServer | None" = None


def _fork_server() -> "_ForkServer":
    """This process's fork server, started on first use and again if it died."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or _SERVER.process.poll() is not None:
            _SERVER = _ForkServer()
        return _SERVER


class _ForkServer:
    """The trusted side's handle on a running fork server: requests out, events in."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "autograder.engine.forkserver"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=FORK_SERVER_ENVIRONMENT)
        self._lock = threading.Lock()
        self._children: dict[int, _WarmChild] = {}
        self._next_id = 0
        threading.Thread(target=self._listen, daemon=True).start()

    def start(self, workdir: Path) -> "_WarmChild":
        with self._lock:
            self._next_id += 1
            child = self._children[self._next_id] = _WarmChild()
            request = {"id": self._next_id, "workdir": str(workdir)}
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        if not child.started.wait(SERVER_START_SECONDS):
            raise RuntimeError("the fork server did not start a sandbox in time")
        return child

    def _listen(self) -> None:
        for line in self.process.stdout:
            event = json.loads(line)
            with self._lock:
                child = self._children[event["id"]]
                if "exit" in event:
                    del self._children[event["id"]]
            child.update(event)
        with self._lock:  # the server is gone: so are the children it forked
            for child in self._children.values():
                child.update({"exit": -9, "error": "the fork server stopped"})
            self._children.clear()


class _WarmChild:
    def __init__(self):
        self.pid = 0
        self.started = threading.Event()
        self._ended = threading.Event()
        self._exit: int | None = None
        self._report = ""
        self._error = ""

    def update(self, event: dict) -> None:
        self.pid = event.get("pid", self.pid)
        self.started.set()
        if "exit" in event:
            self._exit = event["exit"]
            self._report, self._error = event.get("report", ""), event.get("error", "")
            self._ended.set()

    def poll(self) -> int | None:
        return self._exit

    def wait(self, timeout: float | None = None) -> int | None:
        self._ended.wait(timeout)
        return self._exit

    def report(self) -> str:
        return self._report

    def output_tail(self) -> str:
        return self._error or "(a forked child's output goes to /dev/null)"


class _ColdChild:
    def __init__(self, workdir: Path):
        report_read, report_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-m", "autograder.engine.child", str(workdir),
                 "--report-fd", str(report_write)],
                pass_fds=[report_write], cwd=workdir, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
        finally:
            os.close(report_write)
        self._report = os.fdopen(report_read, "rb")
        self.pid = self._process.pid
        self._tail: list[bytes] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        """Read and drop what the child prints, keeping its last few kB."""
        stream = self._process.stdout
        while chunk := stream.read(65536):
            self._tail.append(chunk)
            del self._tail[:-2]
        stream.close()

    def poll(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def report(self) -> str:
        with self._report:  # the child wrote one line, then closed its end
            return self._report.read(REPORT_MAX_BYTES).decode(errors="replace").strip()

    def output_tail(self) -> str:
        lines = b"".join(self._tail).decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])
