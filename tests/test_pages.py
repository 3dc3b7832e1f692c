"""Student-controlled text in the pages that staff and students open, in headless Chromium:
the feedback page from `nbgrader generate_feedback`, the formgrader's submission page from a
real `jupyter server`, and the class report. Each payload, if it ran, would add its name to
`top.PWNED` in the page, or ask a loopback server, which counts what it is asked for, for
its name; none may, and our own content (verdicts, figures, maths) must still show. And a
student id or name that is a spreadsheet formula comes out inert in the report's CSV and in
`nbgrader export`."""

import csv
import http.server
import importlib.util
import io
import json
import re
import shutil
import threading
import time
from urllib.parse import quote

import nbformat
import pytest

from autograder.course import REPO
from autograder.demo import Student, write_submission
from autograder.engine.results import SubmissionResult
from autograder.kit.grading import PartResult
from autograder.report import ClassReport, write_report
from autograder.submissions import Edit

pytestmark = pytest.mark.slow

ASSIGNMENT = "single_neuron"
# The student forgot optimizer.zero_grad() (part linear fails with a figure, the other parts
# pass), chose an id that is HTML, and wrote HTML everywhere a student can.
HOSTILE = Student('mal"><img src=x onerror="(top.PWNED=top.PWNED||[]).push(\'student-id\')">',
                  "forgot zero_grad, and writes HTML",
                  edits=(Edit("linear_answer", "        optimizer.zero_grad()\n", ""),))
# Students on the roster whose id or names are formulas (nbgrader export writes them all).
FORMULAS = ['=HYPERLINK("http://127.0.0.1:9/x","click")', " +1+1", "@SUM(1,1)", "-2+3",
            "\t=1+1", "\r=1+1"]
LIVE = re.compile(r"[\t\r]|\s*[=+\-@]")  # a cell a spreadsheet would read as a formula
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def flag(name: str) -> str:
    return f"(top.PWNED=top.PWNED||[]).push('{name}')"


def markdown_payloads(loopback: str) -> list[str]:
    """HTML (and markdown) a student can write in a markdown cell; each sets its flag or
    asks the loopback server for its name if it runs. The tag soup that can swallow what
    follows it comes last."""
    return [
        f"<script>{flag('script')}</script>",
        f'<img src="missing.png" onerror="{flag("img-onerror")}">',
        f'<svg onload="{flag("svg-onload")}"><circle r="5"/></svg>',
        f'<body onload="{flag("body-onload")}">',
        f'<input autofocus onfocus="{flag("autofocus")}">',
        f'<details open ontoggle="{flag("details")}"><summary>more</summary></details>',
        f'<a href="javascript:void({flag("javascript-link")})">a link</a>',
        f'<a href="jav&#x09;ascript:void({flag("entity-link")})">an encoded link</a>',
        f"[a markdown link](javascript:void({flag('markdown-link')}))",
        f'<iframe srcdoc="<script>{flag("iframe-srcdoc")}</script>"></iframe>',
        f'<object data="{loopback}/object"></object><embed src="{loopback}/embed">',
        f'<img src="{loopback}/image"><link rel="stylesheet" href="{loopback}/stylesheet">',
        f'<style>@import url("{loopback}/style-import");</style>',
        f'<meta http-equiv="refresh" content="0; url={loopback}/meta-refresh">',
        f'<base href="{loopback}/base/"><img src="base-relative.png">',
        f'<form action="{loopback}/form"><button>Submit</button></form>',
        "<style>pre, svg, img, .output_area {display: none !important}</style>",
        f'<a href="{loopback}/overlay" style="position: fixed; top: 0; left: 0; '
        f'width: 100%; height: 100%">click anywhere</a>',
        f'<script type="text/x-mathjax-config">{flag("mathjax-config")}</script>',
        f"$\\href{{javascript:void({flag('mathjax-href')})}}{{a formula's link}}$",
        # A link into the staff's own server: nbgrader's formgrader printed the URL into
        # a script unescaped, so a relative link in a written answer ran there.
        f'<a href="../../manage_students/%22%3B{quote(flag("relative-link"))}%2F%2F">a '
        f'question about my grade</a>',
        "[the same, in markdown](../../gradebook/x/y)",
        # Bootstrap's classes: a black layer over the page, and a fake verdict on top.
        '<div class="modal-backdrop in"></div><div class="navbar-fixed-top tooltip in">'
        '<h1>All tests passed: 15 / 15</h1></div>',
        f'<math><mtext><table><mglyph><style><img src=x onerror="{flag("mxss")}">',
    ]


