"""The book of per-pod state: what each of the reconciler's writes changes in the shared view and its memory."""

from __future__ import annotations

from vnode import models
from vnode.node import book

STATE = models.InstanceState(id="eci-1", status=models.InstanceStatus.RUNNING)


def test_a_made_instance_is_in_the_view_and_asks_for_a_listing_soon() -> None:
    b = book.Book(book.View(pods={}, states={}))
    b.record("u", STATE, made=False)
    assert b.view.states == {"u": STATE}
    assert not b.view.created.is_set()
    b.record("u", STATE, made=True)
    assert b.view.created.is_set()


def test_a_written_status_is_remembered_with_the_rest_of_the_memory() -> None:
    b = book.Book(book.View(pods={}, states={}))
    assert b.memory("u") == book.Memory()
    b.remember("u", book.Memory(instance_id="eci-1"))
    b.wrote("u", {"phase": "Running"})
    assert b.memory("u") == book.Memory(instance_id="eci-1", written={"phase": "Running"})


def test_forgetting_a_gone_pod_drops_its_memory_instance_and_gone_mark() -> None:
    b = book.Book(book.View(pods={}, states={"u": STATE}, gone={"ns/p": "u"}))
    b.remember("u", book.Memory(instance_id="eci-1"))
    b.forget("u", key="ns/p")
    assert (b.memory("u"), b.view.states, b.view.gone) == (book.Memory(), {}, {})
