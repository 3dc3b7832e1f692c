"""nbgrader settings for the backprop-lab course. The repository root is the course root.

A course keeps this file as it is and puts its own settings (course_id, db_url, the
exchange, a late penalty) in nbgrader_config_local.py beside it, outside git: see the
README's "Run a course". `make demo` and the tests use temporary courses instead.
"""


c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.solution_directory = "solutions"

# Each release (and answer key) ships its visible checks' data next to the notebook, written
# by the grader once nbgrader has generated it: the student kit holds no reference.
def _after_generate_assignment(**kwargs):
    from autograder.visible_data import after_generate_assignment

    after_generate_assignment(**kwargs)


c.GenerateAssignment.post_convert_hook = _after_generate_assignment
c.GenerateSolution.post_convert_hook = _after_generate_assignment

# Grading runs the student's code only in the autograder's sandbox: `nbgrader autograde`,
# the formgrader's Autograde button and NbGraderAPI.autograde all run this pipeline, with
# the engine (SandboxedExecute) where nbgrader would execute the notebook in the student's
# own kernel. nbgrader's own steps around it are unchanged. Named by path, so that only
# autograde imports torch.
# Only the roster's students are graded (`nbgrader db student add` or `import`): a folder in
# submitted/ under any other name, which a student may have written into the exchange, never
# becomes a student (whose id would reach the formgrader's pages and the exports).
c.Autograde.create_student = False
c.Autograde.exporter_class = "autograder.engine.nbgrader_grading.SubmissionExporter"
c.Autograde.autograde_preprocessors = [
    "autograder.engine.nbgrader_grading.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# `nbgrader validate` (and the Validate button) runs the student's notebook in their own
# kernel, checks included; the test cells import the `autograder` package.
c.Execute.timeout = 120

# Restore test cells that a student deleted, not only those they edited.
c.OverwriteCells.add_missing_cells = True

# A test cell that writes anything to stderr scores 0 even when its checks pass; a PyTorch
# or Python warning in a student's code must not cost points.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning:"

# Feedback shows the student's notebook with the results, never the hidden tests' code:
# neither in a test cell's source nor quoted by a traceback in its output.
c.GenerateFeedback.preprocessors = ["nbgrader.preprocessors.GetGrades",
                                    "nbgrader.preprocessors.ClearHiddenTests",
                                    "autograder.feedback.ClearTestTracebacks",
                                    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
# Its maths renders offline: MathJax from this machine, not a CDN.
c.GenerateFeedback.exporter_class = "autograder.feedback.OfflineFeedbackExporter"

# Every notebook page (nbgrader's feedback, the grading service's, the formgrader's
# submission page) shows what a student wrote or submitted as inert HTML: markdown and
# text/html outputs sanitised, scripts and other output types dropped, the formgrader's
# strings escaped (autograder/pages.py). The feedback page also carries a
# Content-Security-Policy (autograder/feedback.py).
c.HTMLExporter.preprocessors = ["autograder.pages.SanitizeStudentContent"]
c.HTMLExporter.filters = {"markdown2html": "autograder.pages.markdown2html"}
# `nbgrader export` writes no cell that a spreadsheet would run as a formula.
c.ExportApp.plugin_class = "autograder.export.SafeCsvExportPlugin"

# The answer key is the source notebook without its outputs: not executed, so that it is
# byte-for-byte reproducible (tests execute it and check that it scores full marks).
c.GenerateSolution.preprocessors = ["nbgrader.preprocessors.IncludeHeaderFooter",
                                    "nbgrader.preprocessors.LockCells",
                                    "nbgrader.preprocessors.ClearOutput",
                                    "nbgrader.preprocessors.ClearMarkScheme"]

# A deployment's own settings (course_id, db_url, the exchange, late penalties) go in
# nbgrader_config_local.py in the course root, outside git; they win over the above.
load_subconfig("nbgrader_config_local.py")  # noqa: F821 -- nbgrader's; no file, no settings