def id_payloads(grade_ids: list[str]) -> str:
    """Markdown whose elements carry the ids of the formgrader's score, extra-credit and
    comment boxes: as a student's HTML, and as headings (nbconvert gives one the id of its
    text). A box found by its id would then be an element of the student's."""
    ids = [f"{grade_id}{suffix}" for grade_id in grade_ids
           for suffix in ("", "_extra_credit", "-comment")]
    return "\n\n".join([*(f"## {grade_id}" for grade_id in grade_ids),
                          *(f'<h4 id="{box}">{box}</h4><span id="{box}">x</span>'
                            for box in ids)])


def raw_payload(grade_ids: list[str]) -> str:
    """A raw cell: the templates print its source as HTML (nbconvert's clean_html keeps
    any class or id) where ours shows it as text."""
    return (f'<div class="modal-backdrop in" id="{grade_ids[0]}"></div>'
            f'<div class="alert alert-success" id="{grade_ids[-1]}">All tests passed: 15 / 15'
            f'</div><script>{flag("raw-cell")}</script>'
            f'<img src=x onerror="{flag("raw-img")}">')


def output_payloads(loopback: str) -> list[dict]:
    """Outputs a student can put in the notebook file they submit."""
    display = nbformat.v4.new_output
    return [
        display("display_data", data={"text/html": f'<b>bold</b><img src=x onerror="'
                                                   f'{flag("output-html")}">'}),
        display("display_data", data={"application/javascript": flag("output-javascript")}),
        display("display_data", data={"text/markdown": f'<img src=x onerror="'
                                                       f'{flag("output-markdown")}">'}),
        display("display_data", data={"text/html": f'<img src="{loopback}/isolated">'},
                metadata={"text/html": {"isolated": True}}),
        display("display_data", data={"image/svg+xml": (
            f'<svg xmlns="http://www.w3.org/2000/svg" onload="{flag("output-svg")}">'
            f'<script>{flag("output-svg-script")}</script></svg>')}),
        display("display_data", data={"image/png": "iVBORw0KGgo="},
                metadata={"filenames": {"image/png": f"{loopback}/png-filename"}}),
        display("display_data", data={"application/vnd.jupyter.widget-view+json": {
            "model_id": "x", "version_major": 2, "version_minor": 0}}),
        display("stream", name="stdout", text=f"<script>{flag('stream')}</script>"),
    ]


