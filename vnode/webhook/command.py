"""``vnode webhook``: serve the mutating admission webhook that sends labelled pods to virtual nodes.

See docs/webhook.md for the modes, labels, TLS and failure policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pathlib
import signal
import sys
from typing import Any

from vnode import errors
from vnode.kube import client, config
from vnode.webhook import certs, registration, service

_STANDARD_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``: the same fields as JSON, for people."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS)
        line = f"{self.formatTime(record)} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=None,  # $KUBECONFIG is read at run time: a default here would be baked into the reference
        help="kubeconfig to use (default $KUBECONFIG; else in-cluster in a pod, else ~/.kube/config)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    _tls_flags(parser)
    _registration_flags(parser)
    parser.add_argument(
        "--deletion-cost",
        type=int,
        default=-100,
        help="pod-deletion-cost of burst pods on virtual nodes (default -100)",
    )
    parser.add_argument(
        "--no-deletion-cost", action="store_true", help="do not run the deletion-cost loop in this replica"
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", default="info")


def _tls_flags(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS (default: a self-managed CA and serving certificate in --cert-dir)")
    tls.add_argument(
        "--cert-dir",
        type=pathlib.Path,
        default=pathlib.Path(".vnode/webhook"),
        help="where the self-managed CA and serving certificate live (default .vnode/webhook)",
    )
    tls.add_argument(
        "--hosts",
        default="",
        help="comma-separated names and IPs for the serving certificate "
        "(default: the Service's DNS names with --service, else 127.0.0.1,localhost)",
    )
    tls.add_argument(
        "--ca-secret",
        metavar="NAMESPACE/NAME",
        help="share the self-managed CA between replicas through this Secret (created if missing)",
    )
    tls.add_argument("--tls-cert-file", type=pathlib.Path, help="serve this certificate (e.g. cert-manager's tls.crt)")
    tls.add_argument("--tls-key-file", type=pathlib.Path, help="its private key (tls.key)")
    tls.add_argument("--ca-file", type=pathlib.Path, help="the CA bundle to register (ca.crt)")
    tls.add_argument(
        "--cert-check-interval",
        type=float,
        default=10.0,
        help="seconds between checks for rotated certificate files (default 10)",
    )


def _registration_flags(parser: argparse.ArgumentParser) -> None:
    reg = parser.add_argument_group("registration (the MutatingWebhookConfiguration)")
    reg.add_argument("--configuration-name", default="vnode-webhook", help="its name (default vnode-webhook)")
    reg.add_argument("--url", help="how the API server reaches us (default https://<host>:<port>/mutate)")
    reg.add_argument(
        "--service", metavar="NAMESPACE/NAME[:PORT]", help="in-cluster: reach us through this Service instead of --url"
    )
    reg.add_argument(
        "--failure-policy",
        choices=("Ignore", "Fail"),
        default="Ignore",
        help="what the API server does when we do not answer (default Ignore: pods are created unchanged)",
    )
    reg.add_argument("--timeout-seconds", type=int, default=3, help="the API server's timeout per call (default 3)")
    reg.add_argument(
        "--namespace-match",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only namespaces with this label as well (repeatable)",
    )
    reg.add_argument("--no-register", action="store_true", help="do not write the configuration (someone else does)")
    reg.add_argument(
        "--resync-interval",
        type=float,
        default=300.0,
        help="seconds between re-applies of the configuration (default 300)",
    )


def _pair(value: str, flag: str) -> tuple[str, str]:
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name:
        raise SystemExit(f"vnode webhook: {flag} must be NAMESPACE/NAME, got {value!r}")
    return namespace, name


def settings_from_args(args: argparse.Namespace) -> service.Settings:
    """Check the flags and turn them into Settings; a bad combination exits with a one-line message."""
    svc = None
    if args.service:
        ref, _, port = args.service.partition(":")
        svc = registration.ServiceRef(*_pair(ref, "--service"), port=int(port or 443))
    if args.url and svc:
        raise SystemExit("vnode webhook: give --url or --service, not both")
    hosts = tuple(h for h in args.hosts.split(",") if h) or (tuple(svc.hosts()) if svc else ("127.0.0.1", "localhost"))
    given = (args.tls_cert_file, args.tls_key_file, args.ca_file)
    tls: service.SelfManagedTLS | service.GivenTLS
    if any(given):
        if not all(given):
            raise SystemExit("vnode webhook: --tls-cert-file, --tls-key-file and --ca-file go together")
        tls = service.GivenTLS(certs.Files(args.tls_cert_file, args.tls_key_file, args.ca_file))
    else:
        secret = _pair(args.ca_secret, "--ca-secret") if args.ca_secret else None
        tls = service.SelfManagedTLS(args.cert_dir.resolve(), hosts, secret)
    reg = None
    if not args.no_register:
        match = {}
        for item in args.namespace_match:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"vnode webhook: --namespace-match must be KEY=VALUE, got {item!r}")
            match[key] = value
        # Listening on every address: the API server on this machine still calls loopback.
        local = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host
        url = None if svc else (args.url or f"https://{local}:{args.port}/mutate")
        try:
            reg = registration.Registration(
                name=args.configuration_name,
                url=url,
                service=svc,
                failure_policy=args.failure_policy,
                timeout_seconds=args.timeout_seconds,
                namespace_match=match,
            )
        except ValueError as exc:
            raise SystemExit(f"vnode webhook: {exc}") from exc
    return service.Settings(
        tls=tls,
        host=args.host,
        port=args.port,
        registration=reg,
        deletion_cost=None if args.no_deletion_cost else args.deletion_cost,
        cert_check_interval=args.cert_check_interval,
        resync_interval=args.resync_interval,
    )


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


async def _serve(settings: service.Settings, kubeconfig: str | None) -> None:
    kube = client.Client(config.load(kubeconfig or ""), field_manager=registration.FIELD_MANAGER)
    try:
        webhook = service.Webhook(settings, kube=kube)
        task = asyncio.ensure_future(webhook.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logging.getLogger(__name__).info("webhook stopped")
    finally:
        await kube.close()
        await asyncio.sleep(0.25)  # TLS transports finish closing on the next loop iterations


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.log_level)
    settings = settings_from_args(args)
    try:
        asyncio.run(_serve(settings, args.kubeconfig or os.environ.get("KUBECONFIG")))
    except (OSError, errors.ConfigError) as exc:  # the port is taken, no kubeconfig, an unreadable file, ...
        print(f"vnode webhook: {exc}", file=sys.stderr)
        return 1
    return 0
