"""Register maps for device makers (gateway.devices.docs): exact, stable output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from gateway.contract import Telemetry
from gateway.devices.docs import register_map, spanned_holes
from gateway.devices.profile import BUILTIN_PROFILES, Profile, load_profile

if TYPE_CHECKING:
    from pathlib import Path

FRYER: dict[str, Any] = {
    "profile": {
        "id": "acme-fr2",
        "vendor": "Acme",
        "model": "FR-2",
        "kind": "fryer",
        "protocol": "modbus",
        "description": "Two-vat fryer controller.",
    },
    "modbus": {"word_order": "little"},
    "points": [
        {
            "id": "mode",
            "name": "Vat 1 mode",
            "table": "holding",
            "address": 0,
            "enum": {"0": "off", "10": "error", "2": "melt", "1": "preheat"},
        },
        {
            "id": "set_temp",
            "name": "Vat 1 set temperature",
            "table": "holding",
            "address": 1,
            "type": "i16",
            "scale": 0.1,
            "unit": "°C",
            "access": "rw",
            "write": {"min": 120, "max": 190},
        },
        {"id": "oil_temp", "name": "Vat 1 oil temperature", "table": "input", "address": 0,
         "type": "f32"},
        {"id": "tpm", "name": "Vat 1 oil quality", "table": "input", "address": 20, "type": "f64",
         "byte_order": "little", "unit": "%", "poll_s": 60},
        {"id": "lifted", "name": "Basket lifted", "table": "holding", "address": 5, "type": "bit",
         "bit": 3, "description": "Set while the basket is up."},
        {"id": "serial", "name": "Serial number", "table": "holding", "address": 100,
         "type": "string", "length": 8},
        {"id": "alarm", "name": "Alarm", "table": "discrete", "address": 3, "type": "bit"},
        {"id": "lamp", "name": "Lamp", "table": "coil", "address": 300, "type": "bit",
         "access": "rw", "write": {"min": 0, "max": 1}},
    ],
}  # fmt: skip

FRYER_MAP = """\
Acme FR-2 (fryer)
profile: acme-fr2, protocol: modbus
Two-vat fryer controller.

Connection
  default byte order big, word order little
  poll every 1 s unless a point says otherwise
  answer expected within 0.5 s
  at most 60 registers or 256 bits per read
  up to 8 unused registers are read through to merge two reads into one
  at most 30 writes per minute

Addresses are 0-based protocol addresses. Manuals that count from 1 call address 0
  40001 (holding), 30001 (input), 00001 (coil), 10001 (discrete).
Engineering value = raw * scale + offset; writes outside the write range are refused.

Points
  id        name                   table     address       type    regs  byte/word order           scale  offset  unit  access  write range  poll
  --------  ---------------------  --------  ------------  ------  ----  ------------------------  -----  ------  ----  ------  -----------  ----
  mode      Vat 1 mode             holding   0 (0x0000)    u16     1     big/-                     1      0       -     r       -            1 s
  set_temp  Vat 1 set temperature  holding   1 (0x0001)    i16     1     big/-                     0.1    0       °C    rw      120..190     1 s
  oil_temp  Vat 1 oil temperature  input     0 (0x0000)    f32     2     big/little (CDAB)         1      0       -     r       -            1 s
  tpm       Vat 1 oil quality      input     20 (0x0014)   f64     4     little/little (HGFEDCBA)  1      0       %     r       -            60 s
  lifted    Basket lifted          holding   5 (0x0005)    bit 3   1     big/-                     -      -       -     r       -            1 s
  serial    Serial number          holding   100 (0x0064)  string  8     big/-                     -      -       -     r       -            1 s
  alarm     Alarm                  discrete  3 (0x0003)    bit     1     -                         -      -       -     r       -            1 s
  lamp      Lamp                   coil      300 (0x012C)  bit     1     -                         -      -       -     rw      0..1         1 s

Enum labels (raw value = meaning)
  mode: 0 = off, 1 = preheat, 2 = melt, 10 = error

Notes
  lifted: Set while the basket is up.

Read requests, one per line (a site may set its own poll interval per device)
  every 1 s
    holding 0..5 (0x0000..0x0005), 6 registers: mode, set_temp, lifted
    holding 100..107 (0x0064..0x006B), 8 registers: serial
    input 0..1 (0x0000..0x0001), 2 registers: oil_temp
    coil 300..300 (0x012C..0x012C), 1 bit: lamp
    discrete 3..3 (0x0003..0x0003), 1 bit: alarm
  every 60 s
    input 20..23 (0x0014..0x0017), 4 registers: tpm

Reads through registers no point defines (a controller that refuses them answers
exception 2: the gateway then reads around them; max_gap below the smallest of
these, or 0, saves that first refusal)
  every 1 s: holding 0..5 reads through 2..4
"""  # noqa: E501

PROBE: dict[str, Any] = {
    "profile": {
        "id": "probe-node",
        "vendor": "Kitchen Gateway",
        "model": "Fridge probe node",
        "kind": "probe",
        "protocol": "mqtt",
    },
    "fields": [
        {"id": "temp", "name": "Air temperature", "unit": "°C", "min": -40, "max": 60},
        {"id": "door", "name": "Door open", "type": "bool"},
        {"id": "rssi", "name": "Wi-Fi signal", "type": "int", "unit": "dBm", "min": -100,
         "max": -1, "required": False},
        {"id": "fw", "name": "Firmware version", "type": "str", "required": False},
        {"id": "weight", "name": "Weight", "unit": "g", "min": 0.5},
    ],
}  # fmt: skip

PROBE_MAP = """\
Kitchen Gateway Fridge probe node (probe)
profile: probe-node, protocol: mqtt

