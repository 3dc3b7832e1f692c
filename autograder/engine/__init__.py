"""The grading engine: student code in a sandbox, verdicts in the trusted process.

    isolation.py   `isolate(workdir, limits)`: confine the current process (rlimits,
                   network and mount namespaces, hidden paths, scrubbed env, own uid)
    child.py       the sandboxed child, the only code that runs student code
    forkserver.py  a warm server that imported torch once and forks the children
    launch.py      how a child starts: warm (from the fork server) or cold
    protocol.py    the files between the two sides: JSON and safetensors only
    errors.py      whose fault a failure is: GraderError, Tampered (imports nothing)
    release_metadata.py  a submission's nbgrader metadata rebuilt from the release
    sandbox.py     the trusted side of one run: launch, time limits, read back
    runner.py      `grade_notebook`, `grade_assignment`: seeds, cases, verdicts, resuming
    results.py     `SubmissionResult` and its writers: JSON, Gradescope, nbgrader's gradebook
    cluster.py     grading on a Dask cluster

The names below are imported on first use, so that `engine.launch` can start the fork
server before this process spends its first seconds importing torch.
"""

import importlib

_EXPORTS = {"DEFAULT_LIMITS": "isolation", "Limits": "isolation", "isolate": "isolation",
            "SubmissionResult": "results", "grade_assignment": "runner",
            "grade_notebook": "runner"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
