"""`make demo`: a simulated class goes through the whole nbgrader cycle.

release_assignment -> students fetch_assignment, fill in and submit -> collect -> autograde
(in the sandbox, as the course's nbgrader_config.py says) -> generate_feedback -> export.
Every step is nbgrader's own: its commands, and for the students its exchange as
the Assignment List extension runs it. Then the engine grades the class again for the class
reports (HTML and CSV). The demo ends with a
grade table (student x part) and the path of every student's HTML feedback.
"""

from dataclasses import dataclass
from pathlib import Path

import nbformat

from .course import ALL, REPO, Course
from .engine.nbgrader_grading import METADATA
from .submissions import Edit, answered, student_answers


@dataclass(frozen=True)
class Student:
    """A simulated student: what they got right, what they changed, what they broke."""

    id: str
    story: str
    solved: frozenset[str] | None = None  # answer cells they filled in; None means all
    edits: tuple[Edit, ...] = ()  # changes to the solution code: mistakes, mostly
    damage: str | None = None  # INVALID_JSON or DELETED_TEST_CELL
    answer_key: bool = False  # submits the notebook from solutions/ as it is


INVALID_JSON = "invalid JSON"
DELETED_TEST_CELL = "deleted test cell"

ROSTER: dict[str, list[Student]] = {
    "nn_from_scratch": [
        Student("ada", "perfect"),
        Student("ben", "partly right: parts 1 to 3 only",
                solved=frozenset({"sigmoid_activation_answer", "forward_answer",
                                  "sigmoid_delta_answer"})),
        Student("cho", "sign error in the updates",
                edits=(Edit("train_step_answer", "(y - output) * sigmoid_delta",
                             "(output - y) * sigmoid_delta"),)),
        Student("dev", "the tutorial's d_hidn.sum() for b1",
                edits=(Edit("train_step_answer", "d_hidn.sum(0, keepdim=True)", "d_hidn.sum()"),)),
        Student("eve", "blank: submitted the release untouched", solved=frozenset()),
        Student("fay", "perfect, but the notebook file is broken", damage=INVALID_JSON),
        Student("gus", "perfect, but deleted a test cell", damage=DELETED_TEST_CELL),
        Student("hal", "perfect, and their code raises a UserWarning",
                edits=(Edit("sigmoid_activation_answer", "    return 1 /",
                            "    import warnings\n"
                            "    warnings.warn('exp may overflow', UserWarning, stacklevel=2)\n"
                            "    return 1 /"),)),
        Student("key", "the answer key from solutions/", answer_key=True),
    ],
    "single_neuron": [
        Student("ada", "perfect"),
        Student("ben", "partly right: parts 1 to 3 only",
                solved=frozenset({"linear_answer", "relu_backprop_answer", "dead_relu_answer"})),
        Student("cho", "forgot optimizer.zero_grad(): gradients pile up",
                edits=(Edit("linear_answer", "        optimizer.zero_grad()\n", ""),)),
        Student("eve", "blank: submitted the release untouched", solved=frozenset()),
        Student("key", "the answer key from solutions/", answer_key=True),
    ],
    "autograd_basics": [
        Student("ada", "perfect"),
        Student("ben", "partly right: parts 1 to 3 only",
                solved=frozenset({"requires_grad_answer", "grad_fn_answer", "losses_answer"})),
        Student("cho", "rebinds the parameters in the manual step (p = p - ...)",
                edits=(Edit("manual_step_answer", "p -= learning_rate * p.grad",
                            "p = p - learning_rate * p.grad"),)),
        Student("dev", "sums the squared errors in sgd_step (nn.MSELoss averages them)",
                edits=(Edit("sgd_step_answer", "nn.MSELoss()",
                            "nn.MSELoss(reduction='sum')"),)),
        Student("eve", "blank: submitted the release untouched", solved=frozenset()),
        Student("key", "the answer key from solutions/", answer_key=True),
    ],
    "two_layer_net": [
        Student("ada", "perfect"),
        Student("ben", "partly right: the two ReLU gradients only",
                solved=frozenset({"relu_grad_loop_answer", "relu_grad_vectorized_answer"})),
        Student("cho", "the tutorial's slope 1 at h == 0 (h >= 0)",
                edits=(Edit("relu_grad_vectorized_answer", "(h > 0)", "(h >= 0)"),)),
        Student("eve", "blank: submitted the release untouched", solved=frozenset()),
        Student("key", "the answer key from solutions/", answer_key=True),
    ],
    "autograd_from_scratch": [
        Student("ada", "perfect"),
        Student("ben", "partly right: the Value class and its backward pass only",
                solved=frozenset({"value_answer", "backward_answer"})),
        Student("cho", "overwrites gradients in __mul__ (self.grad = ...)",
                edits=(Edit("value_answer", "self.grad += other.data * result.grad\n"
                                            "            other.grad += self.data * result.grad",
                            "self.grad = other.data * result.grad\n"
                            "            other.grad = self.data * result.grad"),)),
        Student("eve", "blank: submitted the release untouched", solved=frozenset()),
        Student("key", "the answer key from solutions/", answer_key=True),
    ],
}


