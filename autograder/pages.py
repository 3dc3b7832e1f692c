"""Student-controlled text in the notebook pages that staff and students open, made inert.

A student writes the markdown of the cells they answer in (written answers included), can
put any output in the notebook file they submit, and where nbgrader takes their id from a
folder name, chooses its characters. nbconvert renders all of it into the page as it is
(`HTMLExporter.sanitize_html` is off by default, and nbgrader's feedback and formgrader
templates ignore it for markdown cells), so a `<script>` in a written answer ran in the
instructor's logged-in formgrader. `nbgrader_config.py` makes every notebook page (nbgrader's
feedback, the grading service's, the formgrader's submission page) go through:

* `markdown2html`, the templates' markdown filter: nbconvert's own rendering (attachments,
  heading anchors, maths left as TeX for MathJax), then `sanitize_html`.
* `SanitizeStudentContent`, a preprocessor: each output keeps only the types that cannot
  run code (text/html sanitised; JavaScript, widgets and any other type dropped), a raw cell
  (which the templates print as HTML, through nbconvert's lenient `clean_html`) shows its
  text as text, and the strings that the formgrader's template prints into its page
  unescaped are escaped.

`sanitize_html` keeps the tags and attributes that markdown makes, links to http(s), mailto
or a place in the page, images from data: URLs, and only the classes of syntax highlighting
and heading anchors, and no `id`; anything else shows as text. The formgrader finds each
part's score box by its id (`$("#" + grade_id)`, the first in the page): a heading's id (even
an innocent `## train`, to which nbconvert gives id="train") or one a student wrote came
before the box and took its scores. A relative link or image is refused: in
the formgrader it resolves inside the instructor's own logged-in server (a link to one of
nbgrader's pages that print the URL unescaped ran script there), and a class such as
Bootstrap's `modal-backdrop` could cover the page with a fake verdict; cell tags, which the
templates turn into classes, keep only one word each. Our own content passes unchanged:
verdicts are text, figures are data: images, and MathJax's Safe extension (the feedback's
MathJax configuration) refuses links and styles inside formulas.
"""

import html
import re
import urllib.parse
from functools import cache, lru_cache

import bleach
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from jinja2 import pass_context
from nbconvert.preprocessors import Preprocessor

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "u", "ul", "var"})
ATTRIBUTES = {
    "a": ["href", "title", "class"],  # class: nbconvert's heading anchors ("anchor-link")
    "img": ["src", "alt", "title", "width", "height"],
    "th": ["style", "colspan", "rowspan"], "td": ["style", "colspan", "rowspan"],
    **{tag: ["class"] for tag in ("code", "div", "pre", "span")},  # syntax highlighting
}
LINK_SCHEMES = {"http", "https", "mailto"}
DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml)[;,]", re.IGNORECASE)
# Markdown tables align their columns with style="text-align: ..."; no other style.
_CSS = CSSSanitizer(allowed_css_properties=["text-align"])
# The strings the formgrader's submission page (nbgrader's SubmissionHandler and its
# formgrade template) prints without escaping: the student id comes from a folder name.
FORMGRADER_STRINGS = ("student", "first_name", "last_name", "assignment_id", "notebook_id",
                      "notebook_path")
SAFE_OUTPUT_TYPES = frozenset({"text/plain", "text/html", "text/markdown", "text/latex",
                               "image/png", "image/jpeg", "image/svg+xml"})


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name not in ATTRIBUTES.get(tag, ()):
        return False
    if name == "href":
        return _scheme(value) in LINK_SCHEMES or re.fullmatch(r"#[\w.-]*", value) is not None
    if name == "src":
        return bool(DATA_IMAGE.match(value.strip()))
    if name == "class":
        return all(word in _highlighting_classes() for word in value.split())
    return True


@cache
def _highlighting_classes() -> frozenset[str]:
    """The classes markdown's code blocks (pygments' tokens) and headings' anchors use."""
    from pygments.token import STANDARD_TYPES

    return frozenset(STANDARD_TYPES.values()) | {"highlight", "hll", "anchor-link"}


