"""``python -m vnode.cloudsim``: the same as ``vnode cloudsim``."""

from __future__ import annotations

import argparse
import sys

from vnode.cloudsim import command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vnode.cloudsim", description="The simulated elastic container cloud."
    )
    command.configure(parser)
    return command.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
