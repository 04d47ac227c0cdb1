"""docs/kubelet-api.md shows the kubectl matrix exactly as tests/kubelet/kubectl_matrix.py declares it."""

from __future__ import annotations

from tests.kubelet import kubectl_matrix as matrix


def test_the_doc_shows_the_matrix_the_tests_run() -> None:
    block = matrix.current_block(matrix.DOC.read_text())
    assert block, f"{matrix.DOC} has no kubectl matrix; run python -m tests.kubelet.kubectl_matrix --write"
    assert block == matrix.render(), "the kubectl matrix drifted; run python -m tests.kubelet.kubectl_matrix --write"


def test_every_cell_is_a_test_and_every_failure_is_explained() -> None:
    cells = matrix.cells()
    assert len({(p, op.name, c.label) for p, op, c in cells}) == len(cells)
    for provider, op, client in cells:
        why = op.failure(provider, client)
        assert not why or matrix.reason(why), (provider, op.name, client.label)
