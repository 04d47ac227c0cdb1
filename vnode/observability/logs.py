"""Structured logs: one JSON object per line, with the node and (when there is one) the pod as fields.

Call sites pass ``extra={"pod": "ns/name"}``; the node is added by a filter, so no call site
has to repeat it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

__all__ = ["JsonFormatter", "setup"]

_FIELDS = ("node", "pod", "instance", "path", "action")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
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
        return json.dumps(entry, default=str)


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