class Loopback(http.server.ThreadingHTTPServer):
    """A server on 127.0.0.1 that answers 204 and counts the paths it was asked for."""

    def __init__(self):
        self.asked: list[str] = []
        server = self

        class Counting(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 -- http.server's name
                server.asked.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Counting)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def loopback():
    server = Loopback()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def course(tmp_path_factory, loopback, generated_course):
    """A course in which the hostile student's submission is autograded (in the sandbox),
    with outputs of their choosing put back in (as a course that kept them would show
    them), then given feedback; the roster's formula students and a grade export."""
    from nbgrader.api import Gradebook

    course = generated_course(tmp_path_factory.mktemp("pages"), ASSIGNMENT)
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as gradebook:
        for formula in FORMULAS:
            gradebook.add_student(formula, first_name=formula, last_name=formula, email=formula)
    submitted = course.notebook_of("submitted", HOSTILE.id, ASSIGNMENT)
    submitted.parent.mkdir(parents=True)
    shutil.copy(course.root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", submitted)
    write_submission(submitted, HOSTILE, ASSIGNMENT)
    (submitted.parent / "timestamp.txt").write_text("2026-01-05 10:00:00.000000 UTC")
    notebook = nbformat.read(submitted, as_version=4)
    ids = id_payloads(grade_ids(notebook))
    payloads = "\n\n".join(markdown_payloads(loopback.url))
    written = next(cell for cell in notebook.cells
                   if cell.metadata.get("nbgrader", {}).get("grade_id") == "why_dead_written")
    written.source = f"A dead ReLU passes no gradient back.\n\n{ids}\n\n{payloads}"
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(f"{ids}\n\n{payloads}"))  # theirs
    notebook.cells.insert(2, nbformat.v4.new_raw_cell(raw_payload(grade_ids(notebook))))
    notebook.metadata["title"] = f"</title><script>{flag('title')}</script>"
    nbformat.write(notebook, submitted)
    course.enroll([HOSTILE.id])  # the instructor's roster holds the id as it is
    course.run("autograde", ASSIGNMENT, "--force")
    autograded = course.notebook_of("autograded", HOSTILE.id, ASSIGNMENT)
    notebook = nbformat.read(autograded, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("grade"):
            cell.outputs = output_payloads(loopback.url)
            cell.metadata["tags"] = ["z modal-backdrop in"]  # a class for each word
    nbformat.write(notebook, autograded)
    course.run("generate_feedback", ASSIGNMENT, "--force")
    course.run("export", f"--to={course.root / 'grades.csv'}")
    return course


def grade_ids(notebook) -> list[str]:
    return [cell.metadata.nbgrader["grade_id"] for cell in notebook.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade")]


SPEC = importlib.util.spec_from_file_location("screenshots", REPO / "docs/screenshots.py")
screenshots = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(screenshots)


@pytest.fixture(scope="module")
def browser():
    browser = screenshots.Browser()
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def formgrader(course):
    """A jupyter server in the course root with nbgrader's formgrader: (its URL, token)."""
    server = screenshots.Formgrader(course.root)
    yield server.url, server.token
    server.close()


# What the page shows after it has loaded: the flags the payloads set, where it is, and
# what a payload could have planted (a form that sends to the loopback server, a link
# over the whole page); then the same once every javascript: link has been clicked.
INSPECT = """(() => {
  const state = () => ({pwned: [...(window.PWNED || [])], href: location.href,
    forms: [...document.forms].filter(f => f.action.startsWith(%(loopback)s)).length,
    overlays: [...document.querySelectorAll('a')].filter(
      a => getComputedStyle(a).position === 'fixed').length,
    fixed: [...document.querySelectorAll('.cell *, .jp-Cell, .jp-Cell *')].filter(
      e => getComputedStyle(e).position === 'fixed').length,
    relative: [...document.querySelectorAll('.cell a[href], .jp-Cell a[href]')].filter(
      a => !/^(https?:|mailto:|#)/.test(a.getAttribute('href'))).length});
  const loaded = state();
  for (const a of document.querySelectorAll('a[href]'))
    if (a.protocol === 'javascript:') a.click();
  return {loaded, clicked: state()};
})()"""
# Our own content, as a reader sees it: a verdict of each kind, visible; the figures, loaded
# and visible; the formulas MathJax typeset.
OWN_CONTENT = """(() => {
  const visible = e => e.getClientRects().length > 0 &&
                       getComputedStyle(e).visibility === 'visible';
  const texts = [...document.querySelectorAll('pre')].filter(visible).map(e => e.innerText);
  const figures = [...document.querySelectorAll('img[src^="data:image/svg+xml"]')];
  return {passed: texts.some(t => t.startsWith('✔')),
          failed: texts.some(t => t.includes('WrongAnswer')),
          figures: figures.filter(f => visible(f) && f.naturalWidth > 0).length,
          typeset: document.querySelectorAll('.MathJax, .MathJax_Display').length};
})()"""
MATHJAX_DONE = ("window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0 && "
                "!MathJax.Hub.queue.running && document.querySelector('.MathJax') !== null")


def inspect(browser, url: str, loopback: Loopback, ready: str = "true") -> dict:
    """Open the page, let any navigation a payload started happen, then read it."""
    browser.open(url, ready)
    time.sleep(1)
    return browser.evaluate(INSPECT % {"loopback": json.dumps(loopback.url)})


def assert_nothing_ran(seen: dict, url: str, loopback: Loopback) -> None:
    for state in seen.values():
        assert state == {"pwned": [], "href": url, "forms": 0, "overlays": 0, "fixed": 0,
                         "relative": 0}
    assert loopback.asked == []


def test_feedback_page_runs_nothing_a_student_wrote(course, browser, loopback):
    page = course.notebook_of("feedback", HOSTILE.id, ASSIGNMENT)
    loopback.asked.clear()
    seen = inspect(browser, page.as_uri(), loopback, MATHJAX_DONE)
    assert_nothing_ran(seen, page.as_uri(), loopback)
    own = browser.evaluate(OWN_CONTENT)
    assert own["passed"] and own["failed"] and own["figures"] >= 1, own
    assert own["typeset"] > 10, own  # the release's formulas
    assert "A dead ReLU passes no gradient back." in browser.evaluate("document.body.innerText")


def test_formgrader_page_runs_nothing_a_student_wrote(course, browser, loopback, formgrader):
    from nbgrader.api import Gradebook

    url, token = formgrader
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as gradebook:
        submission = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, HOSTILE.id).id
    browser.open(f"{url}/formgrader?token={token}")  # the login cookie, before any deeper page
    # ?index=0: the formgrader's script puts it there once it has run (it stopped short of
    # that when MathJax, from a CDN, was missing).
    page = f"{url}/formgrader/submissions/{submission}/?index=0"
    loopback.asked.clear()
    seen = inspect(browser, page, loopback, MATHJAX_DONE)
    assert_nothing_ran(seen, page, loopback)
    own = browser.evaluate(OWN_CONTENT)
    assert own["passed"] and own["failed"] and own["figures"] >= 1, own
    assert own["typeset"] > 10, own  # offline: MathJax from the server (formgrader_guard)
    assert HOSTILE.id in browser.evaluate("document.body.textContent")  # shown, as text


# Every element of the page that carries the id of one of the formgrader's boxes.
ELEMENTS_WITH_IDS = """%s.map(id => [...document.querySelectorAll(`[id="${CSS.escape(id)}"]`)]
  .map(e => e.tagName + '.' + e.className))"""


def type_into(browser, element_id: str, text: str) -> None:
    """Click into the field, select what it holds, type text and Tab away, as a person."""
    browser.evaluate(f"(() => {{ const e = document.getElementById({json.dumps(element_id)});"
                     f" e.scrollIntoView(); e.focus(); e.select(); }})()")
    browser.call("Input.insertText", text=text)
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key="Tab", code="Tab",
                     windowsVirtualKeyCode=9)


