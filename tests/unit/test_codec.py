"""Raw payloads to typed messages and back (gateway.codec)."""

from __future__ import annotations

import json
import operator
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import (
    MAX_ERRORS,
    DecodeFailure,
    decode_command,
    decode_heartbeat,
    decode_kds_event,
    decode_order,
    encode,
    error_path,
)
from gateway.contract import (
    Dining,
    FieldError,
    FireCourse,
    Heartbeat,
    KdsAction,
    KdsEvent,
    Menu,
    ModifyLine,
    OrderLine,
    OrderReply,
    OrderRequest,
    ReplyStatus,
    VoidLine,
)

LIMIT = 65_536
OID = "6f1c2b0e-9f3a-4c1d-8e2b-0a1b2c3d4e5f"
CID = "0d3e1f2a-5b6c-4d7e-8f90-a1b2c3d4e5f6"
TID = "11111111-2222-4333-8444-555555555555"


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def order_json(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "order_id": OID,
        "table": "T1",
        "items": [{"line_id": "1", "item": "burger", "qty": 2, "modifiers": ["rare"]}],
        "placed_at": "2026-01-01T19:00:00Z",
    }
    data.update(over)
    return data


def failure(result: object) -> DecodeFailure:
    assert isinstance(result, DecodeFailure), result
    return result


def paths(result: object) -> dict[str, str]:
    return {e.path: e.message for e in failure(result).errors}


# --- orders --------------------------------------------------------------------------------


def test_decodes_a_valid_order() -> None:
    req = decode_order(raw(order_json(dining="takeaway")), LIMIT)
    assert isinstance(req, OrderRequest)
    assert req.order_id == UUID(OID)
    assert req.dining is Dining.TAKEAWAY
    assert req.items[0] == OrderLine(line_id="1", item="burger", qty=2, modifiers=["rare"])


def test_a_tablet_sent_price_is_rejected_at_its_path_with_a_clear_message() -> None:
    data = order_json()
    data["items"].append({"line_id": "2", "item": "cola", "qty": 1, "price": 1})
    data["items"][0]["price"] = 1
    result = failure(decode_order(raw(data), LIMIT))
    assert result.reason == "schema"
    assert result.id == UUID(OID)  # so the rejection can name the order
    assert paths(result) == {
        "items[0].price": "prices are set by the gateway's menu; remove 'price'",
        "items[1].price": "prices are set by the gateway's menu; remove 'price'",
    }


def test_other_gateway_owned_and_unknown_fields() -> None:
    errors = paths(decode_order(raw(order_json(total=5, tip=1)), LIMIT))
    assert errors["total"] == "totals are computed by the gateway from its menu; remove 'total'"
    assert "unknown field 'tip'" in errors["tip"]


def test_schema_errors_have_paths_and_readable_messages() -> None:
    data = order_json(table="T 1")
    data["items"] = [{"line_id": "1", "item": "burger", "qty": "many"}, {"line_id": "2"}]
    del data["placed_at"]
    errors = paths(decode_order(raw(data), LIMIT))
    assert set(errors) == {"table", "items[0].qty", "items[1].item", "items[1].qty", "placed_at"}
    assert "no spaces" in errors["table"]
    assert errors["placed_at"] == "required; add it"


def test_unreadable_order_id_gives_no_id() -> None:
    assert failure(decode_order(raw(order_json(order_id="nope", table=5)), LIMIT)).id is None
    assert failure(decode_order(raw({"items": []}), LIMIT)).id is None


def test_unknown_contract_version_is_rejected() -> None:
    assert "v" in paths(decode_order(raw(order_json(v=2)), LIMIT))


