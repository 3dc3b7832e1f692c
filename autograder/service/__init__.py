"""Feedback seconds after submit: a grading service on a course's nbgrader exchange.

`python -m autograder serve --course COURSE [--course COURSE2 ...]` polls each course's
exchange (`{Exchange.root}/{course_id}/inbound/`) and, for every new submission there, does
what `nbgrader collect`, `autograde`, `generate_feedback` and `release_feedback` would do,
treating the exchange as hostile input. The pipeline, a module per stage:

    inbound.py   who wrote a folder (its owner), when (its ctime), whether its names pass
    queue.py     accounts served in turn; the hourly limit per account
    collect.py   the copy into submitted/: no link followed, caps, a time budget
    course.py    one course's pipeline: inbound → queue → collect → grade → record →
                 feedback, a step per poll
    feedback.py  the processes that run nbgrader's GenerateFeedback and ReleaseFeedback
    release.py   the page released instead of feedback when a submission is not graded
    journal.py   a file per submission: its state, the state machine in one place
    serve.py     the loop over the courses, --health
    log.py       one line per event on stdout

Grading itself is the engine's (`engine.runner`): the sandbox on a warm fork server, every
core, the gradebook with the late penalty of the trusted time.
"""

from .serve import main

__all__ = ["main"]
