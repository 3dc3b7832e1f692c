"""The class report: one graded assignment as an HTML page with plots, and a CSV.

    python -m autograder report nn_from_scratch --course COURSE

It reads the engine's results (COURSE/results/<assignment>/<student>.json, written by
`grade-assignment`) and shows the instructor the score distribution, the pass rate of each
part, the most common diagnosed mistakes, and the students who need help. The CSV has one
row per student: the score of each part and the mistake diagnosed there. Written answers are
graded by a person in the formgrader, not by the engine: the report reads their points from
the course's gradebook, given or pending, and shows them beside the automatic score.
"""

import html
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .engine.protocol import write_atomically
from .engine.results import SubmissionResult, read_json
from .inert_csv import inert_rows
from .kit import figures
from .kit.diagnosis import MISTAKES

BINS = 10  # the score distribution in tenths of the maximum


class NoResults(RuntimeError):
    """There is nothing graded to report on; the message says where it looked."""


def read_results(folder: Path) -> list[SubmissionResult]:
    """The results the engine wrote in folder, one per student, sorted by student (the
    Gradescope files are in its gradescope/ folder)."""
    paths = sorted(folder.glob("*.json"))
    results = [result for result in map(read_json, paths) if result is not None]
    if not results:
        raise NoResults(f"no graded results in {folder}: grade the assignment first "
                        f"(python -m autograder grade-assignment ASSIGNMENT --course COURSE).")
    return sorted(results, key=lambda result: result.student or "")


Written = dict[str, dict[str, tuple[float | None, float]]]  # student -> cell -> (score, max)


def read_written(course_root: Path, assignment: str) -> Written:
    """The written answers' points in the course's gradebook: for each student, each
    manually graded cell's score (None until a person gives it) and its maximum."""
    from nbgrader.api import Gradebook
    from sqlalchemy.engine import make_url

    from .engine.course_config import load_course

    course = load_course(course_root)
    written: Written = {}
    url = make_url(course.db_url)
    if url.drivername.startswith("sqlite") and not Path(url.database or "").is_file():
        return written  # no gradebook: opening one would create it
    with Gradebook(course.db_url, course.course_id) as book:
        for submission in book.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.cell.cell_type == "markdown":
                        written.setdefault(submission.student.id, {})[grade.name] = (
                            grade.manual_score, grade.max_score)
    return written


