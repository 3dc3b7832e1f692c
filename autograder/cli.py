"""Command line: `python -m autograder COMMAND` (also installed as `backprop-lab`)."""

import argparse
import sys
from pathlib import Path

from .course import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("release", help="regenerate assignments/ and solutions/ from source/")
    demo = commands.add_parser("demo", help="run a simulated class through the nbgrader cycle")
    demo.add_argument("--workdir", type=Path, default=REPO / "build" / "demo",
                      help="where the demo course and exchange go (default: build/demo)")
    args = parser.parse_args(argv)

    if args.command == "release":
        from .course import generate_release
        generate_release()
        print("Regenerated assignments/ and solutions/ from source/.")
    elif args.command == "demo":
        from .demo import run_demo
        run_demo(args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
