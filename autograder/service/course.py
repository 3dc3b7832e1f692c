"""One course's pipeline, stage by stage: inbound → collect → grade → record → feedback.

`step()` runs on every poll of the service's loop and starts what can start; `take()`
finishes what came back. A submission moves through the journal's states (journal.py):

1. **inbound** (`inbound.examine`): a new complete folder becomes a submission, or a
   refusal journaled at once (a bad name, someone else's name, an unknown assignment, a
   student not on the roster).
2. **queue** (`queue.FairQueue`): while a core is free, the next account in turn offers its
   oldest submission that is not waiting to be tried again; it is `limited` if over the
   hourly limit, `superseded` if the gradebook already holds a later submission of that
   student.
3. **collect** (`collect.collect`, on a collect thread): the folder is copied into
   `submitted/` without following anything; a link, a FIFO, a foreign file or a cap makes
   it `refused`, with a page that tells the student why. Otherwise `collected`, with its
   trusted time and the seed of its hidden cases.
4. **grade** (`runner.grade_submission`, on the grading pool: the sandbox on the warm fork
   server), then **record** (`runner.GradingRun.record`: result, autograded notebook,
   gradebook with the late penalty of the trusted time): `graded`, unless a later
   submission got there first (`superseded`: never older over newer).
5. **feedback** (`feedback.FeedbackProcesses`): nbgrader's GenerateFeedback and
   ReleaseFeedback in a feedback process: `released`.

An account has one submission on its way at a time, until its feedback is out. One
assignment's grading run is open at a time; a submission of another assignment waits for
the open run to drain (at most one grading per core), so no assignment starves.
"""

import os
import secrets
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..engine.course_config import CourseBusy, CourseError, load_course
from . import collect as collecting
from .feedback import FEEDBACK_BATCH, FeedbackProcesses
from .inbound import GradebookLists, Inbound, Refusal, account_of, examine
from .journal import Journal
from .log import log
from .queue import FairQueue, over_limit
from .release import release_notice

EXAMINE_PER_POLL = 20  # folders of one account examined a poll
MAX_UNFINISHED = 20  # unfinished folders watched per account; more are refused
FEEDBACK_TRIES = 3  # a page that fails alone this often is replaced by one with the grade
RETRY_SECONDS = 30.0  # a course, an assignment or a grader that failed is tried again after
CLAIM_SLACK_SECONDS = 60.0  # a student's clock this far off the service's is logged
NBGRADER_TIME = "%Y-%m-%d %H:%M:%S.%f UTC"  # timestamp.txt, as nbgrader submit writes it


@dataclass
class Work:
    """A submission on its way through the service."""

    inbound: Inbound
    entry: dict
    stage: str = "collecting"  # collecting, grading, recorded (its feedback pending)
    future: Future | None = None
    submission: object = None  # runner.Submission, as collected
    reused: bool = False  # its result was written before a restart: not graded again
    alone: bool = False  # its feedback page goes in a batch of its own
    started: float = field(default_factory=time.monotonic)


