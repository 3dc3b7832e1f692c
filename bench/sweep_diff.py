"""Compare two `seed_sweep.py --dump` files: every verdict, score, name and message.

    .venv/bin/python bench/sweep_diff.py before.jsonl after.jsonl

Prints the submissions whose failing parts or mistake names differ (the grades), then how
many messages differ with the same grade, by part, with the first of each; exits 1 when a
grade differs. A timed part's message states the speed measured, which differs from run to
run.
"""

import json
import sys
from collections import Counter
from pathlib import Path


def verdicts(path: str) -> dict:
    """{(assignment, student, "visible" or the seed): {part: (mistake, message)}}."""
    found = {}
    for line in Path(path).read_text().splitlines():
        entry = json.loads(line)
        key = (entry["assignment"], entry["student"])
        found[(*key, "visible")] = entry["visible"]
        found.update({(*key, seed): got for seed, got in entry["hidden"].items()})
    return found


def main(before_path: str, after_path: str) -> int:
    before, after = verdicts(before_path), verdicts(after_path)
    if before.keys() != after.keys():
        print(f"different gradings: {len(before)} against {len(after)}")
        return 1
    grades, messages, first = 0, Counter(), {}
    for key, old in before.items():
        new = after[key]
        if {part: name for part, (name, _) in old.items()} \
                != {part: name for part, (name, _) in new.items()}:
            grades += 1
            print(f"grade differs: {key}: {old} -> {new}")
        for part in old.keys() & new.keys():
            if old[part][1] != new[part][1]:
                messages[key[0], part] += 1
                first.setdefault((key[0], part), (old[part][1], new[part][1]))
    print(f"{len(before)} gradings, {grades} with another grade or name")
    for (assignment, part), count in sorted(messages.items()):
        print(f"{count} messages differ in {assignment}/{part}, e.g.\n  "
              + "\n  ".join(first[assignment, part]))
    return 1 if grades else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
