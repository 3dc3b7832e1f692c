"""Where the test suite's CPU goes, every process counted (issue 25).

`/usr/bin/time make test` misses much of it: rusage counts only the children a process
waited for, and a sandbox's processes (bubblewrap's own, the fork server, its children),
Chromium's and the hub's servers end as orphans. This runs the suite as `make test` does
with the kernel's process accounting on (Debian's acct: `apt-get install acct`; root), then
prints the machine's busy core-seconds over the run and what spent them, by kind of process.

    python bench/suite_cpu.py                      # the whole suite, as make test runs it
    python bench/suite_cpu.py -- tests/test_faults.py   # pytest's arguments after --
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = 100  # dump-acct prints CPU times in the kernel's accounting ticks (AHZ)


def busy_seconds() -> float:
    """Core-seconds every CPU of the machine has spent on anything but idling, since boot."""
    # user nice system idle iowait irq softirq steal (guest time is counted in user's)
    fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def processes(accounting: Path) -> list[dict]:
    """One record per ended process: its command name (the kernel's: the name of its last
    thread), CPU seconds, pid, parent and whether it forked without exec."""
    dumped = subprocess.run(["dump-acct", str(accounting)], capture_output=True, text=True,
                            check=True).stdout
    records = []
    for line in dumped.splitlines():
        fields = [field.strip() for field in line.split("|")]
        records.append({"comm": fields[0], "pid": int(fields[9]), "ppid": int(fields[10]),
                        "cpu": (float(fields[2]) + float(fields[3])) / TICKS,
                        "forked": "F" in fields[11]})
    return records


# A process is recorded under its last thread's name: Chromium's and chromedriver's often
# under one of these, a Jupyter kernel's under ZeroMQ's (ZMQbg/...).
CHROMIUM_THREADS = ("chromium", "chromedriver", "ChromeDriver", "Chrome_", "chrome_",
                    "ThreadPool", "HangWatcher", "PerfettoTrace", "CrShutdownDetec",
                    "Thread<", "node")


def kind(record: dict, by_pid: dict[int, dict]) -> str:
    """What the process was for, from its command name and its ancestors'."""
    names = []
    parent = record
    while parent is not None and len(names) < 50:
        names.append(parent["comm"])
        parent = by_pid.get(parent["ppid"])
    if "bwrap" in names:
        return "sandboxes: the fork servers (exec) and the children they fork"
    if record["comm"] in ("nbgrader", "alembic"):
        return "nbgrader commands"
    if record["comm"].startswith(("python", "pip", "dask", "jupyter", "ZMQbg")):
        if record["forked"]:
            return "python, forked without exec"
        return "python processes (each imports what it runs: torch alone is ~2 s)"
    if record["comm"] in ("postgres", "psql", "initdb", "pg_ctl"):
        return "PostgreSQL"
    if any(name.startswith(CHROMIUM_THREADS) for name in names):
        return "Chromium, its driver, node"
    return "other (shells, tools, kernel threads)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pytest_args", nargs="*", help="pytest's arguments (default: make "
                        "test's: -n <cores + 1> --dist loadfile)")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("accton") or not shutil.which("dump-acct"):
        sys.exit("suite_cpu: needs root and process accounting: apt-get install acct")
    if shutil.which("systemctl") and subprocess.run(
            ["systemctl", "is-active", "--quiet", "acct"]).returncode == 0:
        sys.exit("suite_cpu: the machine's process accounting is on (the acct service), and "
                 "this would switch it off: systemctl stop acct, and start it again after")
    pytest_args = args.pytest_args or ["-n", str(os.cpu_count() + 1), "--dist", "loadfile"]
    with tempfile.TemporaryDirectory() as scratch:
        accounting = Path(scratch) / "pacct"
        accounting.touch()
        subprocess.run(["accton", str(accounting)], check=True)
        busy, started = busy_seconds(), time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", *pytest_args],
                                  cwd=REPO)
        finally:
            subprocess.run(["accton", "off"], check=True)
        wall, busy = time.monotonic() - started, busy_seconds() - busy
        records = processes(accounting)
    by_pid = {record["pid"]: record for record in records}
    spent, count = collections.Counter(), collections.Counter()
    for record in records:
        spent[kind(record, by_pid)] += record["cpu"]
        count[kind(record, by_pid)] += 1
    print(f"\npytest: exit {done.returncode}, {wall:.0f} s wall; the machine: {busy:.0f} "
          f"core-seconds busy ({busy / wall / os.cpu_count():.0%} of its {os.cpu_count()} "
          f"cores), {sum(spent.values()):.0f} s of it in processes that ended")
    for name, seconds in spent.most_common():
        print(f"{seconds:8.1f} s {count[name]:6d} processes  {name}")
    starts = sorted(record["cpu"] for record in records if not record["forked"]
                    and record["comm"].startswith(("python", "nbgrader")))
    if starts:
        print(f"python and nbgrader processes started: {len(starts)}, median "
              f"{starts[len(starts) // 2]:.1f} s of CPU each")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
