"""nbgrader's formgrader pages, with what they print escaped: a Jupyter server extension.

nbgrader renders the formgrader's own pages (manage students, the gradebook) with a Jinja
environment that does not escape, and several print a part of the URL into a script
(`var student_id = "{{ student_id }}";`): a link an instructor follows, in a student's
written answer or an e-mail, ran script in their logged-in server. Once every extension is
loaded, this one turns that environment's autoescaping on. Enable it beside nbgrader's, in
the staff's Jupyter server configuration:

    c.ServerApp.jpserver_extensions = {"autograder.formgrader_guard": True}
"""

from tornado.ioloop import IOLoop


def _jupyter_server_extension_points():
    return [{"module": "autograder.formgrader_guard"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Turn autoescaping on once the formgrader has made its environment (extensions load
    in an order of their own; the loop's first turn comes after all of them)."""

    def escape() -> None:
        environment = serverapp.web_app.settings.get("nbgrader_jinja2_env")
        if environment is None:
            serverapp.log.warning("formgrader_guard: nbgrader's formgrader is not loaded")
            return
        environment.autoescape = True
        serverapp.log.info("formgrader_guard: the formgrader's pages escape what they print")

    IOLoop.current().add_callback(escape)
