"""Generated orders: real menu, valid by the gateway's own decoder, every malformed kind refused."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.codec import DecodeFailure, decode_order
from gateway.contract import FireCourse, VoidLine
from gateway.routing.rules import Resolution, RouteTable
from gateway.site_file import load_site
from simulators.cli import find_config
from simulators.orders import MALFORMED_KINDS, OrderFactory

CFG = load_site(find_config(Path("examples/demo-site.toml")))


def factory(seed: int = 1) -> OrderFactory:
    return OrderFactory(CFG, random.Random(seed), ManualClock())


def test_valid_orders_decode_and_route_to_one_station() -> None:
    f = factory()
    routes = RouteTable(CFG)
    orders = [f.make() for _ in range(300)]
    for order in orders:
        req = decode_order(order.payload, CFG.delivery.max_payload_bytes)
        assert not isinstance(req, DecodeFailure), req
        assert req.order_id == order.order_id
        assert req.table in CFG.tables.all_ids()
        assert len(req.items) == len(order.lines)
        for line, expected in zip(req.items, order.lines, strict=True):
            item = CFG.item(line.item)
            assert item is not None
            assert item.available
            assert set(line.modifiers) <= set(item.modifiers)
            assert 1 <= line.qty <= CFG.delivery.max_qty
            res = routes.resolve(line.item, line.modifiers, req.dining)
            assert isinstance(res, Resolution)
            assert (res.station, res.also) == (expected.station, expected.also)
    courses = {o.courses for o in orders}
    assert {(1,), (2,), (1, 2), (1, 2, 3)} <= courses
    assert any(b'"note":"' in o.payload for o in orders)
    assert any(o.dining != "dine_in" for o in orders)
    assert len({o.order_id for o in orders}) == 300


def test_same_seed_same_orders() -> None:
    a, b = factory(5), factory(5)
    assert [a.make().payload for _ in range(20)] == [b.make().payload for _ in range(20)]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_refused(kind: str) -> None:
    f = factory()
    for _ in range(10):
        order = f.make(kind)
        assert not order.valid
        assert order.answerable == (kind not in ("broken_json", "oversize"))
        assert order.lines == ()
        decoded = decode_order(order.payload, CFG.delivery.max_payload_bytes)
        if kind in ("unknown_item", "absurd_qty"):
            # Well-formed, refused by the menu check: the reply can name the order.
            assert not isinstance(decoded, DecodeFailure)
            line = decoded.items[0]
            assert CFG.item(line.item) is None or not 1 <= line.qty <= CFG.delivery.max_qty
        else:
            assert isinstance(decoded, DecodeFailure), kind
    with pytest.raises(ValueError, match="unknown order kind"):
        f.make("nonsense")


def test_price_field_and_oversize_are_what_they_say() -> None:
    f = factory()
    priced = json.loads(f.make("price_field").payload)
    assert priced["items"][0]["price"] == 1
    assert len(f.make("oversize").payload) > CFG.delivery.max_payload_bytes


def test_commands_have_their_own_ids() -> None:
    f = factory()
    order = f.make()
    fire_id, fire = f.fire_course(order.order_id, 2)
    void_id, void = f.void_line(order.order_id, "L1")
    assert fire_id != void_id
    assert FireCourse.model_validate_json(fire).course == 2
    assert VoidLine.model_validate_json(void).line_id == "L1"
