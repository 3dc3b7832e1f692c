"""What nbgrader's `generate_feedback` runs on a graded notebook, and how it renders it.

nbgrader's ClearHiddenTests removes the hidden tests from a test cell's source, but the
cell's error output may still quote them: a Python traceback shows the lines around the
failing call (nbgrader issue #917). The checks' own WrongAnswer shows its message alone
(see notebook.WrongAnswer); any other error in a test cell (a NameError when the student
deleted the setup cell, say) is cut down here to its type and message.

The page loads MathJax from this machine (the `jupyter-server-mathjax` package), never
from a CDN, so that its maths renders offline.

What a student wrote is made inert before it reaches the page (autograder.pages, set in
nbgrader_config.py for every notebook page); the notebook's name, which nbgrader's feedback
template prints as it is, is escaped here. As a second layer, the page carries a
Content-Security-Policy: no script runs but the MathJax loader and what it loads, and
nothing is loaded from elsewhere, framed, sent by a form, or re-based.
"""

import base64
import hashlib
import html
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbconvert.preprocessors import Preprocessor

from .kit.messages import error_lines

# What nbgrader's feedback template loads (nbconvert's mathjax macro, called without a URL).
MATHJAX_CDN = ('<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js'
               '?config=TeX-AMS_CHTML-full,Safe"> </script>')


class ClearTestTracebacks(Preprocessor):
    """Replace the traceback of every error in an autograder test cell by its message."""

    def preprocess_cell(self, cell, resources, index):
        metadata = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and metadata.get("grade") and not metadata.get("solution"):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = error_lines(output.ename, output.evalue)
        return cell, resources


class OfflineFeedbackExporter(HTMLExporter):
    """nbgrader's feedback page, with MathJax from this machine instead of a CDN.

    It renders as nbconvert's HTMLExporter does, but adds the keyboard focus of the cells
    (and an alt text to an image without one) as text, where nbconvert parses and rewrites
    the whole page with BeautifulSoup: that pass was 40 % of a page's cost, and the grading
    service renders a page per submission. The notebook's name is escaped for the template,
    and the page gets its Content-Security-Policy."""

    def _preprocess(self, nb, resources):
        nb, resources = super()._preprocess(nb, resources)
        if isinstance(resources.get("nbgrader", {}).get("notebook"), str):
            # A copy: nbgrader's converter keeps the dict, and reads the name as it is.
            resources["nbgrader"] = {**resources["nbgrader"],
                                     "notebook": html.escape(resources["nbgrader"]["notebook"])}
        return nb, resources

    def from_notebook_node(self, nb, resources=None, **kw):
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name", None))
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", RememberedHighlight(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        page = _FOCUSABLE.sub(r'\g<0> tabindex="0"', page)
        page = _IMAGE_WITHOUT_ALT.sub(
            '<img alt="No description has been provided for this image"', page)
        if MATHJAX_CDN not in page or not _MATHJAX_CONFIG_BLOCK.search(page):
            raise RuntimeError("the feedback template no longer loads and configures MathJax "
                               "as autograder.feedback.MATHJAX_CDN says; update it")
        loader = mathjax_loader()
        # Its configuration is in the loader: MathJax would run the block with eval, which
        # the CSP forbids (MathJax then stops at any such block a page holds).
        page = _MATHJAX_CONFIG_BLOCK.sub("", page.replace(MATHJAX_CDN, loader), count=1)
        page = page.replace("<head>", f"<head>\n{content_security_policy(loader)}", 1)
        return page, resources


class RememberedHighlight(Highlight2HTML):
    """nbconvert's code highlighting, remembered for each cell's source: the grading
    service renders a page per submission, and every code cell but the answers is the
    release's, the same on every page (pygments was a quarter of a page's cost)."""

    def __call__(self, source, language=None, metadata=None):
        magics = metadata.get("magics_language") if isinstance(metadata, dict) else None
        if not isinstance(source, str) or len(source) > HIGHLIGHT_REMEMBERED_CHARS \
                or not isinstance(magics, str | None) or self.extra_formatter_options:
            return super().__call__(source, language, metadata)
        return _highlighted(source, language or self.pygments_lexer, magics)


HIGHLIGHT_REMEMBERED = 512  # highlighted cells kept
HIGHLIGHT_REMEMBERED_CHARS = 10_000  # a longer cell is highlighted afresh


@lru_cache(maxsize=HIGHLIGHT_REMEMBERED)
def _highlighted(source: str, language: str, magics: str | None) -> str:
    return Highlight2HTML(pygments_lexer=language)(
        source, None, {"magics_language": magics} if magics else None)


# What nbconvert makes focusable: each cell's input and each output (the class attribute of
# their div, as its template writes it), and the images it gives a default alt text.
_FOCUSABLE = re.compile(r'<div class="(?:[^"]* )?(?:jp-Cell-inputWrapper|jp-OutputArea-output)'
                        r'(?: [^"]*)?"(?![^>]*tabindex)')
_IMAGE_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)")
# The configuration nbconvert's mathjax macro writes after loading MathJax, in the head.
_MATHJAX_CONFIG_BLOCK = re.compile(r'<script type="text/x-mathjax-config">.*?</script>', re.S)


def content_security_policy(loader: str) -> str:
    """The page's CSP meta tag: scripts are the loader (by its hash) and those it adds
    ('strict-dynamic': MathJax's own files); styles, fonts and images from the page itself,
    this machine (a page opened as a file) or data: URLs; nothing else."""
    script = loader.split(">", 1)[1].rsplit("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (f"default-src 'none'; script-src 'sha256-{digest}' 'strict-dynamic'; "
              "style-src 'self' file: 'unsafe-inline'; font-src 'self' file: data:; "
              "img-src 'self' file: data:; base-uri 'none'; form-action 'none'")
    return f'<meta http-equiv="Content-Security-Policy" content="{policy}">'


def mathjax_loader() -> str:
    """A script that loads the packaged MathJax: from the Jupyter server that serves the
    page (jupyter-server-mathjax's static files), or from disk for a page opened as a file."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the feedback needs the jupyter-server-mathjax package: "
                           "pip install -c constraints.txt .")
    on_disk = (Path(spec.submodule_search_locations[0]) / "static" / "MathJax.js").as_uri()
    return f"""<script>
(function () {{
  // The configuration and the only fonts (STIX-Web) that the package ships; then what
  // nbconvert's mathjax macro configures ($...$ inline, AMS numbering).
  var config = "?config=TeX-AMS-MML_HTMLorMML-full,Safe";
  window.MathJax = {{
    "HTML-CSS": {{availableFonts: [], imageFont: null, preferredFont: null,
                  webFont: "STIX-Web"}},
    SVG: {{font: "STIX-Web"}},
    TeX: {{equationNumbers: {{autoNumber: "AMS", useLabelIds: true}}}},
    tex2jax: {{inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]],
               displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
               processEscapes: true, processEnvironments: true}},
    displayAlign: "center", messageStyle: "none",
    CommonHTML: {{linebreaks: {{automatic: true}}}}
  }};
  var server = window.location.pathname.match(
      /^(.*?\\/)(files|view|tree|lab|notebooks|edit|formgrader)\\//);
  var source = window.location.protocol !== "file:" && server
      ? server[1] + "static/jupyter_server_mathjax/MathJax.js" : {json.dumps(on_disk)};
  var script = document.createElement("script");  // trusted by the CSP's 'strict-dynamic'
  script.src = source + config;
  document.head.appendChild(script);
}})();
</script>"""
