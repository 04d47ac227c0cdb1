"""The web console in headless Chromium (Debian's, driven by playwright), and its JSON at scale.

The cloud runs on a paused clock in its own thread; instances are created through the ACI
dialect with the official SDK, and the page must follow their status and cost as simulated
time moves, without a reload.
"""

from __future__ import annotations

import json
import pathlib
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.cloudsim.aci_fixtures import RESOURCE_GROUP, STEPPED, SimThread, group
from vnode.cloudsim import aci, console, model
from vnode.cloudsim.clock import Clock

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def console_sim(tmp_path: pathlib.Path) -> Iterator[SimThread]:
    tls = tmp_path / "tls"
    aci.ensure_tls(tls)
    server = SimThread(tmp_path, tls, clock=Clock.manual(), profile=STEPPED, extra=console.create_app)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def chromium() -> pathlib.Path:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def page(tmp_path: pathlib.Path, chromium: pathlib.Path) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


async def test_the_console_follows_an_instance_from_creation_to_running_and_shows_cost(
    console_sim: SimThread, page: Page, tmp_path: pathlib.Path
) -> None:
    base = f"http://127.0.0.1:{console_sim.extra_port}"
    with console_sim.client() as client:
        client.container_groups.begin_create_or_update(
            RESOURCE_GROUP,
            "demo-web",
            group(tags={"NodeName": "virtual-node-aci-0", "Namespace": "vk", "PodName": "web-0"}),
            polling=False,
        )
    await page.goto(base + "/")
    row = page.locator("#rows tr", has_text="demo-web")
    await expect(row).to_have_count(1, timeout=10_000)
    await expect(row.locator(".pill")).to_have_text("Scheduling", timeout=10_000)
    await expect(row).to_contain_text("virtual-node-aci-0")
    await expect(row).to_contain_text("vk/web-0")
    await expect(row).to_contain_text("1 vCPU · 2 GiB")
    await expect(page.locator("#t-live")).to_have_text("1")
    await expect(page.locator("#t-cost")).to_have_text("$0.00")

    console_sim.call(lambda c: c.advance(8))  # pulled, created, started: Running
    await expect(row.locator(".pill")).to_have_text("Running", timeout=10_000)
    await expect(page.locator("#t-running")).to_have_text("1")
    ip = console_sim.call(lambda c: next(iter(c.live.values())).ip)
    await expect(row).to_contain_text(ip)

    console_sim.call(lambda c: c.advance(120))
    cost = console_sim.call(lambda c: c.cost(next(iter(c.live.values()))))
    assert cost > 0
    await expect(page.locator("#t-cost")).to_have_attribute("data-usd", str(cost), timeout=10_000)
    await expect(page.locator("#t-cost")).to_have_text(f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}")
    await expect(page.locator("#nodes")).to_contain_text("virtual-node-aci-0")
    vk = page.locator("#namespaces tr", has_text="vk")
    await expect(vk.locator("td").nth(2)).to_have_attribute("data-usd", str(cost), timeout=10_000)
    await expect(page.locator("#link")).to_have_text("live")

    shot = tmp_path / "console.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


async def test_the_console_filters_by_status_and_pages(console_sim: SimThread, page: Page) -> None:
    def make(cloud: Any) -> None:
        vswitches = tuple(cloud.vswitches)
        group_id = next(iter(cloud.groups))
        for i in range(60):
            container = model.ContainerSpec(name="main", image="nginx" if i % 2 else "no-such-image")
            spec = model.InstanceSpec(
                name=f"bulk-{i:02d}", containers=(container,), vswitch_ids=vswitches, security_group_id=group_id
            )
            cloud.create(spec)
        cloud.advance(10)

    console_sim.call(make)
    await page.goto(f"http://127.0.0.1:{console_sim.extra_port}/")
    await expect(page.locator("#range")).to_have_text("1\u201350 of 60", timeout=10_000)
    await expect(page.locator("#rows tr").first).to_contain_text("bulk-59")  # newest first
    await page.click("#next")
    await expect(page.locator("#range")).to_have_text("51\u201360 of 60", timeout=10_000)
    await page.click("#tabs button[data-status=failed]")
    await expect(page.locator("#count")).to_have_text("30 matching", timeout=10_000)
    await expect(page.locator("#rows .pill.failed")).to_have_count(30)
    await page.fill("#search", "bulk-08")  # even numbers have an image that fails to pull
    await expect(page.locator("#rows tr")).to_have_count(1, timeout=10_000)
    await expect(page.locator("#rows tr")).to_contain_text("bulk-08")


def test_the_console_api_stays_small_and_fast_with_ten_thousand_instances(console_sim: SimThread) -> None:
    def make(cloud: Any) -> None:
        vswitches = tuple(cloud.vswitches)
        group_id = next(g.id for g in cloud.groups.values() if g.kind == "enterprise")
        container = (model.ContainerSpec(name="main", image="nginx"),)
        for i in range(10_000):
            tags = (model.Tag("vnode.io/node", f"virtual-node-eci-{i % 4}"), model.Tag("vnode.io/pod-uid", f"uid-{i}"))
            spec = model.InstanceSpec(
                name=f"pod-{i}", containers=container, vswitch_ids=vswitches, security_group_id=group_id, tags=tags
            )
            cloud.create(spec)
        cloud.advance(10)

    console_sim.call(make)
    base = f"http://127.0.0.1:{console_sim.extra_port}/console/api"
    started = time.monotonic()
    summary = _get(base + "/summary")
    page = _get(base + "/instances?limit=50")
    took = time.monotonic() - started
    assert summary["live"] == 10_000
    assert summary["groups"]["running"] == 10_000
    assert summary["nodes"] == {f"virtual-node-eci-{n}": 2_500 for n in range(4)}
    assert page["total"] == 10_000
    assert len(page["items"]) == 50
    assert page["items"][0]["name"] == "pod-9999"
    assert len(json.dumps(page)) < 40_000  # one page, never the whole fleet
    assert len(json.dumps(summary)) < 10_000
    assert took < 2.0
