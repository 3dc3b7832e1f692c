"""The grading engine: student code in a sandbox, verdicts in the trusted process.

    isolation.py  `isolate(workdir, limits)`: confine the current process (rlimits,
                  network and mount namespaces, hidden paths, scrubbed env, own uid)
    child.py      the sandboxed child, the only code that runs student code
    protocol.py   the files between the two sides: JSON and safetensors only
    sandbox.py    the trusted side of one run: launch, time limits, read back
    runner.py     `grade_notebook`, `grade_assignment`: seeds, cases, verdicts, resuming
    results.py    `SubmissionResult` and its writers: JSON, Gradescope, nbgrader's gradebook
"""

from .isolation import DEFAULT_LIMITS, Limits, isolate
from .results import SubmissionResult
from .runner import grade_assignment, grade_notebook

__all__ = ["DEFAULT_LIMITS", "Limits", "SubmissionResult", "grade_assignment", "grade_notebook",
           "isolate"]
