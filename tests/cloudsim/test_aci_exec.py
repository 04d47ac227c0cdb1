"""ACI's exec through the official SDK and a WebSocket client: a terminal, as ACI's is (vnode/cloudsim/aci_exec.py)."""

from __future__ import annotations

import websocket
from azure.mgmt.containerinstance import models as aci_models

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, SimThread, group
from tests.cloudsim.test_aci import aci_sim, tls_dir

__all__ = ["aci_sim", "tls_dir"]  # the fixtures, imported to be used here

RG = RESOURCE_GROUP


def test_exec_returns_a_websocket_that_runs_the_command(aci_sim: SimThread) -> None:
    with aci_sim.client() as client:
        client.container_groups.begin_create_or_update(RG, "shell", group(), polling=False)
        aci_sim.call(lambda c: c.advance(10))
        request = aci_models.ContainerExecRequest(
            command="/bin/sh", terminal_size=aci_models.ContainerExecRequestTerminalSize(rows=24, cols=80)
        )
        answer = client.containers.execute_command(RG, "shell", "main", request)
    assert answer.web_socket_uri.startswith("wss://127.0.0.1:")
    # websocket-client (a dependency of the kubernetes client) is synchronous: its socket closes when we say so.
    ws = websocket.create_connection(
        answer.web_socket_uri, sslopt={"ca_certs": str(aci_sim.tls_dir / "aci-ca.pem")}, timeout=10
    )
    try:
        ws.send(answer.password)
        assert ws.recv() == "# ", "a shell on a terminal: its prompt"
        ws.send("echo hello from aci\r")  # typed, then Enter
        assert ws.recv() == "echo hello from aci\r\n", "the terminal's echo"
        assert ws.recv() == "hello from aci\r\n# "
        ws.send_binary(b"stty size\r")  # azure-aci's provider sends what is typed as binary messages
        assert ws.recv() == "stty size\r\n"
        assert ws.recv() == "24 80\r\n# ", "the size of the request's terminalSize"
        ws.send("exit\r")
        assert ws.recv() == "exit\r\n"
        assert ws.recv() == ""  # the server's close frame
        assert not ws.connected
    finally:
        ws.close()
        # After the server's close frame websocket-client counts itself closed and `close` does nothing: its
        # TLS socket was left to the garbage collector (a ResourceWarning in whichever test ran then).
        ws.shutdown()
