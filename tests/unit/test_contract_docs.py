"""The committed contract documents match the models, and the guide's examples are valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway import contract
from gateway.contract_docs import (
    WIRE_MODELS,
    build_asyncapi,
    build_schemas,
    render_docs,
    stale_docs,
    to_yaml,
    write_docs,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
_ROW = re.compile(r"^(rst/\S+)\s+(\d)(, ret\.)?\s+:class:`(\w+)`", re.MULTILINE)
_EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)


def _table() -> dict[str, tuple[int, bool, str]]:
    """The topic table in gateway/contract.py's docstring: address -> (qos, retain, model)."""
    rows = {m[1]: (int(m[2]), m[3] is not None, m[4]) for m in _ROW.finditer(contract.__doc__)}
    assert len(rows) == 15, "the topic table in gateway/contract.py changed shape"
    return rows


def _channels() -> dict[str, tuple[int, bool, str]]:
    doc = build_asyncapi()
    found: dict[str, tuple[int, bool, str]] = {}
    for op in doc["operations"].values():
        key = op["channel"]["$ref"].rsplit("/", 1)[1]
        channel = doc["channels"][key]
        (model,) = channel["messages"]
        mqtt = op["bindings"]["mqtt"]
        found[channel["address"]] = (mqtt["qos"], mqtt["retain"], model)
    return found


def test_committed_docs_match_the_models() -> None:
    stale = stale_docs(DOCS)
    assert not stale, (
        "docs/ is out of date with gateway/contract.py; run `gateway contract export` and commit: "
        + ", ".join(str(p.relative_to(DOCS.parent)) for p in stale)
    )


def test_export_is_deterministic(tmp_path: Path) -> None:
    assert render_docs() == render_docs()
    written = write_docs(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == set(render_docs())
    assert stale_docs(tmp_path) == []
    (tmp_path / "schemas" / "Gone.json").write_text("{}\n")
    (tmp_path / "schemas" / "Menu.json").write_text("{}\n")
    assert [p.name for p in stale_docs(tmp_path)] == ["Gone.json", "Menu.json"]
    write_docs(tmp_path)
    assert stale_docs(tmp_path) == []


def test_asyncapi_has_every_topic_of_the_table_with_its_qos_retain_and_model() -> None:
    assert _channels() == _table()


def test_asyncapi_document_shape() -> None:
    doc = build_asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["defaultContentType"] == "application/json"
    assert doc["servers"]["mosquitto"]["protocol"] == "mqtt"
    for key, channel in doc["channels"].items():
        params = set(re.findall(r"\{(\w+)\}", channel["address"]))
        assert set(channel["parameters"]) == params, key
        assert params <= {"site", "device", "station", "order_id"}
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}
    for name in WIRE_MODELS:
        assert doc["components"]["messages"][name]["payload"] == {
            "$ref": f"#/components/schemas/{name}"
        }
    text = to_yaml(doc).lower()
    for rule in (
        "idempotency",
        "exactly one final reply",
        "(ticket_id, version)",
        "replaces",
        "last will",
        "response_topic",
        "correlation_data",
        "64 kib",
        "no prices",
    ):
        assert rule in text, rule


def _resolve(doc: dict[str, object], ref: str) -> object:
    node: object = doc
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict), ref
        node = node[part]
    return node


def test_every_ref_in_the_asyncapi_document_resolves() -> None:
    doc = build_asyncapi()
    stack: list[object] = [doc]
    refs = 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "$ref" in node:
                _resolve(doc, node["$ref"])
                refs += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert refs > 50


def test_schemas_cover_every_wire_model_and_declare_2020_12() -> None:
    schemas = build_schemas()
    assert list(schemas) == [
        "Menu",
        "OrderRequest",
        "OrderReply",
        "TabletCommand",
        "CommandReply",
        "Ticket",
        "KdsEvent",
        "Heartbeat",
        "OrderStatusUpdate",
        "DeviceStatus",
        "Telemetry",
        "Alert",
        "AlertsActive",
        "AlertAck",
        "AlertAckReply",
    ]
    for name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == name
    # Tablets must not send prices: the schema says so as well as the model.
    assert schemas["OrderRequest"]["$defs"]["OrderLine"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("yes", '"yes"'),
        ("#/components", '"#/components"'),
        ("a: b", '"a: b"'),
        ("rst/{site}/menu", '"rst/{site}/menu"'),
        (None, "null"),
        (True, "true"),
        (3, "3"),
    ],
)
def test_yaml_scalars(value: object, expected: str) -> None:
    assert to_yaml({"k": value}) == f"k: {expected}\n"


def test_yaml_blocks() -> None:
    doc = {"a": {"b": [1, {"c": "x", "d": []}], "e": {}}, "f": "one\ntwo\n\nthree"}
    assert to_yaml(doc) == (
        "a:\n  b:\n    - 1\n    - c: x\n      d: []\n  e: {}\nf: |-\n  one\n  two\n\n  three\n"
    )


def _examples() -> list[tuple[str, str]]:
    text = (DOCS / "contract.md").read_text(encoding="utf-8")
    return [(m[1], m[2]) for m in _EXAMPLE.finditer(text)]


def test_the_guide_has_the_examples_a_maker_needs() -> None:
    names = {name for name, _ in _examples()}
    assert {"OrderRequest", "OrderReply", "Ticket", "KdsEvent"} <= names
    assert {"Alert", "AlertsActive", "AlertAck", "AlertAckReply"} <= names
    # Every fenced JSON block is marked, so none escapes validation.
    text = (DOCS / "contract.md").read_text(encoding="utf-8")
    assert text.count("```json") == len(_examples())


@pytest.mark.parametrize(("name", "body"), _examples())
def test_guide_example_validates_against_its_model(name: str, body: str) -> None:
    adapter = WIRE_MODELS[name]
    value = adapter.validate_json(body)
    # Outbound models ignore unknown keys, so also check that nothing was dropped or misspelt.
    assert adapter.dump_python(value, mode="json", exclude_unset=True) == json.loads(body)
