"""The engine's errors: whose fault a failure is. Imports nothing, so every module of the
engine (the sandbox's side included) can raise them without importing another."""


class GraderError(RuntimeError):
    """The grader failed, not the student (the sandbox could not start or prove its
    confinement, the fork server died, a disk filled up): no grade may be recorded."""


class Tampered(Exception):
    """The child's files are not what an honest child writes; the text says how."""
