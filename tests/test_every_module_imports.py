"""Every module of the package imports in the test process: the quick loop (`make quick`)
touches each one, those that only run in a subprocess (the command line, the fork server)
or only in the slow tests (the service) included."""

import importlib
import pkgutil
import traceback

import autograder

# Running it is running the command line: `python -m autograder` in test_report and others.
SCRIPTS = {"autograder.__main__"}


def test_every_module_imports():
    names = sorted({m.name for m in pkgutil.walk_packages(autograder.__path__, "autograder.")}
                   - SCRIPTS)
    assert {"autograder.cli", "autograder.service", "autograder.engine.forkserver",
            "autograder.kit.grading"} <= set(names)
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            failed[name] = traceback.format_exc(limit=-3)
    assert failed == {}
