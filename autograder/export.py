"""`nbgrader export` through a plugin whose CSV a spreadsheet cannot run (see inert_csv):

    c.ExportApp.plugin_class = "autograder.export.SafeCsvExportPlugin"   # nbgrader_config.py
"""

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin

from .inert_csv import inert_rows

COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
           "email", "raw_score", "late_submission_penalty", "score", "max_score"]


class SafeCsvExportPlugin(CsvExportPlugin):
    """nbgrader's CSV export, with the same columns and rows, each cell inert and quoted.

    nbgrader's own plugin joins the values with commas as they are: a student's name that
    holds a comma shifts the columns after it, and an id that starts with `=` is a formula.
    """

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or "grades.csv"
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="") as table:
            table.write(inert_rows([COLUMNS, *self._rows(gradebook)]))

    def _rows(self, gradebook: Gradebook):
        """A row per assignment and student, as nbgrader's CsvExportPlugin makes it."""
        students, assignments = set(map(str, self.student)), set(map(str, self.assignment))
        for assignment in gradebook.assignments:
            if assignments and assignment.name not in assignments:
                continue
            for student in gradebook.students:
                if students and student.id not in students:
                    continue
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except MissingEntry:
                    timestamp, raw, penalty = "", 0.0, 0.0
                else:
                    timestamp, raw = submission.timestamp, submission.score
                    penalty = submission.late_submission_penalty
                yield [assignment.name, assignment.duedate, timestamp, student.id,
                       student.last_name, student.first_name, student.email, raw, penalty,
                       max(0.0, raw - penalty), assignment.max_score]
