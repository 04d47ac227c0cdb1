"""The process provider's in-pod kubeconfig carries the cluster's CA inline.

A container of the chart mounts an emptyDir at /tmp; when the cluster's CA file lives under /tmp
(the test suite's control plane does), a kubeconfig that named the file left the daemon inside
unable to reach the API server ("File does not exist: .../pki/ca.crt"), and its node never Ready.
"""

from __future__ import annotations

import base64
import json
import pathlib

from vnode.provider.process import workspace


def test_the_ca_is_inline_and_the_token_read_from_the_pods_volume(tmp_path: pathlib.Path) -> None:
    ca = tmp_path / "elsewhere" / "ca.crt"
    ca.parent.mkdir()
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
    volume = tmp_path / "token"
    volume.mkdir()
    (volume / "token").write_text("t")
    (volume / "namespace").write_text("apps")
    path = workspace.kubeconfig(tmp_path, volume, "https://10.0.0.1:6443", str(ca))
    assert path is not None
    doc = json.loads(path.read_text())
    (cluster,) = doc["clusters"]
    assert "certificate-authority" not in cluster["cluster"]
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca.read_bytes()
    assert doc["users"][0]["user"]["tokenFile"] == str(volume / "token")
    assert doc["contexts"][0]["context"]["namespace"] == "apps"