def test_a_student_cannot_take_a_score_box_or_cover_the_page(course, browser, formgrader):
    """The formgrader finds each part's boxes by id (the first in the page): each id is
    its box's alone, whatever headings and ids the student wrote; and a score typed into
    the written answer's box is saved for that part only."""
    from nbgrader.api import Gradebook

    url, token = formgrader
    notebook = nbformat.read(course.notebook_of("autograded", HOSTILE.id, ASSIGNMENT), 4)
    parts = grade_ids(notebook)
    boxes = [f"{part}{suffix}" for part in parts for suffix in ("", "_extra_credit", "-comment")]

    def manual_scores():
        with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as book:
            submission = book.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, HOSTILE.id)
            return submission.id, {grade.name: grade.manual_score
                                   for grade in submission.grades}

    submission, before = manual_scores()
    browser.open(f"{url}/formgrader?token={token}")
    browser.open(f"{url}/formgrader/submissions/{submission}/?index=0", MATHJAX_DONE)
    found = dict(zip(boxes, browser.evaluate(ELEMENTS_WITH_IDS % json.dumps(boxes)),
                     strict=True))
    kinds = {"": "INPUT.score ", "_extra_credit": "INPUT.extra-credit ",
             "-comment": "TEXTAREA.comment "}
    for part in parts:
        for suffix, kind in kinds.items():
            elements = found[f"{part}{suffix}"]
            assert len(elements) == (1 if suffix == "" else len(elements)) <= 1 and all(
                element.startswith(kind) for element in elements), json.dumps(found)
    assert browser.evaluate("document.querySelectorAll('.modal-backdrop, .alert-success')"
                            ".length") == 0
    type_into(browser, "why_dead_written", "1")
    deadline = time.monotonic() + 10  # the formgrader saves on change
    while manual_scores()[1] == before and time.monotonic() < deadline:
        time.sleep(0.2)
    _, after = manual_scores()
    assert after == {**before, "why_dead_written": 1}