Topic: rst/{site}/device/{device}/telemetry, QoS 0, one JSON object per reading:
  "v" (message version, 1), "device" (the id in the site file), "at" (UTC time of the
  reading, ISO 8601), "seq" (counts up by one per message), "values" (the fields below).
A reading outside a field's min..max is rejected, as is a missing required field.

Payload fields (keys of "values")
  id      name              type   unit  min   max  required
  ------  ----------------  -----  ----  ----  ---  --------
  temp    Air temperature   float  °C    -40   60   yes
  door    Door open         bool   -     -     -    yes
  rssi    Wi-Fi signal      int    dBm   -100  -1   no
  fw      Firmware version  str    -     -     -    no
  weight  Weight            float  g     0.5   -    yes

Example payload
{
  "v": 1,
  "device": "probe-node-1",
  "at": "2025-01-01T12:00:00Z",
  "seq": 1,
  "values": {
    "temp": 10.0,
    "door": false,
    "rssi": -51,
    "fw": "ok",
    "weight": 0.5
  }
}
"""


def test_modbus_register_map() -> None:
    assert register_map(Profile.model_validate(FRYER)) == FRYER_MAP


def test_mqtt_payload_document() -> None:
    assert register_map(Profile.model_validate(PROBE)) == PROBE_MAP


def test_output_is_stable() -> None:
    profile = Profile.model_validate(FRYER)
    assert register_map(profile) == register_map(Profile.model_validate(FRYER))
    assert all(line == line.rstrip() for line in register_map(profile).splitlines())


def test_mqtt_example_passes_its_own_ranges() -> None:
    text = register_map(Profile.model_validate(PROBE))
    example = json.loads(text[text.index("Example payload\n") + len("Example payload\n") :])
    Telemetry.model_validate(example)
    types = {"float": float, "int": int, "bool": bool, "str": str}
    for f in PROBE["fields"]:
        value = example["values"][f["id"]]
        assert isinstance(value, types[f.get("type", "float")])
        if "min" in f:
            assert value >= f["min"]
        if "max" in f:
            assert value <= f["max"]


def test_without_optional_sections() -> None:
    bare = {
        "profile": {"id": "t", "vendor": "V", "model": "M", "kind": "level", "protocol": "modbus"},
        "modbus": {"max_registers_per_read": 2, "poll_s": 0.25},
        "points": [{"id": "a", "name": "A", "table": "input", "address": 65535}],
    }
    text = register_map(Profile.model_validate(bare))
    assert "Enum labels" not in text
    assert "Notes" not in text
    assert "poll every 0.25 s" in text
    assert "  every 0.25 s\n    input 65535..65535 (0xFFFF..0xFFFF), 1 register: a\n" in text


@pytest.mark.parametrize("path", sorted(BUILTIN_PROFILES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_profile_renders(path: Path) -> None:
    profile = load_profile(path)
    text = register_map(profile)
    ids = [p.id for p in profile.points] or [f.id for f in profile.fields]
    assert all(f"  {i} " in text for i in ids)


#: Where each shipped profile's merged reads span registers no point defines (worked out by
#: hand from the files; a profile change that adds or removes one must update this).
SHIPPED_HOLES = {
    "combi-oven": ["every 2 s: input 0..8 reads through 6"],
    "fryer-2vat": ["every 1 s: holding 0..11 reads through 2..9"],
    "scale-4ch": ["every 1 s: input 0..17 reads through 9"],
}


@pytest.mark.parametrize("path", sorted(BUILTIN_PROFILES.glob("*.toml")), ids=lambda p: p.stem)
def test_the_validator_names_every_merged_read_across_undefined_registers(path: Path) -> None:
    profile = load_profile(path)
    text = register_map(profile)
    want = SHIPPED_HOLES.get(profile.profile.id, [])
    section = "Reads through registers no point defines"
    assert (section in text) == bool(want)
    got = text.split(section)[1].splitlines()[3:] if want else []
    assert [line.strip() for line in got if line.strip()] == want
    # And independently of the text: every register of every merged read is some point's,
    # except exactly the ones named.
    covered = {
        (p.table, a) for p in profile.points for a in range(p.address, p.address + p.registers)
    }
    named = {(b.table, a) for _, b, gaps in spanned_holes(profile) for a in gaps}
    if profile.profile.protocol == "modbus":
        from gateway.devices.plan import plan_reads  # noqa: PLC0415

        spans = set()
        for interval in {p.poll_s or profile.settings.poll_s for p in profile.points}:
            group = [p for p in profile.points if (p.poll_s or profile.settings.poll_s) == interval]
            for b in plan_reads(group, profile.settings):
                spans |= {(b.table, a) for a in range(b.start, b.start + b.count)}
        assert spans - covered == named


def test_food_safety_points_are_named() -> None:
    said = "Food-safety records (kept, never dropped from the telemetry history): "
    fridge = register_map(load_profile(BUILTIN_PROFILES / "walkin-fridge.toml"))
    assert f"{said}cabinet_temp\n" in fridge
    probe = register_map(load_profile(BUILTIN_PROFILES / "fridge-probe-node.toml"))
    assert f"{said}temp_c\n" in probe
    assert "Food-safety" not in register_map(Profile.model_validate(FRYER))
