"""nbgrader settings for the backprop-lab course. The repository root is the course root.

A course on JupyterHub keeps this file and sets two paths for its own machines, e.g. in
/etc/jupyter/nbgrader_config.py:

    c.CourseDirectory.root = "/home/instructor/backprop-lab"   # this repository
    c.Exchange.root = "/srv/nbgrader/exchange"                  # shared, world-writable

`make demo` and the tests set both to temporary folders instead.
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from autograder.feedback import ClearTestTracebacks

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.solution_directory = "solutions"

# The test cells import the `autograder` package; the kernel must be this environment's.
c.Execute.timeout = 120

# Restore test cells that a student deleted, not only those they edited.
c.OverwriteCells.add_missing_cells = True

# A test cell that writes anything to stderr scores 0 even when its checks pass; a PyTorch
# or Python warning in a student's code must not cost points.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning:"

# Feedback shows the student's notebook with the results, never the hidden tests' code:
# neither in a test cell's source nor quoted by a traceback in its output.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, ClearTestTracebacks,
                                    CSSHTMLHeaderPreprocessor]

# The answer key is the source notebook without its outputs: not executed, so that it is
# byte-for-byte reproducible (tests execute it and check that it scores full marks).
c.GenerateSolution.preprocessors = ["nbgrader.preprocessors.IncludeHeaderFooter",
                                    "nbgrader.preprocessors.LockCells",
                                    "nbgrader.preprocessors.ClearOutput",
                                    "nbgrader.preprocessors.ClearMarkScheme"]
