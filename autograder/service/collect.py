"""Collect a submission from inbound/ without trusting anything in it.

nbgrader's own copy (`shutil.copytree`) follows links and opens whatever a name points at:
run as root, a link to another student's notebook or to the source notebook was graded as
the writer's work and sent back in their feedback, and a link to /dev/zero filled the disk.
Here every name is opened relative to its folder with O_NOFOLLOW and checked with fstat on
the open descriptor: only folders and regular files, owned by the account that submitted
(nothing another account wrote or hard-linked in), each file with one link, are copied;
a link, a FIFO, a socket or a device refuses the whole submission, unread. The copy is
capped (CAPS) and has a time budget, and it runs on a collect thread, never on the
service's loop. The trusted time of the submission is the latest ctime of everything it
copied, read after the copy: no user can set a ctime or move one back.
"""

import errno
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .inbound import SECRET, TIMESTAMP, Inbound

MIB = 1024 * 1024
CHUNK = MIB


@dataclass(frozen=True)
class Caps:
    """What one submission may hold; more refuses it, with a message to its student."""

    files: int = 100  # files and folders
    total_bytes: int = 20 * MIB
    depth: int = 4  # folders inside the submission's folder
    seconds: float = 10.0  # the copy's time budget


CAPS = Caps()


class Refused(Exception):
    """The submission is not graded; the message is for its student (plain text)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Collected:
    trusted_time: float  # UTC seconds
    claimed_time: str | None  # the student's timestamp.txt, if readable
    secret: str


def collect(submission: Inbound, dest: Path, caps: Caps = CAPS) -> Collected:
    """Copy the submission's folder into dest (a new folder, made here), or raise Refused.
    dest is left half-written on failure: the caller writes into a temporary folder."""
    copier = _Copier(submission, caps)
    try:
        top = os.open(submission.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                      | os.O_CLOEXEC)
    except OSError as error:
        raise Refused("unreadable", f"the submission's folder could not be opened "
                                    f"({os.strerror(error.errno or 0)})") from None
    try:
        copier.check_owned(os.fstat(top), submission.name)
        os.mkdir(dest, 0o755)
        copier.copy_folder(top, dest, depth=0, shown="")
        latest = max(copier.ctimes + [os.fstat(top).st_ctime])
    finally:
        os.close(top)
    secret = (dest / SECRET).read_text(errors="replace").strip() \
        if (dest / SECRET).is_file() else ""
    if not secret:
        raise Refused("incomplete", "the submission has no submission_secret.txt")
    claimed = (dest / TIMESTAMP).read_text(errors="replace").strip()[:64] \
        if (dest / TIMESTAMP).is_file() else None
    return Collected(latest, claimed, secret)


class _Copier:
    def __init__(self, submission: Inbound, caps: Caps):
        self.uid, self.caps = submission.uid, caps
        self.deadline = time.monotonic() + caps.seconds
        self.entries = self.bytes = 0
        self.ctimes: list[float] = []

    def check_owned(self, info: os.stat_result, shown: str) -> None:
        if info.st_uid != self.uid:
            raise Refused("foreign-file", f"{shown or 'the folder'} was written by another "
                                          f"account than yours: nothing was graded")

    def copy_folder(self, folder: int, dest: Path, depth: int, shown: str) -> None:
        for name in sorted(os.listdir(folder)):
            where = f"{shown}{name}"
            self.entries += 1
            if self.entries > self.caps.files:
                raise Refused("too-many-files", f"the submission holds more than "
                                                f"{self.caps.files} files and folders")
            self._check_time()
            try:
                handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                 | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=folder)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise Refused("link", f"{where!r} is a link: links are never followed, "
                                          f"so nothing was graded") from None
                if error.errno == errno.ENXIO:  # a socket cannot be opened
                    raise Refused("odd-file", f"{where!r} is not a regular file (a socket): "
                                              f"nothing was graded") from None
                raise Refused("unreadable", f"{where!r} could not be opened "
                                            f"({os.strerror(error.errno or 0)})") from None
            try:
                info = os.fstat(handle)
                self.check_owned(info, repr(where))
                if stat.S_ISDIR(info.st_mode):
                    if depth == 0 and name in (TIMESTAMP, SECRET):
                        raise Refused("odd-file", f"{where!r} is a folder where nbgrader "
                                                  f"submit writes a file: nothing was graded")
                    if depth + 1 > self.caps.depth:
                        raise Refused("too-deep", f"the submission nests folders more than "
                                                  f"{self.caps.depth} deep")
                    os.mkdir(dest / name, 0o755)
                    self.copy_folder(handle, dest / name, depth + 1, f"{where}/")
                elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    self._copy_file(handle, info.st_size, dest / name)
                else:
                    kind = "a hard link to another file" if stat.S_ISREG(info.st_mode) else \
                        "not a regular file (a FIFO, a socket or a device)"
                    raise Refused("odd-file", f"{where!r} is {kind}: nothing was graded")
                # Read after its copy: a write while it was copied makes the time later.
                self.ctimes.append(os.fstat(handle).st_ctime)
            finally:
                os.close(handle)

    def _copy_file(self, handle: int, size: int, dest: Path) -> None:
        if self.bytes + size > self.caps.total_bytes:
            raise Refused("too-large", f"the submission is larger than "
                                       f"{self.caps.total_bytes // MIB} MiB")
        with os.fdopen(os.dup(handle), "rb") as source, open(dest, "xb") as target:
            copied = 0
            while chunk := source.read(CHUNK):
                copied += len(chunk)
                self.bytes += len(chunk)
                if self.bytes > self.caps.total_bytes:  # it grew while being copied
                    raise Refused("too-large", f"the submission is larger than "
                                               f"{self.caps.total_bytes // MIB} MiB")
                target.write(chunk)
                self._check_time()
        os.chmod(dest, 0o644)

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise Refused("too-slow", f"the submission could not be copied in "
                                      f"{self.caps.seconds:g} s")


def replace_folder(temporary: Path, dest: Path) -> None:
    """Put a collected folder in place of dest (the student's previous submission)."""
    old = dest.parent / f".{dest.name}.replaced"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    temporary.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def read_secret(submission: Inbound) -> str | None:
    """The submission's secret, read as collect reads (no link, a small regular file of
    the submitter's), for a page released without a copy; None if there is none."""
    try:
        folder = os.open(submission.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                         | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        handle = os.open(SECRET, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != submission.uid:
            return None
        secret = file.read(256).decode(errors="replace").strip()
    return secret or None