def test_too_large_is_refused_before_parsing() -> None:
    payload = raw(order_json(items=[{"line_id": "x"}] * 100))
    result = failure(decode_order(payload, len(payload) - 1))
    assert (result.reason, result.id) == ("too_large", None)
    message = f"payload is {len(payload)} bytes; the limit is {len(payload) - 1}"
    assert result.errors == (FieldError(path="", message=message),)
    assert not isinstance(decode_order(raw(order_json()), len(raw(order_json()))), DecodeFailure)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe\x00",
        b'{"order_id": "' + OID.encode() + b'"',  # truncated: the id is not trusted
        b"{'single': 'quotes'}",
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"qty": ' + b"9" * 5000 + b"}",
        b'{"table": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b"\xef\xbb\xbf{}",  # a byte-order mark is not JSON
    ],
)
def test_not_json(payload: bytes) -> None:
    result = failure(decode_order(payload, LIMIT))
    assert (result.reason, result.id) == ("not_json", None)
    assert result.errors[0].path == ""


@pytest.mark.parametrize("payload", [b"[]", b"[1, 2]", b'"order"', b"12", b"null", b" true "])
def test_not_an_object(payload: bytes) -> None:
    for decode in (decode_order, decode_command, decode_kds_event, decode_heartbeat):
        result = failure(decode(payload, LIMIT))
        assert result.reason == "not_object"
        assert "JSON object" in result.errors[0].message


def test_nan_and_huge_numbers_are_schema_errors_not_crashes() -> None:
    data = order_json()
    data["items"][0]["qty"] = float("nan")
    assert "items[0].qty" in paths(decode_order(raw(data), LIMIT))
    huge = raw(order_json()).replace(b'"qty": 2', b'"qty": ' + b"9" * 400)
    result = decode_order(huge, LIMIT)
    # A 400-digit qty is a valid int: the order validator calls it absurd, the codec does not.
    assert isinstance(result, OrderRequest)
    assert result.items[0].qty == int("9" * 400)


def test_error_list_is_capped() -> None:
    data = order_json(items=[{"line_id": "a", "item": "b", "qty": "x"}] * 200)
    result = failure(decode_order(raw(data), LIMIT))
    assert len(result.errors) == MAX_ERRORS + 1
    assert result.errors[-1] == FieldError(path="", message="... and 150 more errors")


# --- commands ------------------------------------------------------------------------------


def test_decodes_each_command() -> None:
    base = {"command_id": CID, "order_id": OID}
    fire = decode_command(raw({**base, "command": "fire_course", "course": 2}), LIMIT)
    assert isinstance(fire, FireCourse)
    assert fire.course == 2
    void = decode_command(raw({**base, "command": "void_line", "line_id": "3"}), LIMIT)
    assert isinstance(void, VoidLine)
    modify = decode_command(
        raw({**base, "command": "modify_line", "line_id": "3", "qty": 4}), LIMIT
    )
    assert isinstance(modify, ModifyLine)
    assert (modify.qty, modify.modifiers) == (4, None)


def test_command_error_paths_are_top_level_and_name_the_command_id() -> None:
    result = failure(decode_command(raw({"command": "fire_course", "command_id": CID}), LIMIT))
    assert result.id == UUID(CID)
    assert set(paths(result)) == {"order_id", "course"}


def test_missing_or_unknown_command() -> None:
    missing = failure(decode_command(raw({"command_id": CID}), LIMIT))
    assert missing.id == UUID(CID)
    assert paths(missing) == {
        "command": "missing 'command': use one of fire_course, void_line, modify_line"
    }
    unknown = paths(decode_command(raw({"command": "refund"}), LIMIT))
    assert unknown == {
        "command": "unknown command 'refund': use one of fire_course, void_line, modify_line"
    }


def test_a_command_cannot_set_a_price() -> None:
    data = {"command": "modify_line", "command_id": CID, "order_id": OID, "line_id": "1"}
    errors = paths(decode_command(raw({**data, "price": 0}), LIMIT))
    assert errors == {"price": "prices are set by the gateway's menu; remove 'price'"}


# --- screens -------------------------------------------------------------------------------


def test_decodes_kds_events_and_heartbeats() -> None:
    event = decode_kds_event(raw({"ticket_id": TID, "version": 3, "action": "bump"}), LIMIT)
    assert event == KdsEvent(ticket_id=UUID(TID), version=3, action=KdsAction.BUMP)
    beat = decode_heartbeat(raw({"device": "kds-grill"}), LIMIT)
    assert beat == Heartbeat(device="kds-grill")


