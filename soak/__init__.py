"""The chaos soak: vnode's promises checked together, at scale, under the faults of real clusters.

``python -m soak`` (``make soak``); see ``soak/__main__.py`` for the run and docs/reliability.md for
what it found. Not part of the installed package: it drives a control plane, the simulated cloud and
vnode's daemons as processes, like ``bench``.
"""
