"""The journal: a file per submission, and the one place where a submission's states live.

    seen ──► refused      not graded: a name, an owner, a link or a size the service refuses
      │  └─► limited      not graded: over --max-per-hour (a page says when to submit again)
      │  └─► superseded   not graded: a later submission of that student is already graded
      └──► collected ──► graded ──► released
               └─► refused | superseded

`seen` is not written: a submission without a journal file is new. Each write is atomic and
each state names the only states that may follow it, so a restart carries on from the last
state written: `collected` holds the seed of its hidden cases (a grading cut short is graded
again with the same seed, so the same grade), `graded` its score; `released`, `refused`,
`limited` and `superseded` are final. Files are named by a hash of the inbound folder's
name, which the student chose: no name reaches the file system. A folder refused before it
was read (a name, an owner, not a folder, too many unfinished) costs one appended line in
REFUSED_UNREAD, not a file and a flush to disk: a flood of them stays cheap.
"""

import hashlib
import json
from pathlib import Path

FOLDER = Path("results") / "service"  # in the course root (results/ is git-ignored)
REFUSED_UNREAD = "refused-unread.jsonl"

NEXT_STATES = {
    None: {"refused", "limited", "superseded", "collected"},
    "collected": {"graded", "refused", "superseded"},
    "graded": {"released"},
    "released": set(),
    "refused": set(),
    "limited": set(),
    "superseded": set(),
}
FINAL = frozenset(state for state, after in NEXT_STATES.items() if state and not after)


class Journal:
    """The course's journal, read once when the service starts and kept in memory."""

    def __init__(self, root: Path):
        self.folder = root / FOLDER
        self.entries: dict[str, dict] = {}  # inbound folder name -> its latest entry
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            try:
                entry = json.loads(path.read_text())
                name = entry["submission"]
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a torn or foreign file: that submission counts as new
            if path.name == _file_name(name):
                self.entries[name] = entry
        try:
            lines = (self.folder / REFUSED_UNREAD).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                self.entries.setdefault(entry["submission"], entry)
            except (ValueError, TypeError, KeyError):
                continue  # the line a crash cut short

    def state(self, name: str) -> str | None:
        return self.entries.get(name, {}).get("state")

    def is_final(self, name: str) -> bool:
        return self.state(name) in FINAL

    def write(self, entry: dict) -> None:
        """Write an entry, after checking that its state may follow the one written."""
        from ..engine.protocol import write_atomically  # it imports torch: not at start

        before = self.state(entry["submission"])
        if entry["state"] not in NEXT_STATES[before]:
            raise ValueError(f"journal: {entry['state']!r} cannot follow {before!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.folder / _file_name(entry["submission"]),
                         json.dumps(entry, indent=1, sort_keys=True).encode())
        self.entries[entry["submission"]] = dict(entry)


    def refuse_unread(self, entry: dict) -> None:
        """Journal a folder refused before it was read: one line appended."""
        if self.state(entry["submission"]) is not None:
            raise ValueError("journal: only a new folder can be refused unread")
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / REFUSED_UNREAD, "a") as file:
            file.write(json.dumps({**entry, "state": "refused"}, sort_keys=True) + "\n")
        self.entries[entry["submission"]] = {**entry, "state": "refused"}


def _file_name(submission: str) -> str:
    return hashlib.sha256(submission.encode("utf-8", "surrogateescape")).hexdigest()[:40] \
        + ".json"
