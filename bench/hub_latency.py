"""Submit click to feedback shown, on the hub `make hub` starts, in Chromium (as root).

    .venv/bin/python bench/hub_latency.py --n 20

One student logs in, fetches nn_from_scratch, types two parts, then N times: clicks Submit
in the Assignments tab, then Fetch Feedback until the new submission's "(view feedback)"
link shows. Prints each time and the median (p50). The hub, its accounts (bpb<random>-*)
and its PostgreSQL are removed at the end.
"""

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hub_browser import Person, start_work, submit_until_feedback  # noqa: E402

from autograder.hub import Hub, free_port, remove_abandoned_accounts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="submissions (default 20)")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="hub-bench-", dir="/tmp"))
    remove_abandoned_accounts()
    hub = Hub(run_dir, port=free_port(), prefix=f"bpb{secrets.token_hex(3)}-")
    try:
        hub.setup(say=lambda line: print(line, flush=True))
        hub.start(logged=True)
        person = Person(hub, hub.students[0])
        try:
            start_work(person)
            seconds = []
            for index in range(args.n):
                seconds.append(submit_until_feedback(person, index))
                print(f"submission {index + 1}: {seconds[-1]:.2f} s", flush=True)
        finally:
            person.close()
    finally:
        hub.stop(graceful=False)
        hub.remove_accounts()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"submit click -> feedback shown, {args.n} submissions: p50 "
          f"{statistics.median(seconds):.2f} s, min {min(seconds):.2f} s, max "
          f"{max(seconds):.2f} s")


if __name__ == "__main__":
    main()
