"""The book of per-pod state: what each of the reconciler's writes changes in the shared view and its memory."""

from __future__ import annotations

import dataclasses

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


def test_a_pod_gone_from_the_cache_keeps_its_uid_under_its_key() -> None:
    b = book.Book(book.View(pods={}, states={}))
    b.mark_gone("ns/p", "u")
    assert b.view.gone == {"ns/p": "u"}


def test_a_listing_beginning_clears_the_mark_of_a_made_instance() -> None:
    b = book.Book(book.View(pods={}, states={}))
    b.record("u", STATE, made=True)
    b.listing_begins()
    assert not b.view.created.is_set()
    assert b.view.states == {"u": STATE}


def test_a_listing_replaces_the_states_and_names_the_pods_it_changed_in_order() -> None:
    same, moved, made = STATE, STATE, models.InstanceState(id="eci-3", status=models.InstanceStatus.PENDING)
    equal = models.InstanceState(id="eci-2", status=models.InstanceStatus.RUNNING)
    b = book.Book(book.View(pods={}, states={"same": same, "equal": equal, "moved": moved, "went": STATE}))
    now = models.InstanceState(id="eci-1", status=models.InstanceStatus.SUCCEEDED)
    listing = {"made": made, "same": same, "equal": dataclasses.replace(equal), "moved": now}
    assert b.listed(listing, began=7.0) == ["made", "moved", "went"]
    assert b.view.states == listing
    assert b.view.states is not listing  # a copy: the cache goes on changing
    assert b.view.listed_at == 7.0


def test_a_pushed_state_is_taken_only_when_it_differs() -> None:
    b = book.Book(book.View(pods={}, states={"u": STATE}))
    assert not b.pushed("u", dataclasses.replace(STATE))
    assert b.view.states["u"] is STATE
    now = models.InstanceState(id="eci-1", status=models.InstanceStatus.SUCCEEDED)
    assert b.pushed("u", now)
    assert b.view.states == {"u": now}


def test_a_dropped_instance_leaves_the_view_and_the_memory_stays() -> None:
    b = book.Book(book.View(pods={}, states={"u": STATE}))
    b.remember("u", book.Memory(instance_id="eci-1"))
    b.drop("u")
    b.drop("u")  # twice is no harm: an orphan collected, then its pod released
    assert (b.view.states, b.memory("u")) == ({}, book.Memory(instance_id="eci-1"))


def test_annotations_a_patch_wrote_add_up_in_the_memory() -> None:
    b = book.Book(book.View(pods={}, states={}))
    b.annotated("u", {"a": "1"})
    b.annotated("u", {"b": "2"})
    assert b.memory("u").annotated == {("a", "1"), ("b", "2")}
