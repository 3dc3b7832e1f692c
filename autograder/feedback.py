"""What nbgrader's `generate_feedback` runs on a graded notebook before rendering it.

nbgrader's ClearHiddenTests removes the hidden tests from a test cell's source, but the
cell's error output may still quote them: a Python traceback shows the lines around the
failing call (nbgrader issue #917). The checks' own WrongAnswer shows its message alone
(see notebook.WrongAnswer); any other error in a test cell (a NameError when the student
deleted the setup cell, say) is cut down here to its type and message.
"""

from nbconvert.preprocessors import Preprocessor

from .messages import error_lines


class ClearTestTracebacks(Preprocessor):
    """Replace the traceback of every error in an autograder test cell by its message."""

    def preprocess_cell(self, cell, resources, index):
        metadata = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and metadata.get("grade") and not metadata.get("solution"):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = error_lines(output.ename, output.evalue)
        return cell, resources
