"""How student code is confined: two layers, the outer one bubblewrap's.

**Outer: bubblewrap** (`bubblewrap_command`). The fork server, and so every child it forks,
runs inside `bwrap`, a sandbox tool that Flatpak and many build systems rely on: it builds
a new root holding only the system's `/usr`, Python, the installed packages and the
sandbox's part of the `autograder` package (the student kit and the engine's child side,
never the references), read-only, and one read-write *spool* folder for the working
directories; nothing else of the machine exists in there (no checkout, no home, no course,
no gradebook, no socket of the host). It also gives the server its own pid, IPC, network
and UTS namespaces, and dies with the grader (`--die-with-parent`): when the grader ends,
for whatever reason, the pid namespace ends and the kernel kills every process in it.

**Inner: one sandbox per child** (`isolate`, called in the forked child before any student
code). The fork server forks each child into a pid namespace of its own (the child is its
pid 1: when it ends, the kernel kills whatever it left behind). The child then enters new
mount, network and IPC namespaces, mounts a fresh read-only `/proc` (its own processes only),
private size-limited tmpfs on `/tmp`, `/var/tmp` and `/dev/shm`, binds its own working
directory at `/sandbox` and covers the spool (other submissions) with an empty tmpfs. It
sets resource limits, drops to a uid leased to it alone (`uids.py`), sets no_new_privs, and
limits its uid to the threads it already has: it can start no process and no thread.
Last, it installs a seccomp filter (`forbid_limits_and_signals`, with or without root): it
can neither change its own resource limits nor send any signal, so that every way it can
end is one the trusted side can tell apart from a kill from outside (see `sandbox`), nor
lower its own priority or share of the CPU.

Where bubblewrap or root is missing, the child keeps the resource limits, a scrubbed
environment, its working directory and death with its parent: the returned description,
recorded in every result, starts with "degraded" and says what is missing.
"""

import ctypes
import dataclasses
import errno
import os
import resource
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import autograder

from .errors import GraderError

GIB = 1 << 30
MIB = 1 << 20

# Open files: with files of at most file_bytes each, this also bounds the memory a child can
# hold outside its address space (memfd_create, pipes) to OPEN_FILES * file_bytes.
OPEN_FILES = 64

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1

# Where the spool and the child's own working directory appear inside the sandbox.
SPOOL = Path("/spool")
SPOOL_BYTES = 256 * MIB  # the timed inputs waiting there; each working directory is a tmpfs
SANDBOX = Path("/sandbox")
FULL = "full"


@dataclass(frozen=True)
class Limits:
    """What one submission's sandbox may use. Times are the child's own seconds: wall-clock
    time less its waits for a CPU (see `sandbox._watch`)."""

    part_seconds: float = 60.0  # each part, all its cases together
    startup_seconds: float = 60.0  # start the child and run the notebook's cells
    cpu_seconds: int = 600  # CPU time of the whole sandboxed process (a backstop)
    memory_bytes: int = 2 * GIB  # address space the student's code may add
    tmp_bytes: int = 32 * MIB  # each of /tmp, /var/tmp and /dev/shm
    file_bytes: int = 64 * MIB  # the largest file the sandbox may write
    notebook_bytes: int = 64 * MIB  # a larger submission is refused unread

    def workdir_bytes(self) -> int:
        """The size of the working directory's tmpfs: the notebook, the inputs, the outputs."""
        return self.notebook_bytes + 2 * self.file_bytes + 16 * MIB

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Limits":
        return cls(**data)


DEFAULT_LIMITS = Limits()


# ---- the outer layer: bubblewrap around the fork server ---------------------------------

def bubblewrap_command(argv: list[str], info_fd: int) -> list[str]:
    """argv wrapped in bubblewrap; bwrap writes the sandboxed process's pid to info_fd.

    The spool is a tmpfs of the sandbox's own (SPOOL_BYTES): the trusted side reaches it
    through /proc/PID/root/spool, and it vanishes with the sandbox, however that ends."""
    command = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid",
               "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
               "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--dir", "/var/tmp", "--dir", str(SANDBOX),
               "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
               "--ro-bind-try", "/sys", "/sys"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64"):  # Debian's links into /usr
        path = Path("/") / top
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            command += ["--ro-bind", str(path), str(path)]
    kept = kept_paths()
    # Their parents open to every uid (on the host they may sit in a home that is not).
    for parent in sorted({a for k in kept for a in k.parents if a != Path("/")} - set(kept),
                         key=lambda p: len(p.parts)):
        command += ["--perms", "0755", "--dir", str(parent)]
    for path in kept:
        command += ["--ro-bind", str(path), str(path)]
    # Of the grader's own package, only what the sandbox runs: the kit and the child's side
    # of the engine. The references, the case generators and the known mistakes are not in
    # its view at all (they may lie below a kept path: the folder is replaced first).
    package = Path(autograder.__file__).resolve().parent
    command += ["--perms", "0755", "--tmpfs", str(package)]
    for path in SANDBOX_MODULES:
        command += ["--ro-bind", str(package / path), str(package / path)]
    command += ["--remount-ro", str(package)]
    for device in sorted(Path("/dev").glob("nvidia*")):  # CUDA, where there is a GPU
        command += ["--dev-bind", str(device), str(device)]
    command += ["--size", str(SPOOL_BYTES), "--tmpfs", str(SPOOL), "--info-fd", str(info_fd),
                "--chdir", "/", "--clearenv",
                "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
                "--setenv", "OMP_NUM_THREADS", "1", "--", *argv]
    return command


