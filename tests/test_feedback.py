"""What the feedback shows of a failing test cell: the message, never the cell's code."""

import subprocess
import sys

import nbformat

from autograder.feedback import ClearTestTracebacks
from autograder.messages import LINE_WIDTH
from autograder.notebook import WrongAnswer

MESSAGE = ("train_step fails on a hidden case (a batch of 6, a 4-7-2 network), learning rate "
           "0.3: the update of w1 is wrong (largest relative error 2). It has the opposite "
           "sign: check the sign of the error term or of the update.")


def test_a_wrong_answer_shows_its_whole_message_in_lines_that_fit():
    lines = WrongAnswer(MESSAGE)._render_traceback_()
    plain = [line.replace("\x1b[0;31m", "").replace("\x1b[0m", "") for line in lines]
    assert len(lines) > 1 and all(len(line) <= LINE_WIDTH for line in plain)
    assert " ".join(plain) == f"✘ WrongAnswer: {MESSAGE}"


def error_cell(grade: bool) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell('check("train", train)\ncheck("train", train, hidden=True)')
    cell.metadata["nbgrader"] = {"grade": grade, "solution": False, "grade_id": "train"}
    cell.outputs = [nbformat.v4.new_output(
        "error", ename="NameError", evalue="name 'check' is not defined",
        traceback=["Cell In[3], line 2", "----> 2 check(\"train\", train, hidden=True)"])]
    return cell


def test_feedback_cuts_a_test_cells_traceback_to_its_message():
    notebook = nbformat.v4.new_notebook(cells=[error_cell(grade=True), error_cell(grade=False)])
    cleared, _ = ClearTestTracebacks().preprocess(notebook, {})
    test_cell, other_cell = cleared.cells
    assert test_cell.outputs[0].traceback == [
        "\x1b[0;31mNameError\x1b[0m: name 'check' is not defined"]
    assert "hidden=True" in other_cell.outputs[0].traceback[1]  # a student's own cell keeps it


def test_the_checks_do_not_import_the_feedback_machinery():
    """Every kernel that runs a notebook imports the checks: nbconvert would cost it 3.7 s."""
    code = "import sys, autograder.notebook; print('nbconvert' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "False"