class CourseService:
    """The service for one course."""

    def __init__(self, root: Path, pool: ThreadPoolExecutor, jobs: int,
                 collectors: ThreadPoolExecutor, feedback: FeedbackProcesses,
                 max_per_hour: int | None, identity: str):
        from nbgrader.exchange.default import Exchange

        from .. import references

        self.course = load_course(root)
        self.root = self.course.root
        self.journal = Journal(self.root)
        self.pool, self.collectors, self.feedback = pool, collectors, feedback
        self.max_per_hour, self.identity = max_per_hour, identity
        self.slots = jobs  # gradings and collects at once
        self.gradebook = GradebookLists(self.course.db_url, self.course.course_id,
                                        frozenset(references.ASSIGNMENTS))
        self.inbound = Path(Exchange(config=self.course.config).root) \
            / self.course.course_id / "inbound"
        self.waiting: dict[str, Inbound] = {}  # examined, not yet started
        self.unfinished: dict[str, os.stat_result] = {}  # watched unfinished folders
        self.first_seen: dict[str, os.stat_result] = {}  # new entries, not yet examined
        self.feedback_faults: dict[str, int] = {}  # name -> feedback pages that failed
        self.busy: dict[str, Work] = {}  # account -> its submission on its way
        self.queue = FairQueue()
        self.run = None  # the open runner.GradingRun (one assignment at a time)
        self.blocked: dict[str, float] = {}  # an assignment or a submission -> retry time
        self.graded: list[Work] = []  # recorded, their feedback not yet asked for
        self.sending: dict[Future, tuple[list[Work], float]] = {}  # batches, when sent
        log("course", course=self.course.course_id, root=self.root, inbound=self.inbound,
            identity=identity)

    # -- inbound and the queue --

    def scan(self) -> None:
        """Examine the folders in inbound/ not yet taken: the unfinished ones it watches
        (at most MAX_UNFINISHED an account: beyond them the oldest is refused), then new
        ones, each account in turn, at most EXAMINE_PER_POLL of its own a poll (oldest
        first), so that one account's flood of folders or files delays no one else's. A
        new entry's owner and age are read once (a flood of 100,000 files costs a poll its
        listing, not 100,000 lstat calls); what is examined is read again."""
        try:
            entries = list(os.scandir(self.inbound))
        except OSError:
            return
        on_its_way = {work.inbound.name for work in self.busy.values()}
        watched, new, first_seen = [], {}, {}
        for entry in entries:
            if entry.name in self.waiting or entry.name in on_its_way \
                    or self.journal.is_final(entry.name):
                continue
            if entry.name in self.unfinished:
                watched.append(entry)
                continue
            info = self.first_seen.get(entry.name)
            if info is None:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
            first_seen[entry.name] = info
            new.setdefault(info.st_uid, []).append((entry, info))
        for entry in watched:
            self.examine(entry)
        for found in new.values():
            found.sort(key=lambda pair: (pair[1].st_ctime, pair[0].name))
            for entry, _ in found[:EXAMINE_PER_POLL]:
                first_seen.pop(entry.name)
                self.examine(entry)
        self.first_seen = first_seen
        present = {entry.name for entry in entries}
        self.unfinished = {name: info for name, info in self.unfinished.items()
                           if name in present and self.journal.state(name) is None
                           and name not in self.waiting}

    def examine(self, entry: os.DirEntry) -> None:
        try:
            info = os.stat(entry.path, follow_symlinks=False)
        except OSError:
            return
        found = examine(entry, info, self.identity, self.gradebook)
        if isinstance(found, Refusal):
            self.refuse_unread(found)
        elif found is not None:
            self.waiting[found.name] = found
        else:
            if entry.name not in self.unfinished:
                self.give_up_oldest_unfinished(info.st_uid)
            self.unfinished[entry.name] = info

    def give_up_oldest_unfinished(self, uid: int) -> None:
        """When this account's watched unfinished folders are MAX_UNFINISHED, refuse the
        oldest: its own stale folders never cost the student the submission still being
        written."""
        mine = sorted((info.st_ctime, name) for name, info in self.unfinished.items()
                      if info.st_uid == uid)
        if len(mine) < MAX_UNFINISHED:
            return
        ctime, oldest = mine[0]
        del self.unfinished[oldest]
        self.refuse_unread(Refusal(
            oldest, account_of(uid) or f"uid {uid}", "too-many-unfinished",
            f"the oldest of more than {MAX_UNFINISHED} unfinished folders of one account",
            ctime))

    def refuse_unread(self, refusal: Refusal) -> None:
        self.journal.refuse_unread({"submission": refusal.name,
                                    "course": self.course.course_id,
                                    "account": refusal.account, "reason": refusal.reason,
                                    "note": refusal.why, "time": refusal.seen_time})
        log("refused", course=self.course.course_id, account=refusal.account,
            reason=refusal.reason, submission=refusal.name, why=refusal.why)

    def step(self) -> list[Future]:
        """Start what can start now; the futures in flight."""
        self.scan()
        now = time.monotonic()
        for submission in self.queue.order([
                s for s in self.waiting.values() if s.account not in self.busy
                and max(self.blocked.get(s.assignment, 0), self.blocked.get(s.name, 0)) <= now]):
            if sum(work.stage != "recorded" for work in self.busy.values()) >= self.slots:
                break
            if self.run is not None and self.run.assignment != submission.assignment:
                break  # the open run drains first, then this one's opens
            try:
                self.start(submission)
            except CourseError as error:  # the course or the assignment: all of it waits
                self._block(submission.assignment, error)
            except Exception as error:  # this submission only
                self.busy.pop(submission.account, None)
                log("collect-fault", course=self.course.course_id, student=submission.student,
                    submission=submission.name, error=f"{type(error).__name__}: {error}")
                self._block(submission.name, error)
        self.close_if_idle()
        self.release_graded()
        return [work.future for work in self.busy.values() if work.future is not None] \
            + list(self.sending)

    def start(self, submission: Inbound) -> None:
        """Take the submission out of the queue: limit, supersede, or collect it."""
        entry = dict(self.journal.entries.get(submission.name) or {
            "submission": submission.name, "course": self.course.course_id,
            "student": submission.student, "assignment": submission.assignment,
            "account": submission.account, "claimed": submission.claimed,
            "time": submission.seen_time})
        if entry.get("state") == "graded":  # killed before its feedback went out
            self.waiting.pop(submission.name)
            work = self.busy[submission.account] = Work(submission, entry, "recorded")
            self.graded.append(work)
            return
        run = self.open_run(submission.assignment)
        if entry.get("state") is None:
            limit = over_limit(submission, self.journal.entries, self.max_per_hour)
            if limit:
                self.waiting.pop(submission.name)
                self.not_graded(submission, entry, "limited", limit,
                                "Not graded: too many submissions this hour")
                return
            if self.is_superseded(submission.student, submission.when):
                self.waiting.pop(submission.name)
                self.superseded(submission, entry)
                return
        self.waiting.pop(submission.name)
        self.queue.served(submission.account)
        work = self.busy[submission.account] = Work(submission, entry)
        if entry.get("state") == "collected":  # collected before a restart
            self.grade(work, run.layout.read(submission.student, run.limits.notebook_bytes))
        else:
            work.future = self.collectors.submit(self.collect, submission)

    def is_superseded(self, student: str, when: datetime) -> bool:
        """Whether the gradebook holds a submission of this student no earlier than when."""
        from nbgrader.api import MissingEntry

        try:
            recorded = self.run.book.find_submission(self.run.assignment, student).timestamp
        except MissingEntry:
            return False
        return recorded is not None and recorded >= when

    # -- collect --

    def collect(self, submission: Inbound):
        """On a collect thread: the folder copied into submitted/ (a temporary folder, then
        renamed into place), its timestamp.txt the trusted time; (Collected, Submission),
        or Refused."""
        dest = self.course.path(self.course.submitted_directory, submission.student,
                                submission.assignment)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temporary = dest.parent / f".{dest.name}.collecting-{secrets.token_hex(4)}"
        try:
            collected = collecting.collect(submission, temporary)
            stamp = datetime.fromtimestamp(collected.trusted_time, UTC)
            (temporary / "timestamp.txt").write_text(stamp.strftime(NBGRADER_TIME))
            collecting.replace_folder(temporary, dest)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return collected, self.run.layout.read(submission.student,
                                               self.run.limits.notebook_bytes)

    def collected(self, work: Work) -> None:
        """The collect thread came back: grade it, or say why not."""
        from ..references.graded import SEED_POOL

        submission = work.inbound
        try:
            collected, read = work.future.result()
        except collecting.Refused as refused:
            del self.busy[submission.account]
            work.entry.update(reason=refused.reason)
            self.not_graded(submission, work.entry, "refused", str(refused),
                            "Not graded: the submission was refused",
                            collecting.read_secret(submission))
            return
        work.entry.update(state="collected",
                          seed=SEED_POOL.draw(submission.assignment, submission.student),
                          time=collected.trusted_time, collected=time.time())
        if collected.claimed_time:
            work.entry["claimed"] = collected.claimed_time
        self.journal.write(work.entry)
        log("collected", course=self.course.course_id, student=submission.student,
            assignment=submission.assignment, submission=submission.name,
            time=_utc(collected.trusted_time),
            claimed=_differing_claim(work.entry.get("claimed"), collected.trusted_time))
        self.grade(work, read)

    # -- grade and record --

    def grade(self, work: Work, submission) -> None:
        from ..engine.results import read_json
        from ..engine.runner import grade_submission

        work.stage, work.submission = "grading", submission
        student = work.inbound.student
        stored = read_json(self.run.layout.result(student))
        if stored is not None and stored.seed == work.entry["seed"] \
                and stored.notebook_sha256 == submission.sha256 \
                and stored.assignment == work.inbound.assignment:
            work.future, work.reused = Future(), True  # graded before a restart: not again
            work.future.set_result(stored.to_json())
            return
        work.future = self.pool.submit(
            grade_submission, submission.notebook, work.inbound.assignment,
            work.entry["seed"], self.run.limits, student, submission.problem,
            submission.sha256)

    def take(self, finished: set[Future]) -> None:
        """Finish the collects, gradings and feedback batches that came back."""
        for future in [future for future in self.sending if future in finished]:
            self.released_batch(future)
        for work in [w for w in self.busy.values() if w.future in finished]:
            try:
                if work.stage == "collecting":
                    self.collected(work)
                else:
                    self.finish(work)
            except Exception as error:  # a fault of the service's own: this one waits
                if self.run is not None:
                    self.run.rollback()
                self._fault("service-fault", work, f"{type(error).__name__}: {error}", error)

    def finish(self, work: Work) -> None:
        """A grading came back: record it, unless a later submission was recorded first."""
        from ..engine.results import SubmissionResult
        from ..engine.runner import describe_fault

        student, assignment = work.inbound.key
        work.future, future = None, work.future
        try:
            result = SubmissionResult.from_json(future.result())
        except Exception as error:  # the grader's own fault, twice: no grade, try later
            self._fault("grader-fault", work, describe_fault(error), error)
            return
        when = datetime.fromtimestamp(work.entry["time"], UTC).replace(tzinfo=None)
        if self.is_superseded(student, when):
            del self.busy[work.inbound.account]
            self.superseded(work.inbound, work.entry)
            return
        try:
            self.run.record(result, work.submission, True)
        except Exception as error:  # the gradebook or a disk: try again later
            self.run.rollback()
            self._fault("record-fault", work, describe_fault(error), error)
            return
        work.stage = "recorded"
        work.entry.update(state="graded", score=result.score, max_score=result.max_score,
                          graded=time.time(), note=result.note)
        self.journal.write(work.entry)
        log("recorded" if work.reused else "graded", course=self.course.course_id,
            student=student, assignment=assignment, submission=work.inbound.name,
            score=f"{result.score:g}/{result.max_score:g}", seed=result.seed,
            seconds=time.monotonic() - work.started)
        self.graded.append(work)

    # -- feedback and release --

    def release_graded(self) -> None:
        """Send the recorded submissions' feedback to the feedback processes, oldest first,
        while one is free: a batch is at most FEEDBACK_BATCH pages of one assignment (its
        pages all go out when it ends, so the cap keeps the first from waiting long); a
        page whose batch failed goes alone."""
        while self.graded and len(self.sending) < self.feedback.processes:
            first = self.graded[0]
            batch = [first] if first.alone else [
                work for work in self.graded if not work.alone
                and work.inbound.assignment == first.inbound.assignment][:FEEDBACK_BATCH]
            self.graded = [work for work in self.graded if all(work is not w for w in batch)]
            future = self.feedback.submit(self.root, first.inbound.assignment,
                                          [work.inbound.student for work in batch])
            self.sending[future] = batch, time.monotonic()

    def released_batch(self, future: Future) -> None:
        """A feedback batch came back: journal and log each submission it released. A page
        that failed in a batch is sent again alone (a batch mate's page may have been the
        cause); alone, a page that ran out of time or memory, or failed FEEDBACK_TRIES
        times, is replaced by a page that gives the grade and says why."""
        from pebble import ProcessExpired

        batch, sent = self.sending.pop(future)
        broke = None
        try:
            faults, cpu = future.result()
        except Exception as error:  # out of time, or the process died or could not start
            broke = error
            why = "it took longer than its time budget" if isinstance(error, TimeoutError) \
                else f"the feedback process failed: {type(error).__name__}: {error}"
            faults, cpu = {work.inbound.student: why for work in batch}, 0.0
        log("feedback-batch", course=self.course.course_id,
            assignment=batch[0].inbound.assignment, submissions=len(batch),
            seconds=time.monotonic() - sent, cpu=cpu)
        for work in batch:
            fault = faults.get(work.inbound.student, "no answer")
            if fault is None:
                self.released(work)
                continue
            name = work.inbound.name
            self.feedback_faults[name] = self.feedback_faults.get(name, 0) + 1
            if len(batch) > 1:
                log("feedback-fault", course=self.course.course_id,
                    student=work.inbound.student, submission=work.inbound.name,
                    error=fault, next="alone")
                work.alone = True
                self.graded.append(work)
            elif isinstance(broke, TimeoutError | ProcessExpired) \
                    or self.feedback_faults[name] >= FEEDBACK_TRIES:
                log("feedback-fault", course=self.course.course_id,
                    student=work.inbound.student, submission=work.inbound.name,
                    error=fault, next="page-without-feedback")
                self.released(work, fallback=fault)
            else:
                self._fault("feedback-fault", work, fault, RuntimeError(fault))

    def released(self, work: Work, fallback: str | None = None) -> None:
        """Journal and log a released page; with fallback (why the feedback page could
        not be made), first release a page that gives the grade instead."""
        if fallback is not None:
            entry = work.entry
            secret = collecting.read_secret(work.inbound)
            if secret:
                release_notice(
                    self.inbound.parent / "feedback", secret, [work.inbound.assignment],
                    "Graded: the feedback page could not be made",
                    f"Your submission of {work.inbound.assignment} was graded: "
                    f"{entry['score']:g}/{entry['max_score']:g} points. Its feedback page "
                    f"could not be made (the notebook's text or outputs were too large or "
                    f"too intricate to render in time), so this page stands in for it. Your "
                    f"instructor can open the graded notebook in the formgrader.")
            work.entry["feedback"] = f"not made: {fallback}"
        del self.busy[work.inbound.account]
        work.entry.update(state="released", released=time.time())
        self.journal.write(work.entry)
        log("released", course=self.course.course_id, student=work.inbound.student,
            assignment=work.inbound.assignment, submission=work.inbound.name,
            after=time.time() - work.entry["time"],
            page=None if fallback is None else "without-feedback")

    def not_graded(self, submission: Inbound, entry: dict, state: str, message: str,
                   title: str, secret: str | None = None) -> None:
        """Journal a submission that is not graded, and release a page that says why."""
        secret = secret or collecting.read_secret(submission)
        if secret:
            release_notice(self.inbound.parent / "feedback", secret, [submission.assignment],
                           title, message)
        entry.update(state=state, released=time.time(), note=message)
        self.journal.write(entry)
        log(state, course=self.course.course_id, student=submission.student,
            assignment=submission.assignment, submission=submission.name,
            reason=entry.get("reason"), max_per_hour=self.max_per_hour)

    def superseded(self, submission: Inbound, entry: dict) -> None:
        self.not_graded(submission, entry, "superseded",
                        f"This submission of {submission.assignment} was not graded: a later "
                        f"submission of yours is already graded, and a grade is only ever "
                        f"replaced by a later submission's.", "Not graded: a later one was")

    def drain(self) -> None:
        """Finish what is in flight and release its feedback, waiting (when stopping)."""
        for work in list(self.busy.values()):
            while work.future is not None and work.stage != "recorded":
                work.future.exception()
                self.take({work.future})
        self.release_graded()
        while self.sending:
            future = next(iter(self.sending))
            future.exception()
            self.released_batch(future)
            self.release_graded()

    # -- the grading run --

    def open_run(self, assignment: str):
        from ..engine.runner import GradingRun

        if self.run is None:
            self.run = GradingRun(self.root, assignment)
            log("run-open", course=self.course.course_id, assignment=assignment)
        return self.run

    def close_if_idle(self) -> None:
        """Close the run once nothing is collected or graded in it (a submission waiting
        for its feedback needs no run)."""
        if self.run is not None and all(work.stage == "recorded"
                                        for work in self.busy.values()):
            self.run.close()
            log("run-closed", course=self.course.course_id, assignment=self.run.assignment)
            self.run = None

    def _fault(self, event: str, work: Work, why: str, error: BaseException) -> None:
        """The grader's own failure: no grade; the submission waits and is tried again."""
        log(event, course=self.course.course_id, student=work.inbound.student,
            assignment=work.inbound.assignment, submission=work.inbound.name, error=why)
        self.busy.pop(work.inbound.account, None)
        self.waiting[work.inbound.name] = work.inbound  # start() goes on from its journal
        self._block(work.inbound.name, error)

    def _block(self, what: str, error: BaseException) -> None:
        """Try an assignment (or one submission, by its name) again later."""
        wait_seconds = 2.0 if isinstance(error, CourseBusy) else RETRY_SECONDS
        self.blocked[what] = time.monotonic() + wait_seconds
        log("retry-later", course=self.course.course_id, waiting=what,
            seconds=wait_seconds, why=" ".join(str(error).split())[:300])
        self.close_if_idle()

    def close(self) -> None:
        if self.run is not None:
            self.run.close()
            self.run = None


def _differing_claim(claimed: str | None, trusted: float) -> str | None:
    """The student's own timestamp, where it is more than CLAIM_SLACK from the trusted time
    (or unreadable): shown beside it in the log."""
    from nbgrader.utils import parse_utc

    try:
        if abs(parse_utc(claimed).timestamp() - trusted) <= CLAIM_SLACK_SECONDS:
            return None
    except (TypeError, ValueError, OverflowError):
        pass
    return claimed


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"

