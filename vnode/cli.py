"""The ``vnode`` command: one subcommand per part, each defined next to the code it runs.

Subcommands are registered by name and imported lazily, so ``vnode cluster up`` does not pay
for importing the daemon, and a broken optional part cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

import vnode

# name -> (module with `configure(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "cluster": ("vnode.cluster.command", "run a local Kubernetes control plane (up, down, status)"),
    "webhook": ("vnode.webhook.command", "serve the admission webhook that sends labelled pods to virtual nodes"),
    "cloudsim": (
        "vnode.cloudsim.command",
        "run the simulated container cloud (its two cloud APIs, web console) on loopback",
    ),
    "gc": ("vnode.gc", "delete the cloud instances of pods and nodes that no longer exist (--dry-run to look)"),
    "cost": ("vnode.cost", "what this cluster's cloud instances have cost so far, per namespace (an estimate)"),
    "run": ("vnode.daemon_command", "run one virtual node: register it and run its pods as cloud instances"),
    "playground": ("vnode.playground", "the local world of make up: control plane, cloud, webhook, nodes"),
    "operator": ("vnode.operator_command", "run the provider's operator: its custom resources (image caches)"),
}


def build_parser(configured: Collection[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The whole command line; only the subcommands in ``configured`` get their flags (and imports).

    The others are listed by name and help alone, which is all that ``vnode --help`` shows.
    """
    parser = argparse.ArgumentParser(prog="vnode", description="Virtual nodes that run pods as cloud instances.")
    parser.add_argument("--version", action="version", version=f"vnode {vnode.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        if name in configured:
            importlib.import_module(module_name).configure(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # The top level takes no option with a value, so the first plain word names the subcommand.
    chosen = next((word for word in words if not word.startswith("-")), None)
    if chosen == "run":
        from vnode import early_signals  # before the daemon's imports: a scale-in's SIGTERM may come now

        early_signals.capture()
    args = build_parser(configured=() if chosen is None else (chosen,)).parse_args(words)
    module = importlib.import_module(args._module)
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