# What the sandbox sees of the `autograder` package: the student kit, and the modules that
# the fork server and its children run (none imports a grader module).
SANDBOX_MODULES = ("__init__.py", "kit", "engine/__init__.py", "engine/child.py",
                   "engine/errors.py", "engine/forkserver.py", "engine/isolation.py",
                   "engine/protocol.py")


def kept_paths() -> list[Path]:
    """What the sandbox sees of the machine besides /usr: Python, the installed packages and
    the `autograder` package (of which only SANDBOX_MODULES), shallowest first."""
    package = Path(autograder.__file__).resolve().parent
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), package},
                  key=lambda p: len(p.parts))


def degraded_because() -> str | None:
    """Why this machine cannot give the sandbox full isolation, or None when it can.

    Raises GraderError where grading must not run at all: as root without bubblewrap, the
    student's code would run as root."""
    if os.geteuid() != 0:
        return "not root: no uid of its own, no namespaces, the machine's files visible"
    if shutil.which("bwrap") is None:
        raise GraderError("bubblewrap is not installed: as root, the engine grades only "
                          "inside it (apt-get install bubblewrap)")
    return None


def describe_isolation() -> str:
    """One line: what isolation this machine gives the students' code (GraderError where
    grading must not run at all)."""
    if degraded_because() is None:
        return "isolation: full (each submission in a sandbox of its own, no network, none " \
               "of this machine's files)"
    return "isolation: LIMITED on this machine: student code runs under resource limits only, " \
           "and can read what this user can read and reach the network"


def full_isolation_available() -> bool:
    """Whether this machine gives the sandbox full isolation (root and bubblewrap)."""
    return degraded_because() is None


# ---- the inner layer: what each child does to itself -------------------------------------

def isolate(spool: Path, name: str, limits: Limits, uid: int | None) -> tuple[Path, str]:
    """Confine this freshly forked child; returns its working directory and what was reached.

    uid: the uid leased to this child when it runs inside bubblewrap (as root, pid 1 of its
    own pid namespace); None for a degraded sandbox, which keeps the grader's uid."""
    workdir = _private_mounts(spool, name, limits) if uid is not None else spool / name
    os.chdir(workdir)
    _scrub_environment(workdir, private_tmp=uid is not None)
    reached = [_set_resource_limits(limits)]
    if uid is not None:
        _drop_to(uid, workdir)
        threads = _threads()
        resource.setrlimit(resource.RLIMIT_NPROC, (threads, threads))
        reached.append(f"uid {uid} alone, no new process or thread; own pid, mount, network "
                       f"and IPC namespaces; private /tmp, /var/tmp, /dev/shm of "
                       f"{limits.tmp_bytes // MIB} MiB; sees only /usr, Python and its "
                       f"working directory")
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after the uid change
    reached.append(forbid_limits_and_signals())  # last: the calls above need both
    return workdir, "; ".join(reached)


# ---- seccomp: what the child may not ask of the kernel ------------------------------------

# The system calls a child may not make (each fails with EPERM), so that it cannot end itself
# in a way that looks like a kill from outside: change its own resource limits (prlimit64
# only when it sets one: reading a limit is allowed), send a signal to any process (itself
# included), or have one sent to it on I/O (fcntl F_SETSIG, which can name SIGKILL). Nor may
# it lower its own share of the CPU (nice, a scheduling class or CPUs of its own): its time
# limit does not count its waits for a CPU (`sandbox._OwnClock`), so a child that made itself
# wait could stretch its time until the grader gave up and left it ungraded.
REFUSED_SYSCALLS = ("setrlimit", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
                    "rt_tgsigqueueinfo", "pidfd_send_signal", "setpriority",
                    "sched_setscheduler", "sched_setparam", "sched_setattr",
                    "sched_setaffinity")
F_SETSIG = 10
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_EPERM = 0x00050000 | errno.EPERM
SCMP_FLTATR_CTL_TSYNC = 4  # every thread of the process, not only the caller
SCMP_CMP_NE, SCMP_CMP_EQ = 1, 4


