"""The Azure ACI provider: pods as container groups through ARM (``Microsoft.ContainerInstance``).

A lean aiohttp client, not ``azure-mgmt-containerinstance``, measured by ``python -m
bench.eci_client --cloud aci`` (docs/benchmarks.md, section ``aci-client``): against the
simulator's ARM dialect over TLS, 16 calls in flight, the SDK (``aio`` or sync in threads) spent
5.3x to 5.6x the lean client's CPU per container group PUT and 24x to 31x per page of 100 groups
listed, at a fifth or less of its calls per second. ``create`` returns once ARM accepted the PUT
(``201``, ``provisioningState`` ``Pending``) and ``list`` reports the progress, so the
long-running operation is never waited on and the SDK's poller would be unused weight.

Choices ARM forces:

* **Tag names** may not contain ``/``: vnode's ``vnode.io/<word>`` tags are stored as
  ``vnode.io-<word>`` (the spelling the simulator's console also reads) and translated back,
  so ``InstanceState.tags`` are exactly the ones given. Other keys with ``/`` are refused.
* **Names**: a group's name (its instance id here) is ``spec.name`` when ARM accepts it
  (1-63 lowercase letters, digits and single dashes), else a cleaned prefix plus a hash.
* **Idempotency** in ARM is by name (a PUT of a different body *replaces* the group), so a
  create first GETs the group: one made with the same client token (kept in the tag
  ``vnode.io-client-token``) is returned as it is; one of another token still alive is a
  ``Retryable`` error until it is gone.
* **Failover**: a container group has one subnet. The candidates of ``spec.placement`` (or
  ``ACI_SUBNET``, comma-separated) are tried in order; a capacity refusal (``409``
  ``ServiceUnavailable``, ``InsufficientSubnetSize``) moves to the next.
* **Exec**: ARM's exec takes one command *string* and opens a terminal over a WebSocket
  (``terminal.py``). The argv is joined with ``shlex.join`` (so ``sh -c 'echo "a b"'`` keeps its
  argument); ``kubectl exec -it`` is joined to the terminal; ACI reports no exit status
  (``exit_code`` is always 0) and takes no stdin but what is typed on a terminal.
* **Stats**: Azure Monitor's metrics of each container group (``CpuUsage`` in millicores,
  ``MemoryUsage`` in bytes, per container, one-minute averages), one GET per group per scrape,
  16 at a time: the ARM endpoint has no call for many resources (Azure Monitor's batch API is a
  separate regional data-plane host the simulator does not serve). Azure reports rates, not
  cumulative CPU, so the provider keeps the cumulative counter metrics-server needs by
  integrating each container's rate over the time between its own reads.
* **Credentials**: a bearer token from the Azure AD client-credentials flow when
  ``ACI_TENANT_ID``/``ACI_CLIENT_ID``/``ACI_CLIENT_SECRET`` are set, or the fixed one in
  ``ACI_TOKEN`` (the simulator's ``cloud.json`` ``aci.token``); the settings refuse both, or
  part of the three. The Azure AD flow is written but untested here (loopback only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from vnode import errors, models, settings, tokenbucket
from vnode.provider import base, polling, streams
from vnode.provider.aci import client as aci_client
from vnode.provider.aci import config as aci_config
from vnode.provider.aci import mapping, states, terminal

__all__ = ["AciProvider", "create"]

API_VERSION = "2023-05-01"
PROVIDER = "Microsoft.ContainerInstance"
MONITOR_API_VERSION = "2023-10-01"
STATS_CONCURRENCY = 16
NO_PREVIOUS_LOG = "ACI keeps no log of a container's previous run: --previous is not supported by provider aci"

log = logging.getLogger(__name__)


# -- the provider ----------------------------------------------------------------------------


class AciProvider:
    """``base.Provider`` + ``SupportsLogs`` + ``SupportsExec`` + ``SupportsStats`` on Azure Container Instances."""

    name = "aci"
    container_id_scheme = "aci"

    def __init__(
        self,
        config: aci_config.AciSettings,
        *,
        location: str = "",
        create_limit: tuple[float, float] | None = (100.0, 20.0),
        log_poll_interval: float = 2.0,
        timeout: float = 30.0,
    ) -> None:
        if not config.subscription_id or not config.resource_group:
            raise errors.ConfigError("ACI_SUBSCRIPTION_ID and ACI_RESOURCE_GROUP: both must be set for --provider aci")
        if not (config.token or config.client_secret):
            raise errors.ConfigError(
                "ACI_TOKEN, or ACI_TENANT_ID, ACI_CLIENT_ID and ACI_CLIENT_SECRET: one must be set for --provider aci"
            )
        self.config = config
        self.location = location or config.region
        self.base = (config.endpoint or aci_client.ARM).rstrip("/")
        self.groups_url = (
            f"{self.base}/subscriptions/{config.subscription_id}/resourceGroups/{config.resource_group}"
            f"/providers/{PROVIDER}/containerGroups"
        )
        self._token = aci_client.Token(config)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None
        self._buckets = (
            {action: tokenbucket.TokenBucket(*create_limit) for action in ("create", "delete")} if create_limit else {}
        )
        self._log_poll_interval = log_poll_interval
        # (group, container) -> (monotonic time of the last read, cumulative core-nanoseconds)
        self._cpu_totals: dict[tuple[str, str], tuple[float, float]] = {}

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.config.ca_file:
            return ssl.create_default_context(cafile=self.config.ca_file)
        return True

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=64, ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _request(
        self, method: str, url: str, what: str, body: Any = None, query: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        session = self._open()
        token = await self._token.get(session)
        params = {"api-version": API_VERSION, **(query or {})}
        if "api-version=" in url:
            params = {}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(method, url, params=params, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise errors.Unavailable(f"ACI {what}: timed out", code="Timeout") from exc
        except aiohttp.ClientError as exc:
            raise errors.Unavailable(f"ACI {what}: {exc}", code="ConnectionError") from exc
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if status < 300:
            return status, decoded
        error = (decoded or {}).get("error") if isinstance(decoded, dict) else None
        code = str((error or {}).get("code", "")) if isinstance(error, dict) else ""
        message = str((error or {}).get("message", raw[:200])) if isinstance(error, dict) else str(raw[:200])
        raise aci_client.error_of(what, status, code, message, retry_after)

    def _subnet_id(self, candidate: str) -> str:
        if candidate.startswith("/"):
            return candidate
        return (
            f"/subscriptions/{self.config.subscription_id}/resourceGroups/{self.config.resource_group}"
            f"/providers/Microsoft.Network/virtualNetworks/vnode/subnets/{candidate}"
        )

    # --- Provider ---

    async def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            _, group = await self._request("GET", f"{self.groups_url}/{name}", "get")
        except errors.NotFound:
            return None
        return group if isinstance(group, dict) else None

    async def create(self, spec: models.InstanceSpec) -> models.InstanceState:
        name = mapping.arm_name(spec.name)
        existing = await self._existing(name)
        if existing is not None:
            state = states.state_of(existing)
            if (existing.get("tags") or {}).get(mapping.TOKEN_TAG) == spec.client_token:
                return state
            if state.status is not models.InstanceStatus.TERMINATING:
                raise errors.Unavailable(
                    f"ACI: a container group named {name} made for another pod still exists", code="NameInUse"
                )
        candidates = spec.placement.vswitches or tuple(s for s in self.config.subnet.split(",") if s.strip())
        refused: list[str] = []
        code = "ServiceUnavailable"
        for subnet in candidates or ("",):
            body = mapping.group_body(
                spec, location=self.location, subnet=self._subnet_id(subnet.strip()) if subnet else ""
            )
            if "create" in self._buckets:
                await self._buckets["create"].take_turn("ACI PUT containerGroups")
            try:
                _, group = await self._request("PUT", f"{self.groups_url}/{name}", "create", body)
            except errors.CapacityError as exc:
                refused.append(f"{subnet or 'default'}: {exc.code}: {exc.message}")  # ARM's words name what is out
                code = exc.code
                continue
            return (
                states.state_of(group)
                if isinstance(group, dict)
                else models.InstanceState(id=name, status=models.InstanceStatus.SCHEDULING, tags=dict(spec.tags))
            )
        raise errors.CapacityError(f"ACI: no candidate subnet could take it ({'; '.join(refused)})", code=code)

    async def delete(self, instance_id: str, *, grace_seconds: float) -> None:
        if "delete" in self._buckets:
            await self._buckets["delete"].take_turn("ACI DELETE containerGroups")
        try:
            await self._request("DELETE", f"{self.groups_url}/{instance_id}", "delete")
        except errors.NotFound:
            return
        except (errors.InvalidSpec, errors.Conflict, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc

    async def get(self, instance_id: str) -> models.InstanceState:
        _, group = await self._request("GET", f"{self.groups_url}/{instance_id}", "get")
        return states.state_of(group)

    async def list(self, tags: Mapping[str, str]) -> Sequence[models.InstanceState]:
        """Every group of the resource group, paged by ``nextLink``; ARM's list has no tag filter,
        so the tags are matched here."""
        found: list[models.InstanceState] = []
        url = self.groups_url
        while url:
            try:
                _, body = await self._request("GET", url, "list")
            except (errors.InvalidSpec, errors.NotFound, errors.Conflict, errors.CapacityError) as exc:
                raise errors.Unavailable(exc.message, code=exc.code) from exc
            body = body if isinstance(body, dict) else {}
            for group in body.get("value") or ():
                state = states.state_of(group)
                if all(state.tags.get(k) == v for k, v in tags.items()):
                    found.append(state)
            url = str(body.get("nextLink") or "")
            if url and self.config.endpoint and not url.startswith(self.base):
                # The simulator and ARM answer with absolute links on their own host.
                parts = urllib.parse.urlsplit(url)
                url = self.base + parts.path + ("?" + parts.query if parts.query else "")
        return found

    async def changes(self, tags: Mapping[str, str], cursor: base.Cursor | None) -> base.Changes:
        """``base.Provider.changes``: every instance, every time (the node tells what changed)."""
        return base.Changes.listing(await self.list(tags))

    def turns_waiting(self) -> dict[str, int]:
        """``base.SupportsPacing``: the callers in each client-side bucket's line."""
        return tokenbucket.waiting(self._buckets)

    async def quota(self) -> models.Quota:
        # ARM's usage API (locations/{loc}/usages) is not modelled by the simulator: settings only.
        return models.Quota(
            cpu=self.config.quota_cpu, memory_gib=self.config.quota_memory_gib, pods=self.config.quota_pods
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- SupportsLogs ---

    async def _log(self, instance_id: str, container: str, options: base.LogOptions, *, tail: bool) -> bytes:
        query: dict[str, str] = {}
        if tail and options.tail_lines is not None:
            query["tail"] = str(options.tail_lines)
        if options.timestamps:
            query["timestamps"] = "true"
        url = f"{self.groups_url}/{instance_id}/containers/{container}/logs"
        _, body = await self._request("GET", url, "logs", query=query)
        content = str((body or {}).get("content") or "").encode()
        if options.limit_bytes is not None and not options.follow:
            content = content[: options.limit_bytes]
        return content

    async def logs(self, instance_id: str, container: str, options: base.LogOptions) -> AsyncIterator[bytes]:
        """ARM's logs call (tail, timestamps); ``follow`` polls it and yields what was appended. ACI keeps
        no log of a container's previous run: ``--previous`` is refused by name, not answered with this run's."""
        if options.previous:
            raise errors.InvalidSpec(NO_PREVIOUS_LOG)

        async def read(tail: bool) -> bytes:
            return await self._log(instance_id, container, options, tail=tail)

        async for chunk in polling.follow_log(read, follow=options.follow, interval=self._log_poll_interval):
            yield chunk

    # --- SupportsExec ---

    async def _exec_session(
        self, instance_id: str, container: str, command: Sequence[str], size: streams.TerminalSize
    ) -> tuple[str, str]:
        """ARM's exec POST: the terminal's WebSocket URI and password."""
        url = f"{self.groups_url}/{instance_id}/containers/{container}/exec"
        body = {"command": shlex.join(command), "terminalSize": {"rows": size.height, "cols": size.width}}
        try:
            _, answer = await self._request("POST", url, "exec", body)
        except errors.Conflict as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        return str(answer["webSocketUri"]), str(answer["password"])

    async def exec(
        self, instance_id: str, container: str, command: Sequence[str], *, stdin: bytes = b"", tty: bool = False
    ) -> base.ExecOutput:
        if stdin:
            raise errors.InvalidSpec(terminal.NO_PIPE)
        uri, password = await self._exec_session(instance_id, container, command, terminal.DEFAULT_SIZE)
        return base.ExecOutput(exit_code=0, stdout=await terminal.collect(self._open(), uri, password))

    # --- SupportsStreamingExec ---

    async def exec_stream(
        self, instance_id: str, container: str, command: Sequence[str], session: streams.Streams, *, tty: bool
    ) -> int:
        """ACI's terminal joined to the client's streams (``terminal.py``); always exit code 0, ACI gives none."""
        stdin = session.stdin
        if stdin is not None and not tty:
            raise errors.InvalidSpec(terminal.NO_PIPE)
        if command and command[0].rsplit("/", 1)[-1] == "tar":
            raise errors.InvalidSpec(terminal.NO_TAR)  # kubectl cp from the pod: no archive flows through a terminal
        size = await terminal.first_size(session.resizes) if tty else terminal.DEFAULT_SIZE
        uri, password = await self._exec_session(instance_id, container, command, size)
        if stdin is None:
            await session.write_stdout(await terminal.collect(self._open(), uri, password))
        else:
            await terminal.bridge(self._open(), uri, password, session)
        return 0

    # --- SupportsStats ---

    async def stats(self, instance_ids: Sequence[str]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
        """Azure Monitor per group, ``STATS_CONCURRENCY`` at a time. A group ARM does not know is
        left out; failed calls too (logged), and only when every call failed does it raise."""
        ids = list(dict.fromkeys(instance_ids))
        gate = asyncio.Semaphore(STATS_CONCURRENCY)

        async def one(instance_id: str) -> dict[str, dict[str, float]] | None:
            async with gate:
                try:
                    return await self._metrics(instance_id)
                except errors.NotFound:
                    return None

        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        answer: dict[str, dict[str, dict[str, float]]] = {}
        failures: list[Exception] = []
        for instance_id, result in zip(ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures.append(result)
            elif result is not None:
                answer[instance_id] = result
        if failures and not answer:
            raise failures[0]
        if failures:
            log.warning("ACI metrics: %d of %d groups failed: %s", len(failures), len(ids), failures[0])
        asked = set(ids)
        for key in [k for k in self._cpu_totals if k[0] not in asked]:
            del self._cpu_totals[key]  # a group no longer on the node
        return answer

    async def _metrics(self, instance_id: str) -> dict[str, dict[str, float]]:
        """The latest one-minute averages of each container (the default timespan: the last hour,
        up to the cloud's own now), and the cumulative CPU kept here."""
        url = f"{self.groups_url}/{instance_id}/providers/Microsoft.Insights/metrics"
        query = {
            "api-version": MONITOR_API_VERSION,
            "metricnames": "CpuUsage,MemoryUsage",
            "interval": "PT1M",
            "aggregation": "Average",
            "$filter": "containerName eq '*'",
        }
        try:
            _, body = await self._request("GET", url, "metrics", query=query)
        except (errors.InvalidSpec, errors.Conflict, errors.CapacityError) as exc:
            raise errors.Unavailable(exc.message, code=exc.code) from exc
        latest: dict[str, dict[str, float]] = {}
        for metric in (body or {}).get("value") or ():
            name = str((metric.get("name") or {}).get("value", ""))
            for series in metric.get("timeseries") or ():
                container = ""
                for item in series.get("metadatavalues") or ():
                    if str((item.get("name") or {}).get("value", "")).lower() == "containername":
                        container = str(item.get("value", ""))
                points = [p for p in series.get("data") or () if p.get("average") is not None]
                if container and points:
                    latest.setdefault(container, {})[name] = float(points[-1]["average"])
        now = time.monotonic()
        answer: dict[str, dict[str, float]] = {}
        for container, figures in latest.items():
            nanocores = figures.get("CpuUsage", 0.0) * 1e6  # millicores
            last, total = self._cpu_totals.get((instance_id, container), (now, 0.0))
            total += nanocores * (now - last)
            self._cpu_totals[(instance_id, container)] = (now, total)
            answer[container] = {
                "cpu_nanocores": nanocores,
                "cpu_usage_core_nanoseconds": total,
                "memory_working_set_bytes": figures.get("MemoryUsage", 0.0),
            }
        return answer


def create(config: settings.Settings) -> AciProvider:
    """The ``vnode.providers`` entry point: no I/O here, the first call connects."""
    if not isinstance(config.cloud, aci_config.AciSettings):
        raise errors.ConfigError(f"--provider=aci: settings of another provider ({type(config.cloud).__name__})")
    return AciProvider(config.cloud)
