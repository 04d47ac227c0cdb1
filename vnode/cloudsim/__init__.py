"""The simulated elastic container cloud: a black box behind HTTP, wire-compatible with ECI.

It imports nothing else of vnode. Layers, one job each:

- ``cloud``: the dialect-neutral cloud (regions, zones, vSwitches, security groups,
  instances, billing), built from ``catalog`` (sizes, prices), ``network`` (addresses,
  groups), ``ratelimit``, ``faults``, ``lifecycle`` (profiles of stages) and ``workloads``
  (what containers do), over ``store`` (SQLite) and ``clock`` (scalable simulated time);
- ``eci``: the Alibaba ECI 2018-08-08 RPC dialect (with ``acs3`` signatures);
- ``admin``: the steering API; ``server``: the aiohttp app; ``command``: the CLI.
"""

from __future__ import annotations

__all__ = ["cloud", "errors", "lifecycle", "model", "server"]
