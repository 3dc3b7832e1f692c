"""A page in place of feedback, for a submission that was not graded: released under the
name `nbgrader fetch_feedback` looks for (md5 of the submission's secret and notebook), so
the student who submitted reads why in the Assignments tab, like any feedback."""

import html
import os
from pathlib import Path


def release_notice(feedback_folder: Path, secret: str, notebooks: list[str], title: str,
                   message: str) -> None:
    """Write the page for each of the assignment's notebooks (their names, no suffix)."""
    from nbgrader.utils import notebook_hash

    from ..engine.protocol import write_atomically

    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(message)}</p></body></html>\n").encode()
    feedback_folder.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        path = feedback_folder / f"{notebook_hash(secret=secret, notebook_id=notebook)}.html"
        write_atomically(path, page)
        os.chmod(path, 0o644)