@pytest.mark.parametrize("path", ["manage_students/{x}", "manage_students/s/{x}",
                                  "gradebook/{x}", "gradebook/a/{x}"])
def test_a_link_into_the_formgrader_runs_nothing(browser, loopback, formgrader, path):
    """nbgrader's own formgrader pages print parts of the URL into a script: with the
    course's formgrader_guard they come out escaped (a student can send such a link)."""
    url, token = formgrader
    browser.open(f"{url}/formgrader?token={token}")
    page = f"{url}/formgrader/" + path.format(x=f"%22%3B{quote(flag('url'))}%2F%2F")
    browser.open(page)
    time.sleep(0.5)
    assert browser.evaluate("[...(window.PWNED || [])]") == []


def feedback_exporter():
    """The exporter that nbgrader's GenerateFeedback makes from the course's configuration."""
    from nbgrader.converters import GenerateFeedback
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    config.HTMLExporter.template_name = "feedback"  # as NbGraderAPI.generate_feedback
    converter = GenerateFeedback(config=config)
    return converter.exporter_class(parent=converter, config=converter.config)


def test_feedback_page_escapes_the_notebook_name(browser, loopback, tmp_path):
    name = f"<img src=x onerror=\"{flag('notebook-name')}\">"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$x$")])
    page, _ = feedback_exporter().from_notebook_node(
        notebook, {"nbgrader": {"notebook": name, "score": 0, "max_score": 1,
                                "late_penalty": 0}})
    path = tmp_path / "page.html"
    path.write_text(page)
    seen = inspect(browser, path.as_uri(), loopback)
    assert_nothing_ran(seen, path.as_uri(), loopback)
    assert browser.evaluate("document.title") == name


def hostile_results(loopback: Loopback) -> list[SubmissionResult]:
    def result(student: str, note: str = "", passed: bool = True) -> SubmissionResult:
        return SubmissionResult(ASSIGNMENT, [
            PartResult("linear", 2 if passed else 0, 2, "✔" if passed else "✘ wrong",
                       None if passed else "not_written")], seed=1, student=student, note=note)
    return [result(f"<script>{flag('report-id')}</script>", passed=False),
            result(f'<img src="{loopback.url}/report-image">', note=f"<svg onload=\""
                   f"{flag('report-note')}\">", passed=False),
            *(result(formula, note=formula, passed=False) for formula in FORMULAS),
            result("ada")]


def test_class_report_runs_nothing_a_student_wrote(browser, loopback, tmp_path):
    page, _ = write_report(ClassReport(ASSIGNMENT, hostile_results(loopback)), tmp_path)
    loopback.asked.clear()
    seen = inspect(browser, page.as_uri(), loopback)
    assert_nothing_ran(seen, page.as_uri(), loopback)
    assert browser.evaluate("document.querySelectorAll('svg').length") == 3
    assert f"<script>{flag('report-id')}</script>" in browser.evaluate("document.body.innerText")


def live_formulas(rows: list[list[str]]) -> list[str]:
    return [cell for row in rows for cell in row if LIVE.match(cell) and not NUMBER.fullmatch(cell)]


def test_csv_formulas_come_out_inert(course, loopback):
    report = ClassReport(ASSIGNMENT, hostile_results(loopback))
    rows = list(csv.reader(io.StringIO(report.csv())))
    assert len(rows) == 1 + len(hostile_results(loopback)) and live_formulas(rows) == []
    assert {row[0].lstrip("'") for row in rows} >= set(FORMULAS)  # neutralised, not lost
    with open(course.root / "grades.csv", newline="") as exported:
        rows = list(csv.reader(exported))
    header = rows[0]
    assert header[:4] == ["assignment", "duedate", "timestamp", "student_id"]
    assert all(len(row) == len(header) for row in rows)
    assert live_formulas(rows) == []
    assert {row[3].lstrip("'") for row in rows[1:]} >= set(FORMULAS)
