"""Structured logs: one JSON object per line, with the node and (when there is one) the pod as fields.

Call sites pass ``extra={"pod": "ns/name"}``; the node is added by a filter, so no call site
has to repeat it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import msgspec

__all__ = ["JsonFormatter", "setup"]

_FIELDS = ("node", "pod", "instance", "path", "action")
_encoder = msgspec.json.Encoder(enc_hook=str)  # a value JSON has no form for is written as its str()


class JsonFormatter(logging.Formatter):
    """One JSON object per record. A burst logs a line or two per pod: msgspec and a timestamp
    formatted once a second make a line about 3x cheaper than ``json.dumps`` and ``strftime`` each."""

    def __init__(self) -> None:
        super().__init__()
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            record.node = self.node
        return True


def setup(node: str, *, level: str = "INFO", stream: TextIO = sys.stderr) -> logging.Handler:
    """Send vnode's logs as JSON lines to ``stream``; returns the handler (tests remove it)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_NodeFilter(node))
    root = logging.getLogger("vnode")
    root.addHandler(handler)
    root.setLevel(level)
    return handler
