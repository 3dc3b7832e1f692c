"""Confine the current process before it runs a student's code: `isolate(workdir, limits)`.

Called inside the child process itself, after fork/exec and before any student code runs.
In order:

1. resource limits: address space (the student's code may add `memory_bytes` to what the
   interpreter and torch already use), CPU seconds, processes and threads (against fork
   bombs), size of any file written, no core dumps, open files;
2. when the process may (root, or CAP_SYS_ADMIN): new network and mount namespaces through
   unshare(2). The network namespace has no interface up, so every connection fails. In the
   mount namespace, the paths the student must not see (the checkout with source/, solutions/
   and the git history, the grader's home, the course directory with the gradebook and other
   students' files, the results directory, `limits.hidden`) are covered by an empty
   read-only tmpfs; only the Python environment, the `autograder` package and the working
   directory are mounted back where they were;
3. a scrubbed environment, the working directory as cwd and $HOME;
4. when running as root: no new privileges (setuid binaries stay unprivileged), and a drop
   to a uid of its own (`SANDBOX_UID_BASE + pid`), so that the student cannot undo the
   mounts, write the grader's files, or count its processes with anyone else's, and so that
   the trusted side can kill every process the student left behind (`kill_sandbox_user`).

Where unshare is not permitted (a non-root machine), the process keeps the resource
limits, the scrubbed environment and the private working directory; the returned
description says what was reached, and the result of every submission records it.
"""

import ctypes
import dataclasses
import os
import resource
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import autograder

GIB = 1 << 30
MIB = 1 << 20

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
# Each sandbox runs as its own uid: this base plus the pid of the sandboxed process.
SANDBOX_UID_BASE = 1_500_000_000


@dataclass(frozen=True)
class Limits:
    """What one submission's sandbox may use. Times are wall-clock seconds."""

    part_seconds: float = 60.0  # each part, all its cases together
    startup_seconds: float = 60.0  # start Python and torch and run the notebook's cells
    cpu_seconds: int = 600  # CPU time of the whole sandboxed process (a backstop)
    memory_bytes: int = 2 * GIB  # address space the student's code may add
    processes: int = 64  # processes and threads of the sandbox's uid
    file_bytes: int = 64 * MIB  # the largest file the sandbox may write
    notebook_bytes: int = 64 * MIB  # a larger submission is refused unread
    hidden: tuple[str, ...] = ()  # more paths to hide, beside the defaults
    drop_privileges: bool = True  # when root, run as an unprivileged uid of its own

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Limits":
        return cls(**{**data, "hidden": tuple(data.get("hidden", ()))})


DEFAULT_LIMITS = Limits()


def isolate(workdir: Path, limits: Limits) -> str:
    """Confine this process as described in the module docstring; say what was reached."""
    workdir = workdir.resolve()
    reached = [_set_resource_limits(limits)]
    namespaces = _unshare()
    if namespaces is None:
        hidden = _hide(workdir, limits)
        reached.append(f"no network, {hidden}")
    else:
        reached.append(f"DEGRADED: no network or mount namespace ({namespaces}): the code "
                       f"can read what this user can read and can reach the network")
    os.chdir(workdir)
    _scrub_environment(workdir)
    if os.geteuid() == 0 and limits.drop_privileges:
        closed = [p for p in workdir.parents if not p.stat().st_mode & stat.S_IXOTH]
        if closed:
            raise PermissionError(f"the sandbox's uid could not reach {workdir}: {closed[0]} "
                                  f"is closed to other users (make it under /tmp)")
        uid = sandbox_uid(os.getpid())
        os.chown(workdir, uid, uid)
        for entry in workdir.iterdir():
            os.chown(entry, uid, uid)
        _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        # Dies with the grader (a change of uid clears this setting, so it comes after).
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        reached.append(f"uid {uid}")
    else:
        reached.append(f"uid {os.geteuid()} (not dropped: the process limit counts all "
                       f"of this user's processes)")
    return "; ".join(reached)


def sandbox_uid(pid: int) -> int:
    """The uid that the sandboxed process with this pid runs as (when started as root)."""
    return SANDBOX_UID_BASE + pid


def full_isolation_available() -> bool:
    """Whether this machine lets a child unshare its network and mount namespaces."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _unshare() is None else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _set_resource_limits(limits: Limits) -> str:
    in_use = _address_space_in_use()
    for which, value in ((resource.RLIMIT_AS, in_use + limits.memory_bytes),
                         (resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_FSIZE, limits.file_bytes),
                         (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NOFILE, 256)):
        resource.setrlimit(which, (value, value))
    if os.geteuid() == 0 and limits.drop_privileges:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    return (f"limits: {limits.memory_bytes // MIB} MiB more memory, {limits.cpu_seconds} s CPU, "
            f"{limits.processes} processes, files up to {limits.file_bytes // MIB} MiB")


def _address_space_in_use() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _unshare() -> str | None:
    """Enter new network and mount namespaces; None on success, else why not."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        return f"unshare: {os.strerror(ctypes.get_errno())}"
    # Mounts made from now on stay in this namespace.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"mount --make-rprivate: {os.strerror(ctypes.get_errno())}"
    return None


def default_hidden_paths() -> list[Path]:
    """The checkout the grader runs from (and its main checkout, for a git worktree), and
    the grader's home directory."""
    package = Path(autograder.__file__).resolve().parent
    checkout = package.parent
    paths = [Path.home()]
    if not (checkout / "source").is_dir():  # installed from a wheel, not run from a checkout
        return paths
    paths.append(checkout)
    git = checkout / ".git"
    if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().removeprefix("gitdir:").strip())
        common = gitdir / "commondir"
        main_git = (gitdir / common.read_text().strip()).resolve() if common.exists() \
            else gitdir.parent.parent
        paths.append(main_git.parent)
    return paths


def _kept_paths(workdir: Path) -> list[Path]:
    """What the sandboxed code needs: Python, its packages, autograder, its working dir."""
    package = Path(autograder.__file__).resolve().parent
    kept = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), package, workdir}
    return sorted(kept, key=lambda p: len(p.parts))


def _hide(workdir: Path, limits: Limits) -> str:
    """Cover each hidden path with an empty tmpfs, mounting back the kept paths inside."""
    libc = _libc()
    kept = _kept_paths(workdir)
    roots: list[Path] = []
    for path in sorted({Path(p).resolve() for p in (*default_hidden_paths(), *limits.hidden)},
                       key=lambda p: len(p.parts)):
        if path.exists() and path != Path("/") and not any(path.is_relative_to(r) for r in roots) \
                and not any(path.is_relative_to(k) for k in kept):
            roots.append(path)
    for root in roots:
        inside = [k for k in kept if k.is_relative_to(root) and k != root and
                  not any(k.is_relative_to(o) and k != o for o in kept if o.is_relative_to(root))]
        handles = {k: os.open(k, os.O_PATH) for k in inside}
        if root.is_dir():
            _mount(libc, b"tmpfs", root, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k")
        else:
            _mount(libc, b"/dev/null", root, None, MS_BIND, None)
        for path, handle in handles.items():
            path.mkdir(parents=True, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{handle}".encode(), path, None, MS_BIND | MS_REC, None)
            os.close(handle)
    return f"{len(roots)} paths hidden ({', '.join(map(str, roots))})"


def _mount(libc, source: bytes, target: Path, fstype, flags: int, data) -> None:
    if libc.mount(source, str(target).encode(), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount on {target}: "
                                          f"{os.strerror(ctypes.get_errno())}")


def _scrub_environment(workdir: Path) -> None:
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
                       "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"})
