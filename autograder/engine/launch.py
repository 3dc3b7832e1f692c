"""How sandboxed children start: forked by a warm server that imported torch once.

`ForkServer` starts `python -I -m autograder.engine.forkserver` inside bubblewrap (see
`isolation`) and asks it for a child per run: about 15 ms instead of the 3 s that starting
Python and importing torch cost. The server never runs student code: each submission gets
its own freshly forked process, confined before any student code runs and gone when its
submission is done, so nothing one student does reaches the next.

The working directories live in the server's *spool*: inside bubblewrap a tmpfs of the
sandbox's own, which this process reaches through /proc/PID/root/spool and which vanishes
with the sandbox; each working directory is a size-limited tmpfs of its own in there. The
trusted side never signals a child itself (its pid belongs to the sandbox's pid
namespace): it asks the server to kill it.

Why not the standard library's multiprocessing "forkserver"? On Python 3.11 its
`__main__` preload is a no-op, so every child re-imports the parent's main script (3 s
when that script imports nbformat), and it moves the process object with pickle. Ours
speaks JSON lines over pipes and forks from a process that imported nothing else.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .isolation import FULL, SPOOL, bubblewrap_command, degraded_because

SERVER_START_SECONDS = 120  # importing torch on a busy machine
SERVER_STOPPED = "the fork server stopped"


class ForkServer:
    """The trusted side's handle on a running fork server: requests out, events in."""

    def __init__(self):
        degraded = degraded_because()
        self.isolation = FULL if degraded is None else f"degraded: {degraded}"
        self._lock = threading.Lock()
        self._children: dict[int, WarmChild] = {}
        self._replies: dict[int, tuple[threading.Event, dict]] = {}
        self._next_id = 0
        self._stopped = False  # the server's replies have ended: it is gone
        argv = [str(interpreter()), "-I", "-m", "autograder.engine.forkserver"]
        # Its stderr: why it stopped, if it does (closed with this handle's process).
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                       "OMP_NUM_THREADS": "1"}
        if degraded is None:
            info_read, info_write = os.pipe()
            self.process = subprocess.Popen(
                bubblewrap_command([*argv, "--spool", str(SPOOL), "--isolated"], info_write),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors,
                pass_fds=[info_write], env=environment)
            os.close(info_write)
            with os.fdopen(info_read) as info:
                sandboxed = json.loads(info.read() or "{}").get("child-pid")
            if sandboxed is None:
                raise OSError(f"bubblewrap did not start (exit {self.process.wait()}): "
                              f"{self.last_words() or 'it said nothing'}")
            self.spool = Path(f"/proc/{sandboxed}/root") / SPOOL.relative_to("/")
            self.proc = Path(f"/proc/{sandboxed}/root/proc")  # its pid namespace's
        else:
            self.spool = Path(tempfile.mkdtemp(prefix="backprop-spool-"))
            self.proc = Path("/proc")
            self.process = subprocess.Popen([*argv, "--spool", str(self.spool)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=self._errors, env=environment)
        threading.Thread(target=self._listen, daemon=True).start()
        atexit.register(self.close)

    def workdir(self, size: int) -> tuple[str, Path]:
        """A fresh working directory of size bytes in the spool: its name, its path here."""
        with self._lock:
            self._refuse_if_stopped()
            self._next_id += 1
            request_id, name = self._next_id, f"s{self._next_id}"
            answered = self._replies[request_id] = (threading.Event(), {})
            self._send({"id": request_id, "prepare": name, "bytes": size})
        if not answered[0].wait(SERVER_START_SECONDS) or "error" in answered[1]:
            raise OSError(f"no working directory for a sandbox: "
                          f"{answered[1].get('error', SERVER_STOPPED)}")
        return name, self.spool / name

    def release(self, name: str) -> None:
        """Remove a working directory (and its timed inputs) once its child is done."""
        with self._lock:
            self._send({"release": name})

    def start(self, name: str, uid: int | None, nonce: str) -> "WarmChild":
        """Ask for a child that runs the request in the working directory `name`."""
        with self._lock:
            self._refuse_if_stopped()
            self._next_id += 1
            child = self._children[self._next_id] = WarmChild(self, self._next_id)
            self._send({"id": child.id, "name": name, "uid": uid, "nonce": nonce})
        if not child.started.wait(SERVER_START_SECONDS):
            raise OSError("the fork server did not start a sandbox in time")
        return child

    def kill(self, child: "WarmChild") -> None:
        with self._lock:
            self._send({"id": child.id, "kill": True})

    def alive(self) -> bool:
        """Whether the server still answers (its process may outlive its replies briefly)."""
        with self._lock:
            stopped = self._stopped
        return not stopped and self.process.poll() is None

    def _refuse_if_stopped(self) -> None:
        """OSError once the server is gone: a request sent then would wait for nothing."""
        if self._stopped:
            raise OSError(SERVER_STOPPED)

    def close(self) -> None:
        """Stop the server (its children die with it) and remove the spool."""
        if self.alive():
            self.process.kill()
            self.process.wait()
        if self.isolation != FULL:  # bubblewrap's spool is gone with it
            shutil.rmtree(self.spool, ignore_errors=True)

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):  # the server is gone: _listen ends its children
            pass

    def _listen(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:  # a line cut short: the server is not to be trusted any more
                self.process.kill()
                break
            with self._lock:
                child = self._children.get(event["id"])
                if child is not None and "exit" in event:
                    del self._children[event["id"]]
                waiting = self._replies.pop(event["id"], None)
            if child is not None:
                child.update(event)
            if waiting is not None:
                waiting[1].update(event)
                waiting[0].set()
        words = self.last_words()
        stopped = f"{SERVER_STOPPED} ({words})" if words else SERVER_STOPPED
        with self._lock:  # the server is gone: so are the children it forked
            self._stopped = True
            for child in self._children.values():
                child.update({"exit": -9, "error": stopped})
            self._children.clear()
            for event, reply in self._replies.values():
                reply["error"] = stopped
                event.set()
            self._replies.clear()


    def last_words(self) -> str:
        """The last line the server (or bubblewrap) wrote to stderr, in printable text."""
        self._errors.seek(0, os.SEEK_END)
        self._errors.seek(max(0, self._errors.tell() - 2048))
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return "".join(ch if ch.isprintable() else " " for ch in lines[-1])[:300] \
            if lines else ""


def interpreter() -> Path:
    """This Python, by the real path of its folder: bubblewrap binds real paths only (a
    virtualenv reached through a link was not found inside), and the file's own name is
    kept, so that a virtualenv's python still finds its pyvenv.cfg."""
    executable = Path(sys.executable)
    return executable.parent.resolve() / executable.name


class WarmChild:
    """A child the fork server forked, as the trusted side watches it."""

    def __init__(self, server: ForkServer, child_id: int):
        self.server = server
        self.id = child_id
        self.pid: int | None = None  # in the server's pid namespace
        self.started = threading.Event()
        self._ended = threading.Event()
        self.exit: int | None = None
        self.report = ""  # what the child wrote before any student code (JSON)
        self.error = ""  # why it could not start, or that the server stopped
        self.timed_cpu: float | None = None  # CPU seconds from the clock's start to its end
        self.cpu = 0.0  # CPU seconds it used in all, as the fork server measured at its end

    def update(self, event: dict) -> None:
        self.pid = event.get("pid", self.pid)
        self.started.set()
        if "exit" in event:
            self.report, self.error = event.get("report", ""), event.get("error", "")
            self.timed_cpu = event.get("timed_cpu")
            self.cpu = event.get("cpu") or 0.0
            self.exit = event["exit"]
            self._ended.set()

    def waited_for_cpu(self) -> float | None:
        """Seconds it has spent ready to run but waiting for a CPU (its run-queue delay,
        /proc/PID/schedstat), read from outside; None when that cannot be read."""
        try:
            return int((self.server.proc / str(self.pid) / "schedstat").read_text()
                       .split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def poll(self) -> int | None:
        """Its exit code (negative: killed by that signal), or None while it runs."""
        return self.exit

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for it to end, at most timeout seconds; its exit code, or None if running."""
        self._ended.wait(timeout)
        return self.exit

    def kill(self) -> None:
        """Kill it and everything it started, and wait for its end."""
        if self.exit is None:
            self.server.kill(self)
        self.wait()


_SERVER_LOCK = threading.Lock()
_SERVER: ForkServer | None = None


def default_launcher() -> ForkServer:
    """This process's fork server, started on first use and again if it died."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or not _SERVER.alive():
            if _SERVER is not None:
                _SERVER.close()
            _SERVER = ForkServer()
        return _SERVER


def warm_up() -> None:
    """Start this process's fork server now, so that it imports torch while we work on."""
    default_launcher()