def _scheme(url: str) -> str:
    """The URL's scheme as a browser reads it ("" for a relative URL); control characters
    and spaces, which browsers skip, are left out first."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(url))
    return urllib.parse.urlsplit(cleaned).scheme.lower()


@cache
def _cleaner() -> bleach.Cleaner:
    # bleach checks the scheme of href and src again; data: passes it only as an image
    # source (_allowed_attribute).
    return bleach.Cleaner(tags=TAGS, attributes=_allowed_attribute,
                          protocols=LINK_SCHEMES | {"data"}, strip=False,
                          strip_comments=True, css_sanitizer=_CSS)


def sanitize_html(fragment: str) -> str:
    """The HTML fragment with only the tags and attributes that cannot run code, load from
    elsewhere or restyle the page; everything else escaped, so that it shows as text."""
    return _cleaner().clean(fragment)


@cache
def _markdown_exporter():
    from nbconvert.exporters import HTMLExporter

    return HTMLExporter()


MARKDOWN_CHARS = 10_000  # a cell's markdown rendered as markdown; the course's longest is 2,903
# The markdown a page renders (about 20 ms a kB of dense markup); the releases hold 18 to
# 30 kB. Past it, cells are replaced by a note (3 MB of markdown took over 5 minutes).
MARKDOWN_PAGE_CHARS = 100_000
MARKDOWN_REMEMBERED = 1024  # rendered cells kept (each at most MARKDOWN_CHARS of source)
CODE_CHARS = 100_000  # a code cell's source shown in a page (highlighting it takes time too)


@pass_context
def markdown2html(context, source: str) -> str:
    """nbconvert's markdown filter (HTMLExporter.markdown2html), sanitised. A cell longer
    than MARKDOWN_CHARS is shown as escaped text, cut there: nbconvert's markdown parser
    takes time cubic in some nestings (a 40 kB cell of nested emphasis took 41 s)."""
    if len(source) > MARKDOWN_CHARS:
        return (f"<pre>{html.escape(source[:MARKDOWN_CHARS])}</pre><p><em>This cell is "
                f"longer than {MARKDOWN_CHARS:,} characters: it is shown as plain text, and "
                f"only its first {MARKDOWN_CHARS:,}.</em></p>")
    if context.get("cell", {}).get("attachments") or _markdown_exporter().embed_images \
            or not isinstance(source, str):  # images of the cell's own, or from its folder
        return sanitize_html(_markdown_exporter().markdown2html(context, source))
    return _rendered_markdown(source)


@lru_cache(maxsize=MARKDOWN_REMEMBERED)
def _rendered_markdown(source: str) -> str:
    """A cell's markdown rendered and sanitised, remembered: the grading service renders a
    page per submission, and all but the written answers are the release's text, the same
    on every page (a third of a page's cost). nbconvert's filter reads nothing else of its
    context where the cell has no attachments and no image is embedded from a file."""
    return sanitize_html(_markdown_exporter().markdown2html({}, source))


class SanitizeStudentContent(Preprocessor):
    """Every output keeps only what cannot run code; the page's own strings are escaped."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)  # it makes the page load the widget manager's code
        nb.cells = [shown_as_text(cell) if cell.get("cell_type") == "raw" else cell
                    for cell in nb.cells]
        shown = 0  # the page renders at most MARKDOWN_PAGE_CHARS of markdown
        for cell in nb.cells:
            graded = cell.get("metadata", {}).get("nbgrader", {}).get("grade")
            if cell.cell_type == "markdown" and isinstance(cell.get("source"), str) \
                    and not graded:  # a written answer is always shown: a person grades it
                over = shown > MARKDOWN_PAGE_CHARS  # a note said so already
                shown += min(len(cell.source), MARKDOWN_CHARS)
                if shown > MARKDOWN_PAGE_CHARS:
                    cell.source = "" if over else (
                        f"*This cell and the text after it are not shown here: the page "
                        f"shows the first {MARKDOWN_PAGE_CHARS:,} characters of the "
                        f"notebook's text. The notebook itself holds all of it.*")
                    cell.pop("attachments", None)
        for key in FORMGRADER_STRINGS:
            if isinstance(resources.get(key), str):
                resources[key] = html.escape(resources[key])
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        tags = cell.get("metadata", {}).get("tags")
        if isinstance(tags, list):  # each becomes a class "celltag_<tag>" in the page
            cell.metadata["tags"] = [tag for tag in tags if isinstance(tag, str)
                                     and re.fullmatch(r"[\w-]+", tag)]
        if cell.cell_type == "code" and len(cell.get("source") or "") > CODE_CHARS:
            cell.source = (f"{cell.source[:CODE_CHARS]}\n# ... this cell is longer than "
                           f"{CODE_CHARS:,} characters: the page shows only its first "
                           f"{CODE_CHARS:,}")
        if cell.cell_type == "code":
            cell.execution_count = (cell.get("execution_count")
                                    if type(cell.get("execution_count")) is int else None)
            cell.outputs = [safe for safe in map(safe_output, cell.get("outputs", [])) if safe]
        return cell, resources


def shown_as_text(raw) -> nbformat.NotebookNode:
    """A raw cell as a markdown cell that shows its text in a code block, fenced with more
    backticks than any run in it, and nothing of its metadata (no score box, no classes)."""
    text = _text(raw.get("source", ""))
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return nbformat.v4.new_markdown_cell(f"{fence}\n{text}\n{fence}")


def safe_output(output) -> nbformat.NotebookNode | None:
    """The output rebuilt from what cannot run code (None if nothing is left): streams and
    errors (the templates escape them), and display data of SAFE_OUTPUT_TYPES, text/html
    sanitised. No metadata: it names files that the page would load."""
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_text(output.get("text", "")))
    if kind == "error":
        return nbformat.v4.new_output(
            "error", ename=str(output.get("ename", "")), evalue=str(output.get("evalue", "")),
            traceback=[str(line) for line in output.get("traceback", [])])
    if kind not in ("display_data", "execute_result"):
        return None
    data = {mime: _text(value) for mime, value in output.get("data", {}).items()
            if mime in SAFE_OUTPUT_TYPES}
    if "text/html" in data:
        data["text/html"] = sanitize_html(data["text/html"])
    return nbformat.v4.new_output(kind, data=data) if data else None


def _text(value) -> str:
    return "".join(map(str, value)) if isinstance(value, list) else str(value)
