"""nbgrader's formgrader pages, with what they print escaped and their maths typeset offline:
a Jupyter server extension.

nbgrader renders the formgrader's own pages (manage students, the gradebook) with a Jinja
environment that does not escape, and several print a part of the URL into a script
(`var student_id = "{{ student_id }}";`): a link an instructor follows, in a student's
written answer or an e-mail, ran script in their logged-in server. Once every extension is
loaded, this one turns that environment's autoescaping on.

The submission page (nbconvert's `mathjax` macro, called without a URL) loaded MathJax from
a CDN: offline, the instructor read raw LaTeX. This extension gives the formgrader's
exporter a macro of that name that loads the packaged MathJax from the server itself, as
the feedback pages do (`autograder.feedback.mathjax_loader`).

Enable it beside nbgrader's, in the staff's Jupyter server configuration:

    c.ServerApp.jpserver_extensions = {"autograder.formgrader_guard": True}
"""

import time

from jinja2 import DictLoader
from tornado.ioloop import IOLoop

from .feedback import mathjax_loader


def _jupyter_server_extension_points():
    return [{"module": "autograder.formgrader_guard"}]


def offline_mathjax() -> DictLoader:
    """nbconvert's `mathjax.html.j2`, its macro loading MathJax from this machine."""
    return DictLoader({"mathjax.html.j2": "{%- macro mathjax(url=None) -%}{% raw %}"
                       + mathjax_loader() + "{% endraw %}{%- endmacro %}"})


LOAD_WAIT_SECONDS = 30  # how long it waits for the formgrader's settings


def _load_jupyter_server_extension(serverapp) -> None:
    """Turn autoescaping on and MathJax local once the formgrader has made its environment
    and exporter (extensions load in an order of their own, and under JupyterHub's
    single-user server the loop already turns while they load: it looks again until they
    are there)."""
    loop, deadline = IOLoop.current(), time.monotonic() + LOAD_WAIT_SECONDS

    def guard() -> None:
        settings = serverapp.web_app.settings
        environment, exporter = settings.get("nbgrader_jinja2_env"), \
            settings.get("nbgrader_exporter")
        if environment is None or exporter is None:
            if time.monotonic() < deadline:
                loop.call_later(0.05, guard)
            else:
                serverapp.log.warning("formgrader_guard: nbgrader's formgrader is not loaded")
            return
        environment.autoescape = True
        exporter.extra_loaders = [offline_mathjax(), *exporter.extra_loaders]
        serverapp.log.info("formgrader_guard: the formgrader's pages escape what they print "
                           "and load MathJax from this server")

    loop.add_callback(guard)