class _ArgumentTest(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`: a test on one argument of a system call."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def forbid_limits_and_signals() -> str:
    """Install a seccomp filter (through libseccomp, Debian's libseccomp2) on this process:
    from now on it cannot change its resource limits or priority, or send a signal
    (REFUSED_SYSCALLS).
    It sets no_new_privs, so that it works without root too. OSError when it cannot."""
    try:
        seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as error:
        raise OSError(f"libseccomp is missing (apt-get install libseccomp2): {error}") from None
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgumentTest)]
    for name in ("seccomp_load", "seccomp_release"):
        getattr(seccomp, name).argtypes = [ctypes.c_void_p]
    seccomp.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    context = seccomp.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise OSError("seccomp_init failed")
    try:
        rules = [(name, []) for name in REFUSED_SYSCALLS]
        rules += [("prlimit64", [_ArgumentTest(2, SCMP_CMP_NE, 0, 0)]),  # a new limit given
                  ("fcntl", [_ArgumentTest(1, SCMP_CMP_EQ, F_SETSIG, 0)])]
        failed = seccomp.seccomp_attr_set(context, SCMP_FLTATR_CTL_TSYNC, 1)
        for name, tests in rules:
            number = seccomp.seccomp_syscall_resolve_name(name.encode())
            failed = failed or seccomp.seccomp_rule_add_array(
                context, SCMP_ACT_ERRNO_EPERM, number, len(tests),
                (_ArgumentTest * len(tests))(*tests) if tests else None)
        failed = failed or seccomp.seccomp_load(context)
    finally:
        seccomp.seccomp_release(context)
    if failed:
        raise OSError(-failed, f"seccomp filter: {os.strerror(-failed)}")
    return "seccomp: no change of its own limits or priority, no signal sent"


def _private_mounts(spool: Path, name: str, limits: Limits) -> Path:
    libc = _libc()
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC) != 0:
        raise OSError(ctypes.get_errno(), f"unshare: {os.strerror(ctypes.get_errno())}")
    _mount(libc, b"none", Path("/"), None, MS_REC | MS_PRIVATE, None)
    for other in _mounts_under(spool):  # the other children's working directories
        if other != spool / name:
            libc.umount2(str(other).encode(), MNT_DETACH)
    # Read-only: no write to /proc/self/autogroup (its group's nice) or anything else there.
    _mount(libc, b"proc", Path("/proc"), b"proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
           None)
    tmpfs = f"size={limits.tmp_bytes},nr_inodes=4096,mode=1777".encode()
    for path in map(Path, ("/tmp", "/var/tmp", "/dev/shm")):
        path.mkdir(exist_ok=True)
        # Python or the packages may live below it (a checkout in /tmp): mounted back.
        inside = {k: os.open(k, os.O_PATH) for k in kept_paths() if path in k.parents}
        _mount(libc, b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
        for kept, handle in inside.items():
            kept.mkdir(parents=True, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{handle}".encode(), kept, None, MS_BIND | MS_REC,
                   None)
            _mount(libc, b"none", kept, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID,
                   None)
            os.close(handle)
    _mount(libc, str(spool / name).encode(), SANDBOX, None, MS_BIND, None)
    _mount(libc, b"tmpfs", spool, b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
           b"size=4k,mode=0755")
    return SANDBOX


def _mounts_under(folder: Path) -> list[Path]:
    """The mount points strictly below folder, deepest first."""
    points = [Path(line.split()[4]) for line in Path("/proc/self/mountinfo").read_text()
              .splitlines()]
    return sorted({p for p in points if folder in p.parents}, key=lambda p: -len(p.parts))


def _drop_to(uid: int, workdir: Path) -> None:
    """Open the working directory to uid, then become uid for good (no way back).

    The directory stays root's, with the sticky bit: the child creates files in it but can
    neither rename nor remove the grader's (the timed inputs' folder, say)."""
    os.chmod(workdir, 0o1777)
    _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise OSError("no thread count in /proc/self/status")


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _set_resource_limits(limits: Limits) -> str:
    """The limits, each hard where it is soft, but CPU time: its hard limit a second later,
    so that the soft one's SIGXCPU comes first where it can end the child (the pid 1 of a
    namespace ignores it: the hard one's SIGKILL ends it, at a CPU time the fork server
    measures; see sandbox)."""
    in_use = _address_space_in_use()
    for which, value, hard in ((resource.RLIMIT_AS, in_use + limits.memory_bytes, None),
                               (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
                               (resource.RLIMIT_FSIZE, limits.file_bytes, None),
                               (resource.RLIMIT_CORE, 0, None),
                               (resource.RLIMIT_NOFILE, OPEN_FILES, None)):
        resource.setrlimit(which, (value, value if hard is None else hard))
    return (f"limits: {limits.memory_bytes // MIB} MiB more memory, {limits.cpu_seconds} s CPU, "
            f"files up to {limits.file_bytes // MIB} MiB")


def _address_space_in_use() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _mount(libc, source: bytes, target: Path, fstype, flags: int, data) -> None:
    if libc.mount(source, str(target).encode(), fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), f"mount on {target}: "
                                          f"{os.strerror(ctypes.get_errno())}")


def _scrub_environment(workdir: Path, private_tmp: bool) -> None:
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": str(workdir),
                       "TMPDIR": "/tmp" if private_tmp else str(workdir),
                       "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"})
