"""The daemon's log lines: one JSON object each, with the node, the pod and what else the call site names."""

from __future__ import annotations

import io
import json
import logging
import pathlib
import re

from vnode.observability import logs


def test_a_line_is_one_json_object_with_its_fields() -> None:
    stream = io.StringIO()
    handler = logs.setup("vk-0", stream=stream)
    try:
        log = logging.getLogger("vnode.test")
        log.info("instance %s created", "eci-1", extra={"pod": "ns/web", "instance": "eci-1"})
        log.warning("odd value", extra={"path": pathlib.Path("/api/v1/pods")})  # not JSON: written as its str()
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed ünïcode")
    finally:
        logging.getLogger("vnode").removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("ts"))
    assert first == {"level": "info", "logger": "vnode.test", "msg": "instance eci-1 created", "node": "vk-0",
                     "pod": "ns/web", "instance": "eci-1"}  # fmt: skip
    assert second["path"] == "/api/v1/pods"
    assert third["msg"] == "failed ünïcode"
    assert "ValueError: bad" in third["error"]