@dataclass
class ClassReport:
    """What the report says about one assignment's results (and its written answers)."""

    assignment: str
    results: list[SubmissionResult]
    help_below: float = 0.5  # a student below this share of the points needs help
    written: Written = field(default_factory=dict)

    def written_summary(self) -> str:
        """The written answers' points in one sentence: how many given, how many pending."""
        grades = [grade for result in self.results
                  for grade in self.written.get(result.student, {}).values()]
        if not grades:
            return ""
        pending = sum(score is None for score, _ in grades)
        points = sum(most for _, most in grades) / len(self.results)
        return (f"Written answers, graded by hand ({points:g} point(s) a student, not in the "
                f"automatic score above): {len(grades) - pending} graded, {pending} pending.")

    @property
    def max_score(self) -> float:
        return max(result.max_score for result in self.results)

    def part_ids(self) -> list[str]:
        return [part.part_id for part in self.results[0].parts]

    def distribution(self) -> list[tuple[str, int]]:
        """(range of scores, how many students) for each tenth of the maximum."""
        counts = Counter(min(BINS - 1, int(BINS * result.score / self.max_score))
                         for result in self.results)
        step = self.max_score / BINS
        return [(f"{i * step:g}–{(i + 1) * step:g}" if i < BINS - 1
                 else f"{i * step:g}–{self.max_score:g}", counts[i]) for i in range(BINS)]

    def pass_rates(self) -> list[tuple[str, int]]:
        """(part, how many students passed it), in notebook order."""
        passed = Counter(part.part_id for result in self.results for part in result.parts
                         if part.passed)
        return [(part_id, passed[part_id]) for part_id in self.part_ids()]

    def mistakes(self) -> list[tuple[str, int, list[str]]]:
        """(mistake, how many students made it, the parts where): the mistakes in the maths
        first, then code that did not run or could not be read, each most common first.

        A student counts once per mistake, however many parts it cost them."""
        students, where = defaultdict(set), defaultdict(set)
        for result in self.results:
            for part in result.parts:
                if part.mistake and not part.passed:
                    students[part.mistake].add(result.student)
                    where[part.mistake].add(part.part_id)
        order = self.part_ids()
        return sorted(((name, len(students[name]), sorted(where[name], key=order.index))
                       for name in students),
                      key=lambda row: (not MISTAKES[row[0]].maths, -row[1], row[0]))

    def needing_help(self) -> list[SubmissionResult]:
        """The students below help_below of the points, or not graded, lowest first."""
        return sorted((result for result in self.results
                       if result.note or result.score < self.help_below * self.max_score),
                      key=lambda result: (result.score, result.student or ""))

    def summary(self) -> str:
        """The report in a few lines of text, for the terminal."""
        scores = [result.score for result in self.results]
        lines = [f"{self.assignment}: {len(scores)} students, mean {statistics.mean(scores):.1f}"
                 f"/{self.max_score:g}, median {statistics.median(scores):g}",
                 "passed: " + ", ".join(f"{part} {count}/{len(scores)}"
                                        for part, count in self.pass_rates())]
        common = self.mistakes()[:5]
        if common:
            lines.append("most common mistakes: " + ", ".join(
                f"{MISTAKES[name].title} ({count})" for name, count, _ in common))
        if self.written_summary():
            lines.append(self.written_summary())
        lines.append(f"need help (below {self.help_below:.0%} of the points): " + (", ".join(
            f"{r.student} {r.score:g}/{r.max_score:g}" for r in self.needing_help()) or "none"))
        return "\n".join(lines)

    def csv(self) -> str:
        """One row per student: totals, then each part's score and diagnosed mistake; no
        cell is a formula to a spreadsheet (a student id that starts with "=", say)."""
        parts = self.part_ids()
        cells = sorted({cell for grades in self.written.values() for cell in grades})
        rows = [["student", "score", "max_score", "needs_help", "note",
                         *(f"{part}{column}" for part in parts
                           for column in (" score", " mistake")),
                 *(f"{cell} (by hand)" for cell in cells)]]
        helped = {result.student for result in self.needing_help()}
        for result in self.results:
            by_id = {part.part_id: part for part in result.parts}
            rows.append([result.student, f"{result.score:g}", f"{result.max_score:g}",
                             "yes" if result.student in helped else "no", result.note,
                             *(value for part in parts for value in (
                                 f"{by_id[part].score:g}" if part in by_id else "",
                                 by_id[part].mistake or "" if part in by_id else "")),
                             *(_by_hand(self.written.get(result.student, {}).get(cell))
                               for cell in cells)])
        return inert_rows(rows)

    def html(self) -> str:
        """A self-contained page: the plots (SVG) and the tables."""
        n = len(self.results)
        distribution = self.distribution()
        rates = self.pass_rates()
        mistakes = self.mistakes()
        plots = [
            figures.bars([label for label, _ in distribution], [c for _, c in distribution],
                         "Score distribution", max(c for _, c in distribution),
                         [str(c) for _, c in distribution], f"students per range of points, "
                                                            f"of {n}"),
            figures.bars([part for part, _ in rates], [c for _, c in rates],
                         "Pass rate of each part", n, [f"{c / n:.0%}" for _, c in rates],
                         "the share of students with full marks on the part"),
        ]
        if mistakes:
            plots.append(figures.bars(
                [MISTAKES[name].title for name, _, _ in mistakes[:10]],
                [count for _, count, _ in mistakes[:10]], "Most common mistakes",
                max(count for _, count, _ in mistakes), [str(c) for _, c, _ in mistakes[:10]],
                "students whose result showed it", colour=figures.STUDENT))
        mistake_rows = "".join(
            f"<tr><td>{_e(MISTAKES[name].title)}</td><td><code>{_e(name)}</code></td>"
            f"<td>{'the maths' if MISTAKES[name].maths else 'the code'}</td>"
            f"<td>{count}</td><td>{_e(', '.join(parts))}</td></tr>"
            for name, count, parts in mistakes) or "<tr><td colspan=5>none</td></tr>"
        help_rows = "".join(
            f"<tr><td>{_e(r.student)}</td><td>{r.score:g}/{r.max_score:g}</td>"
            f"<td>{_e(r.note or _failed_parts(r))}</td></tr>"
            for r in self.needing_help()) or "<tr><td colspan=3>none</td></tr>"
        scores = [result.score for result in self.results]
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(self.assignment)}: class report</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#343a40}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #dee2e6;padding:4px 8px;
text-align:left}}th{{background:#f1f3f5}}.plots svg{{margin:0 1em 1em 0;vertical-align:top}}
</style></head>
<body><h1>{_e(self.assignment)}: class report</h1>
<p>{n} students; mean {statistics.mean(scores):.1f} of {self.max_score:g} points, median
{statistics.median(scores):g}. Every verdict compares a student's result with a reference
computed by torch.autograd on fresh hidden inputs.</p>
<p>{_e(self.written_summary())}</p>
<div class="plots">{"".join(plots)}</div>
<h2>Most common mistakes</h2>
<table><tr><th>mistake</th><th>name</th><th>in</th><th>students</th><th>parts</th></tr>
{mistake_rows}
</table>
<h2>Students who need help</h2>
<p>Below {self.help_below:.0%} of the points, or not graded.</p>
<table><tr><th>student</th><th>score</th><th>what went wrong</th></tr>{help_rows}</table>
</body></html>
"""


def _by_hand(grade: tuple[float | None, float] | None) -> str:
    if grade is None:
        return ""
    score, most = grade
    return f"pending/{most:g}" if score is None else f"{score:g}/{most:g}"


def _failed_parts(result: SubmissionResult) -> str:
    return "; ".join(f"{part.part_id}: {MISTAKES[part.mistake].title}" if part.mistake
                     else f"{part.part_id}: wrong" for part in result.parts if not part.passed)


def _e(text: str | None) -> str:
    return html.escape(text or "")


def write_report(report: ClassReport, folder: Path) -> tuple[Path, Path]:
    """Write <assignment>.html and <assignment>.csv into folder; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    page, table = folder / f"{report.assignment}.html", folder / f"{report.assignment}.csv"
    write_atomically(page, report.html().encode())
    write_atomically(table, report.csv().encode())
    return page, table