def write_submission(path: Path, student: Student, assignment: str) -> None:
    """Fill in the fetched notebook at path the way this student would."""
    if student.answer_key:
        path.write_bytes((REPO / "solutions" / assignment / path.name).read_bytes())
        return
    notebook = answered(path, student_answers(assignment, student.solved, student.edits))
    if student.damage == DELETED_TEST_CELL:
        first_test = next(i for i, cell in enumerate(notebook.cells)
                          if cell.metadata.get("nbgrader", {}).get("grade"))
        del notebook.cells[first_test]
    text = nbformat.writes(notebook)
    if student.damage == INVALID_JSON:
        text = text[: len(text) // 2]  # an editor crashed mid-save
    path.write_text(text)


def grade_rows(course: Course, assignment: str, students: list[Student]) -> list[dict]:
    """One row per student: their score per part, total, and a note. Written answers (the
    manually graded cells) are apart in "written": (the score a grader gave or None, most)."""
    from nbgrader.api import Gradebook, MissingEntry  # slow import, only needed here

    from .engine.course_config import load_course

    settings = load_course(course.root)
    rows = []
    with Gradebook(settings.db_url, settings.course_id) as gradebook:
        for student in students:
            row = {"student": student.id, "story": student.story, "scores": {}, "written": {},
                   "note": ""}
            autograded = course.notebook_of("autograded", student.id, assignment)
            try:
                graded = gradebook.find_submission_notebook(assignment, assignment, student.id)
            except MissingEntry:
                graded = None
            if graded is None or not autograded.exists():
                row["note"] = "nbgrader could not grade this notebook."
            else:
                row["scores"] = {g.name: (g.score, g.max_score) for g in graded.grades
                                 if g.cell.cell_type == "code"}
                row["written"] = {g.name: (g.manual_score, g.max_score) for g in graded.grades
                                  if g.cell.cell_type == "markdown"}
                row["note"] = nbformat.read(autograded, 4).metadata[METADATA].get("note", "")
                if student.damage == DELETED_TEST_CELL:
                    row["note"] = "a deleted test cell was restored by nbgrader"
            rows.append(row)
    return rows


def format_table(assignment: str, rows: list[dict], parts: list[str]) -> str:
    """A plain-text grade table, one line per student and one column per part; a written
    answer no one has graded yet shows "?", and the total counts the graded points."""
    header = ["student", *parts, "total", "note"]
    lines = []
    for row in rows:
        scores = {**row["scores"], **row["written"]}
        cells = [_score(*scores[p]) if p in scores else "-" for p in parts]
        earned = sum(score or 0 for score, _ in scores.values())
        possible = sum(maximum for _, maximum in scores.values())
        total = f"{earned:g}/{possible:g}" if scores else "0"
        lines.append([row["student"], *cells, total, row["note"] or row["story"]])
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header) - 1)]

    def render(line):
        padded = [str(value).ljust(width) for value, width in zip(line, widths, strict=False)]
        return "  ".join([*padded, line[-1]])
    return "\n".join([f"== {assignment}", render(header), *map(render, lines)])