def test_bad_kds_event_and_heartbeat() -> None:
    bad = failure(decode_kds_event(raw({"ticket_id": TID, "version": 0, "action": "eat"}), LIMIT))
    assert (bad.id, set(paths(bad))) == (None, {"version", "action"})
    assert set(paths(decode_heartbeat(raw({"device": "a/b"}), LIMIT))) == {"device"}


# --- encode --------------------------------------------------------------------------------


def test_encode_is_compact_utf8_json() -> None:
    reply = OrderReply(order_id=UUID(OID), status=ReplyStatus.REJECTED, errors=[])
    assert encode(reply) == (
        b'{"v":1,"order_id":"' + OID.encode() + b'","status":"rejected","errors":[],"total":null}'
    )
    menu = Menu(site="s", languages=["it"], items=[], published_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert encode(menu.model_copy(update={"site": "caffè"})).count("caffè".encode()) == 1


def test_error_path() -> None:
    assert error_path(()) == ""
    assert error_path(("items", 2, "qty")) == "items[2].qty"
    assert error_path(("items", 0, "modifiers", 3)) == "items[0].modifiers[3]"
    assert error_path((0, "a")) == "[0].a"


# --- properties ------------------------------------------------------------------------------

DECODERS = [decode_order, decode_command, decode_kds_event, decode_heartbeat]
TYPED = (OrderRequest, FireCourse, VoidLine, ModifyLine, KdsEvent, Heartbeat, DecodeFailure)
FIELDS = [
    "v", "order_id", "table", "items", "placed_at", "dining", "line_id", "item", "qty",
    "modifiers", "course", "note", "command", "command_id", "ticket_id", "version", "action",
    "device", "sent_at", "price",
]  # fmt: skip


def _check_result(result: object) -> None:
    assert isinstance(result, TYPED)
    if isinstance(result, DecodeFailure):
        assert result.reason in {"too_large", "not_json", "not_object", "schema"}
        assert result.errors
        assert all(isinstance(e, FieldError) for e in result.errors)


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from(DECODERS), st.integers(1, 400))
def test_decoders_never_raise_on_arbitrary_bytes(payload: bytes, decode: Any, limit: int) -> None:
    _check_result(decode(payload, limit))


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # includes NaN and infinities
    | st.text(max_size=20)
    | st.uuids().map(str)
    | st.sampled_from(["fire_course", "void_line", "modify_line", "bump", "2026-01-01T19:00:00Z"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_json, st.sampled_from(DECODERS))
def test_decoders_never_raise_on_arbitrary_json(value: object, decode: Any) -> None:
    payload = json.dumps(value).encode()
    _check_result(decode(payload, LIMIT))


_ALNUM = string.ascii_letters + string.digits
# Cheaper than st.from_regex, same language: the contract's WireId.
_ids = st.builds(operator.add, st.sampled_from(_ALNUM), st.text(_ALNUM + "_.-", max_size=12))
# Tablets must send an offset (contract: AwareDatetime), so only aware times round-trip.
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
_lines = st.builds(
    OrderLine,
    line_id=_ids,
    item=_ids,
    qty=st.integers(),
    modifiers=st.lists(_ids, max_size=20),
    course=st.none() | st.integers(),
    note=st.none() | st.text(max_size=200),
)
_orders = st.builds(
    OrderRequest,
    order_id=st.uuids(),
    table=_ids,
    items=st.lists(_lines, min_size=1, max_size=5),
    placed_at=st.datetimes(
        # hypothesis takes naive bounds and adds the zone itself
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=_zones,
    ),
    dining=st.sampled_from(Dining),
)


@settings(max_examples=150)
@given(_orders)
def test_encode_then_decode_round_trips(req: OrderRequest) -> None:
    assert decode_order(encode(req), LIMIT) == req
