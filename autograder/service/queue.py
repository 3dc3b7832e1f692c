"""Who goes next: accounts in turn, and a rate limit per account.

A student's submissions go through one at a time, oldest first (by trusted time) of those
that can start: one that waits to be tried again (the grader failed on it) holds up none of
its account's others, so nothing a student writes can leave their later work ungraded (an
older submission graded after a newer one is superseded, never recorded over it). Across
accounts the service serves whichever account it served least recently, so one account's
flood delays another's submission by at most one grading per core. The rate limit
(`--max-per-hour N`) counts, per account, what it wrote that the service took in the hour
before the submission (trusted times): graded submissions, and refused folders (one named
after someone else, junk, links); a forged folder costs its writer, never the student it
names. A submission refused for the limit itself is not counted.
"""

import itertools
from datetime import UTC, datetime, timedelta

from .inbound import Inbound

COUNTED = ("collected", "graded", "released", "superseded", "refused")


class FairQueue:
    """The order in which waiting submissions start."""

    def __init__(self):
        self._turn = itertools.count()
        self.last_served: dict[str, int] = {}  # account -> its turn when last started

    def order(self, ready: list[Inbound]) -> list[Inbound]:
        """Each account's oldest submission of those ready to start, the accounts least
        recently served first."""
        oldest: dict[str, Inbound] = {}
        for submission in sorted(ready, key=lambda s: (s.seen_time, s.name)):
            oldest.setdefault(submission.account, submission)
        return sorted(oldest.values(), key=lambda s: (self.last_served.get(s.account, -1),
                                                      s.seen_time, s.name))

    def served(self, account: str) -> None:
        self.last_served[account] = next(self._turn)


def over_limit(submission: Inbound, entries: dict[str, dict], max_per_hour: int | None
               ) -> str | None:
    """Why this submission is over the account's hourly limit (a message for the student),
    or None."""
    if not max_per_hour:
        return None
    start = submission.seen_time - 3600
    counted = sorted(entry["time"] for entry in entries.values()
                     if entry.get("account") == submission.account
                     and entry["submission"] != submission.name
                     and entry.get("state") in COUNTED
                     and start < entry.get("time", 0) <= submission.seen_time)
    if len(counted) < max_per_hour:
        return None
    again = datetime.fromtimestamp(counted[-max_per_hour], UTC) + timedelta(hours=1)
    return (f"This submission of {submission.assignment} (received "
            f"{submission.when:%Y-%m-%d %H:%M:%S} UTC) was not graded: this course grades at "
            f"most {max_per_hour} submission(s) per student per hour, and your account had "
            f"{len(counted)} in the hour before it. It is kept, and your instructor can see "
            f"it. Keep working with the checks in the notebook, then submit again after "
            f"{again:%Y-%m-%d %H:%M} UTC to have it graded.")
