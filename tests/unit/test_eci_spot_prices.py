"""What each ECI spot instance is billed: the market price at first sighting, one price call per size and zone."""

from __future__ import annotations

from typing import Any

from vnode import errors, models
from vnode.provider.eci import spot


def _state(iid: str, *, zone: str = "cn-hangzhou-h", spot_: bool = True) -> models.InstanceState:
    return models.InstanceState(iid, models.InstanceStatus.RUNNING, cpu=2, memory_gib=4, zone=zone,
                                interruptible=spot_)  # fmt: skip


class Market:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.price = 0.05
        self.down = False

    async def __call__(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        assert action == "DescribeContainerGroupPrice"
        self.calls.append(params)
        if self.down:
            raise errors.Unavailable("price API down", code="ServiceUnavailable")
        items = [
            {"ZoneId": params["ZoneId"], "SpotPrice": self.price, "OriginPrice": 0.2},
            {"ZoneId": "x", "SpotPrice": 9},
        ]
        return {"PriceInfo": {"SpotPrices": {"SpotPrice": items}}}


async def test_each_spot_instance_keeps_the_price_of_its_first_sighting_asked_once_per_size_and_zone() -> None:
    market = Market()
    prices = spot.Prices(market)
    described = {i: _state(i) for i in ("a", "b")} | {
        "c": _state("c", zone="cn-hangzhou-i"),
        "d": _state("d", spot_=False),
    }
    await prices.fill(described)
    assert [described[i].hourly_price for i in "abcd"] == [0.05, 0.05, 0.05, 0.0]
    assert [(c["ZoneId"], c["Cpu"], c["Memory"], c["SpotStrategy"]) for c in market.calls] == [
        ("cn-hangzhou-h", "2", "4", "SpotAsPriceGo"),
        ("cn-hangzhou-i", "2", "4", "SpotAsPriceGo"),
    ]
    market.price = 0.07
    again = {"a": _state("a"), "e": _state("e")}
    await prices.fill(again)
    assert (again["a"].hourly_price, again["e"].hourly_price) == (0.05, 0.05), "bought before; market cached"
    assert len(market.calls) == 2
    prices.forget(["a"])
    market.down = True
    later = {"a": _state("a")}
    await spot.Prices(market).fill(later)
    assert later["a"].hourly_price == 0.0, "price API down: the list price, asked again next time"
