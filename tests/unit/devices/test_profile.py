"""Device profiles (gateway.devices.profile): what a profile file may and may not say."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from gateway.devices.profile import (
    ModbusPoint,
    ModbusSettings,
    PointType,
    Profile,
    Table,
    load_profile,
    load_profiles,
)
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

MODBUS: dict[str, Any] = {
    "profile": {"id": "fr", "vendor": "Acme", "model": "F", "kind": "fryer", "protocol": "modbus"},
    "points": [
        {"id": "temp", "name": "Oil", "table": "input", "address": 0, "type": "i16", "scale": 0.1},
        {"id": "set", "name": "Set", "table": "holding", "address": 0, "access": "rw",
         "write": {"min": 100, "max": 190}},
    ],
}  # fmt: skip
MQTT: dict[str, Any] = {
    "profile": {"id": "pr", "vendor": "Us", "model": "P", "kind": "probe", "protocol": "mqtt"},
    "fields": [{"id": "temp", "name": "Air", "min": -40, "max": 60}],
}

MODBUS_TOML = """\
[profile]
id = "fr"
vendor = "Acme"
model = "F"
kind = "fryer"
protocol = "modbus"

[[points]]
id = "temp"
name = "Oil"
table = "input"
address = 0

[[points]]
id = "set"
name = "Set"
table = "input"
address = 1
access = "rw"
write = { min = 0, max = 10 }
"""


def point(**kw: Any) -> ModbusPoint:
    return ModbusPoint.model_validate(
        {"id": "p", "name": "P", "table": "holding", "address": 0} | kw
    )


def with_point(**kw: Any) -> dict[str, Any]:
    data = copy.deepcopy(MODBUS)
    data["points"][1] |= kw
    return data


def test_valid_profiles() -> None:
    modbus = Profile.model_validate(MODBUS)
    assert modbus.settings == ModbusSettings()  # no [modbus] table: defaults
    assert modbus.point("set") is modbus.points[1]
    assert modbus.point("nope") is None
    assert Profile.model_validate(MQTT).fields[0].type == "float"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"table": "coil"}, "set type = 'bit'"),
        ({"table": "discrete", "type": "u16", "access": "r"}, "set type = 'bit'"),
        ({"type": "bit"}, "needs 'bit'"),
        ({"table": "input", "access": "rw"}, "read-only by protocol"),
        ({"table": "discrete", "type": "bit", "access": "rw"}, "read-only by protocol"),
        ({"access": "r"}, "write range needs access = 'rw'"),
        ({"access": "rw", "write": None}, "needs a write range"),
        ({"address": 65_535, "type": "u32"}, "past register 65535"),
        ({"address": 65_536}, "less than or equal to 65535"),
        ({"bit": 16, "type": "bit"}, "less than or equal to 15"),
        ({"length": 65, "type": "string"}, "less than or equal to 64"),
        ({"write": {"min": 5, "max": 1}}, "write.min must not be greater"),
        ({"byte_order": "middle"}, "'big' or 'little'"),
        ({"id": "has space"}, "should match pattern"),
        ({"poll_s": 0}, "greater than 0"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"scale": 0}, "scale must not be 0"),
        ({"scale": float("nan")}, "finite number"),
        ({"offset": float("inf")}, "finite number"),
        ({"type": "bit", "bit": 3}, "cannot be written safely"),
        ({"table": "coil", "type": "bit", "write": {"min": 0, "max": 2}}, "within 0..1"),
        ({"type": "string", "length": 61, "access": "r", "write": None}, "over the read limit"),
        ({"access": "r", "write": None, "self_clearing": True}, "can be self_clearing"),
    ],
)
def test_point_rules(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Profile.model_validate(with_point(**fields))


def test_allowed_point_shapes() -> None:
    assert point(table="coil", type="bit").registers == 1
    assert point(table="coil", type="bit", access="rw", write={"min": 0, "max": 1}).access == "rw"
    assert point(type="bit", bit=15).registers == 1
    assert point(type="string", length=10).registers == 10
    assert point(type="f64", address=65_532).registers == 4
    assert point(table="input", type="u32").registers == 2


def test_point_type_sizes_and_tables() -> None:
    sizes = {t: t.registers() for t in PointType}
    assert sizes == {
        PointType.U16: 1, PointType.I16: 1, PointType.U32: 2, PointType.I32: 2,
        PointType.F32: 2, PointType.F64: 4, PointType.BIT: 1, PointType.STRING: 1,
    }  # fmt: skip
    assert PointType.STRING.registers(7) == 7
    assert [t for t in Table if t.is_bits] == [Table.COIL, Table.DISCRETE]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_registers_per_read": 126}, "less than or equal to 125"),
        ({"max_registers_per_read": 0}, "greater than or equal to 1"),
        ({"max_bits_per_read": 2001}, "less than or equal to 2000"),
        ({"word_order": "mixed"}, "'big' or 'little'"),
        ({"retries": 3}, "Extra inputs"),
    ],
)
def test_settings_rules(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Profile.model_validate(MODBUS | {"modbus": settings})


def test_duplicate_ids() -> None:
    data = copy.deepcopy(MODBUS)
    data["points"][1]["id"] = "temp"
    with pytest.raises(ValidationError, match="duplicate point ids: temp"):
        Profile.model_validate(data)
    mqtt = copy.deepcopy(MQTT)
    mqtt["fields"].append({"id": "temp", "name": "Again"})
    with pytest.raises(ValidationError, match="duplicate field ids: temp"):
        Profile.model_validate(mqtt)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (MODBUS | {"points": []}, "a modbus profile has \\[\\[points\\]\\]"),
        (MODBUS | {"fields": MQTT["fields"]}, "and no \\[\\[fields\\]\\]"),
        (MQTT | {"fields": []}, "an mqtt profile has \\[\\[fields\\]\\]"),
        (MQTT | {"points": MODBUS["points"]}, "no \\[\\[points\\]\\] or \\[modbus\\]"),
        (MQTT | {"modbus": {}}, "no \\[\\[points\\]\\] or \\[modbus\\]"),
    ],
)
def test_protocol_parts(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Profile.model_validate(data)


def test_profile_info_rules() -> None:
    for bad in ({"kind": "toaster"}, {"protocol": "bacnet"}, {"id": "a/b"}):
        with pytest.raises(ValidationError):
            Profile.model_validate(MQTT | {"profile": MQTT["profile"] | bad})


def test_models_are_frozen() -> None:
    p = point()
    with pytest.raises(ValidationError):
        p.address = 3  # type: ignore[misc]


def test_load_profile_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "fr.toml"
    path.write_text(MODBUS_TOML, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.path == path
    (problem,) = err.value.problems
    assert problem.key == "points[1]"
    assert "read-only by protocol" in problem.message
    assert str(path) in str(err.value)


def test_load_profile_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "fr.toml"
    text = MODBUS_TOML.replace("address = 0", "address = -1").replace(
        'kind = "fryer"', 'kind = "x"'
    )
    path.write_text(
        text.replace("[[points]]\nid", "[[points]]\nspeed = 1\nid", 1), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    keys = {p.key: p for p in err.value.problems}
    assert {"profile.kind", "points[0].address", "points[0].speed"} <= set(keys)
    assert keys["points[0].speed"].fix == "remove the key or correct its spelling"


def test_load_profile_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_profile(tmp_path / "missing.toml")
    assert err.value.problems[0].key == "(file)"
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(broken)


def test_load_profiles_later_directories_win(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for d, vendor in ((first, "First"), (second, "Second")):
        d.mkdir()
        text = MODBUS_TOML.replace('vendor = "Acme"', f'vendor = "{vendor}"')
        valid = text.replace('access = "rw"\nwrite = { min = 0, max = 10 }\n', "")
        (d / "fr.toml").write_text(valid, encoding="utf-8")
    profiles = load_profiles((first, second))
    assert profiles["fr"].profile.vendor == "Second"
    (second / "fr.toml").write_text(MODBUS_TOML, encoding="utf-8")
    with pytest.raises(ConfigError):  # the refusal above, from a site directory
        load_profiles((second,))