def run_demo(workdir: Path) -> list[dict]:
    """Run the whole cycle for every assignment in ROSTER; print and return the grade rows."""
    from .engine.errors import GraderError
    from .engine.isolation import describe_isolation

    try:
        print(describe_isolation(), flush=True)
    except GraderError as error:  # as root without bubblewrap: nothing could be graded
        raise SystemExit(f"demo: {error}") from None
    course = Course.scaffold(workdir, list(ROSTER))
    class_lists = {assignment: [s.id for s in students] for assignment, students in ROSTER.items()}
    submissions = sum(len(students) for students in class_lists.values())
    steps = iter(range(1, 9))

    def step(text: str) -> None:
        print(f"[{next(steps)}/8] {text}", flush=True)

    step(f"nbgrader generate_assignment: {len(ROSTER)} assignments")
    course.run("generate_assignment", ALL, "--force")
    step(f"nbgrader release_assignment: {len(ROSTER)} assignments")
    for assignment in ROSTER:
        course.run("release_assignment", assignment, "--force")
    step(f"{len({s for students in class_lists.values() for s in students})} students enrol, "
         f"fetch, fill in and submit {submissions} notebooks")
    course.fetch(class_lists)
    for assignment, students in ROSTER.items():
        for student in students:
            write_submission(course.student_home(student.id) / assignment / f"{assignment}.ipynb",
                             student, assignment)
    course.submit(class_lists)
    step(f"nbgrader collect: {submissions} submissions")
    for assignment in ROSTER:
        course.run("collect", assignment)
    step(f"nbgrader autograde: {submissions} notebooks, each in the sandbox (isolation above)")
    course.run("autograde", ALL, "--force")  # in the sandbox; an unreadable notebook gets 0
    step(f"nbgrader generate_feedback: {submissions} pages")
    course.run("generate_feedback", ALL, "--force")
    all_rows, tables = [], []
    for assignment, students in ROSTER.items():
        rows = grade_rows(course, assignment, students)
        tables.append(format_table(assignment, rows, _part_ids(course, assignment)))
        all_rows += [{**row, "assignment": assignment} for row in rows]
    grades_csv = workdir / "grades.csv"
    step("nbgrader export, and the class reports (the engine grades the class again)")
    course.run("export", f"--to={grades_csv}")
    print_class_reports(course, list(ROSTER), workdir)
    print("\nGrades (nbgrader autograde, in the sandbox: isolation as the first line says):")
    print("\n\n".join(tables))
    print(f"\nGrades exported to {grades_csv}")
    print("Feedback for each student:")
    for row in all_rows:
        feedback = course.notebook_of("feedback", row["student"], row["assignment"])
        print(f"  {row['student']:5} {feedback}")
    return all_rows


def print_class_reports(course: Course, assignments: list[str], workdir: Path) -> None:
    """Grade the class again with the sandboxed engine, into workdir/engine-results (the
    course's gradebook and results stay nbgrader's), and write and summarise each
    assignment's class report in workdir/reports."""
    from .engine import grade_assignment
    from .report import ClassReport, read_written, write_report

    print("Class reports (the sandboxed engine's diagnoses):")
    for assignment in assignments:
        results = grade_assignment(course.root, assignment, gradebook=False,
                                   results=workdir / "engine-results")
        report = ClassReport(assignment, results, written=read_written(course.root, assignment))
        page, table = write_report(report, workdir / "reports")
        print(f"{report.summary()}\n  report: {page}\n  csv:    {table}")


def _score(score: float | None, most: float) -> str:
    return f"{'?' if score is None else f'{score:g}'}/{most:g}"


def _part_ids(course: Course, assignment: str) -> list[str]:
    release = nbformat.read(course.root / "assignments" / assignment / f"{assignment}.ipynb", 4)
    return [c.metadata["nbgrader"]["grade_id"] for c in release.cells
            if c.metadata.get("nbgrader", {}).get("grade")]
