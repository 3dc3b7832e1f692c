"""Leases on sandbox uids: no two live sandboxes on a machine ever share a uid.

Each sandboxed child runs as a uid of its own, so that it cannot signal, trace or read the
files of any other. A uid is leased by holding an exclusive `flock` on a file named after
it in LEASES (machine-wide, so two gradings at once never pick the same uid), and only when
no process of that uid is alive. The lease is held until the child has been reaped; the
kernel drops it if the grader dies, and the child, pid 1 of its own pid namespace, dies
with the grader too.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LEASES = Path("/run/backprop-lab/uid-leases")
FIRST_UID = 1_500_000_000
COUNT = 1 << 16


class NoUidFree(RuntimeError):
    """Every sandbox uid is leased or has live processes."""


@contextlib.contextmanager
def leased_uid() -> Iterator[int]:
    """A uid no other sandbox holds and no process runs as, held for the block."""
    LEASES.mkdir(parents=True, exist_ok=True, mode=0o700)
    for uid in range(FIRST_UID, FIRST_UID + COUNT):
        handle = os.open(LEASES / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        try:
            if not has_processes(uid):
                yield uid
                return
        finally:
            os.close(handle)  # releases the lock
    raise NoUidFree(f"all {COUNT} sandbox uids are in use")


def has_processes(uid: int) -> bool:
    """Whether any process on this machine runs as uid."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_uid == uid:
                    return True
    return False
