"""What the feedback shows of a failing test cell: the message, never the cell's code;
verdicts that nbgrader scores, in lines nothing cuts; figures described in words."""

import subprocess
import sys
from pathlib import Path

import nbformat
import torch
from nbgrader.utils import determine_grade

from autograder.course import REPO
from autograder.engine.nbgrader_grading import show_verdicts
from autograder.feedback import (
    ClearTestTracebacks,
    RememberedHighlight,
    _highlighted,
    mathjax_loader,
)
from autograder.kit import figures
from autograder.kit.grading import PartResult
from autograder.kit.messages import LINE_WIDTH
from autograder.kit.notebook import WrongAnswer
from autograder.pages import _rendered_markdown, markdown2html, sanitize_html

VALIDATE_CUT = 87 - len("    ")  # nbgrader validate indents each line and cuts it at 87

MESSAGE = ("train_step fails on a hidden case (a batch of 6, a 4-7-2 network), learning rate "
           "0.3: the update of w1 is wrong (largest relative error 2). It has the opposite "
           "sign: check the sign of the error term or of the update.")


def test_a_wrong_answer_shows_its_whole_message_in_lines_that_fit():
    lines = WrongAnswer(MESSAGE)._render_traceback_()
    plain = [line.replace("\x1b[0;31m", "").replace("\x1b[0m", "") for line in lines]
    assert len(lines) > 1 and all(len(line) <= LINE_WIDTH <= VALIDATE_CUT for line in plain)
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
    code = "import sys, autograder.kit.notebook; print('nbconvert' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "False"


def graded_notebook(*parts: PartResult) -> nbformat.NotebookNode:
    """A notebook whose answer cell printed a fake pass, then a test cell per part."""
    answer = nbformat.v4.new_code_cell("check = lambda *a, **k: print('✔ correct')")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "answer"}
    answer.outputs = [nbformat.v4.new_output("stream", name="stdout", text="✔ correct\n")]
    cells = [answer]
    for part in parts:
        cell = nbformat.v4.new_code_cell(f'check("{part.part_id}", f)')
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": part.max_score,
                                     "grade_id": part.part_id}
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def test_verdicts_become_outputs_that_nbgrader_scores():
    curve = figures.loss_curves(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5]), "train")
    right = PartResult("forward", 2, 2, "forward is correct on 4 hidden cases.")
    wrong = PartResult("train", 0, 3, MESSAGE, "sign", (curve,))
    deleted = PartResult("train_step", 0, 2, "train_step fails.")
    notebook = graded_notebook(right, wrong)
    show_verdicts(notebook, [right, wrong, deleted])
    answer, *tests = notebook.cells
    assert answer.outputs == []  # nothing the student prints counts
    assert [determine_grade(cell)[0] for cell in tests] == [2, 0, 0]
    assert tests[2].metadata.nbgrader["grade_id"] == "train_step"  # restored at the end
    error, figure = tests[1].outputs
    assert error.ename == "WrongAnswer" and error.evalue == MESSAGE
    assert all(len(line) <= VALIDATE_CUT for line in error.traceback)
    assert "leaves the reference at epoch 2, above it" in figure.data["text/plain"]
    assert 'alt="train. A line chart' in figure.data["text/html"]


def test_an_error_map_says_where_the_tensor_is_wrong():
    expected = torch.ones(4, 3)
    row, column = expected.clone(), expected.clone()
    row[1] *= -1
    column[:, 2] = 0
    assert "every entry of row 1 (from 0) is wrong" in figures.alt_text(
        figures.error_map(row, expected, "train_step: where the update of w1 differs"))
    assert "every entry of column 2 (from 0) is wrong" in figures.alt_text(
        figures.error_map(column, expected, "backward: where grad_w2 differs"))


def test_the_feedback_loads_mathjax_from_this_machine():
    loader = mathjax_loader()
    on_disk = loader.split('"file://')[1].split('"')[0]
    assert Path(on_disk).is_file() and "static/jupyter_server_mathjax/MathJax.js" in loader
    assert (Path(on_disk).parent / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()
    assert (Path(on_disk).parent / "fonts" / "HTML-CSS" / "STIX-Web").is_dir()
    assert "cdnjs" not in loader


def test_remembered_cells_render_as_nbconvert_renders_them():
    """The feedback exporter remembers each cell's rendered markdown and highlighted code
    from one page to the next: what it gives, the first time and after, is what nbconvert's
    own filters give (markdown then sanitised), for every cell of every solution notebook."""
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.highlight import Highlight2HTML

    _rendered_markdown.cache_clear()
    _highlighted.cache_clear()
    nbconvert = HTMLExporter()
    remembered, plain = RememberedHighlight(pygments_lexer="ipython3"), \
        Highlight2HTML(pygments_lexer="ipython3")
    cells = [cell for path in sorted((REPO / "solutions").glob("*/*.ipynb"))
             for cell in nbformat.read(path, as_version=4).cells]
    for _ in range(2):
        for cell in cells:
            context = {"cell": cell, "resources": {"metadata": {"path": "some/where"}}}
            if cell.cell_type == "markdown":
                assert markdown2html(context, cell.source) == sanitize_html(
                    nbconvert.markdown2html(context, cell.source))
            elif cell.cell_type == "code":
                for metadata in (cell.metadata, {"magics_language": "bash"}):
                    assert remembered(cell.source, None, metadata) == plain(
                        cell.source, None, metadata)
    assert _rendered_markdown.cache_info().hits >= sum(c.cell_type == "markdown" for c in cells)
    assert _highlighted.cache_info().hits >= sum(c.cell_type == "code" for c in cells)
