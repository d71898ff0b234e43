"""Register maps for device makers: ``gateway device docs PROFILE`` prints one.

A device maker (or an integrator checking a controller's manual) needs the profile as the
gateway will use it: every address in decimal and hex, the effective byte and word order, scale,
writable ranges, and the read requests the gateway will send, so a controller that refuses reads
across undefined registers can be spotted before it is on site. MQTT sensor-node profiles get
their payload fields and an example message instead.

The profile validator's part is :func:`spanned_holes`: the merged reads that read through
registers no point defines. Many controllers refuse such a read with exception 2; the gateway
then learns the device's map and reads around them (``gateway.devices.sparse``), but a profile
author sees them here first, with the fix (``max_gap`` under ``[modbus]``).

The output is plain text (fits a terminal, a README or an e-mail) and deterministic: the same
profile always renders to the same bytes, so tests compare it and a diff shows a profile change.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.contract import Telemetry
from gateway.devices.plan import plan_reads
from gateway.devices.profile import PointType
from gateway.devices.sparse import covered_registers, holes, ranges

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.devices.plan import ReadBlock
    from gateway.devices.profile import ModbusPoint, ModbusSettings, MqttField, Profile

# 1-based "Modicon" references of address 0, which device manuals often use instead.
_REFERENCE_BASE = {"holding": "40001", "input": "30001", "coil": "00001", "discrete": "10001"}


def spanned_holes(profile: Profile) -> list[tuple[float, ReadBlock, list[int]]]:
    """The merged reads of a Modbus profile that span registers no point defines.

    Returns:
        ``(poll interval, read, its holes)`` for each such read, in the order of the register
        map's read requests; empty for an MQTT profile or one whose reads have no holes.
    """
    s = profile.settings
    covered = covered_registers(profile.points)
    found = []
    for interval, points in _by_interval(profile):
        for block in plan_reads(points, s):
            gaps = holes(block, covered[block.table])
            if gaps:
                found.append((interval, block, gaps))
    return found


def _by_interval(profile: Profile) -> list[tuple[float, list[ModbusPoint]]]:
    # Points are polled in groups of one interval each, and each group is planned on its own,
    # as the device service does; so these are the requests a device will actually see.
    s = profile.settings
    by_interval: dict[float, list[ModbusPoint]] = {}
    for p in profile.points:
        by_interval.setdefault(p.poll_s or s.poll_s, []).append(p)
    return sorted(by_interval.items())


def register_map(profile: Profile) -> str:
    """Render a profile as a plain-text document for device makers.

    Args:
        profile: a validated profile (Modbus or MQTT).

    Returns:
        The document, ending with a newline.
    """
    info = profile.profile
    lines = [
        f"{info.vendor} {info.model} ({info.kind.value})",
        f"profile: {info.id}, protocol: {info.protocol}",
    ]
    if info.description:
        lines.append(info.description)
    lines.append("")
    if info.protocol == "mqtt":
        lines += _mqtt_part(profile)
    else:
        lines += _modbus_part(profile)
    return "\n".join(lines).rstrip("\n") + "\n"


def _modbus_part(profile: Profile) -> list[str]:
    s = profile.settings
    lines = [
        "Connection",
        f"  default byte order {s.byte_order}, word order {s.word_order}",
        f"  poll every {_num(s.poll_s)} s unless a point says otherwise",
        f"  answer expected within {_num(s.timeout_s)} s",
        f"  at most {s.max_registers_per_read} registers or {s.max_bits_per_read} bits per read",
        f"  up to {s.max_gap} unused registers are read through to merge two reads into one",
        f"  at most {s.writes_per_minute} writes per minute",
        "",
        "Addresses are 0-based protocol addresses. Manuals that count from 1 call address 0",
        "  " + ", ".join(f"{ref} ({t})" for t, ref in _REFERENCE_BASE.items()) + ".",
        "Engineering value = raw * scale + offset; writes outside the write range are refused.",
        "",
        "Points",
    ]
    header = (
        "id", "name", "table", "address", "type", "regs", "byte/word order",
        "scale", "offset", "unit", "access", "write range", "poll",
    )  # fmt: skip
    rows = [_point_row(p, s) for p in profile.points]
    lines += _table(header, rows)
    lines += _food_safety([p.id for p in profile.points if p.food_safety])
    enums = [p for p in profile.points if p.enum]
    if enums:
        lines += ["", "Enum labels (raw value = meaning)"]
        lines += [f"  {p.id}: {_enum_text(p.enum)}" for p in enums]
    described = [p for p in profile.points if p.description]
    if described:
        lines += ["", "Notes"]
        lines += [f"  {p.id}: {p.description}" for p in described]
    lines += ["", "Read requests, one per line (a site may set its own poll interval per device)"]
    for interval, points in _by_interval(profile):
        lines.append(f"  every {_num(interval)} s")
        lines += [f"    {_block_text(b)}" for b in plan_reads(points, s)]
    spanned = spanned_holes(profile)
    if spanned:
        lines += [
            "",
            "Reads through registers no point defines (a controller that refuses them answers",
            "exception 2: the gateway then reads around them; max_gap below the smallest of",
            "these, or 0, saves that first refusal)",
        ]
        lines += [
            f"  every {_num(interval)} s: {b.table.value} {b.start}..{b.start + b.count - 1} "
            f"reads through {ranges(gaps)}"
            for interval, b, gaps in spanned
        ]
    return lines


def _block_text(block: ReadBlock) -> str:
    last = block.start + block.count - 1
    unit = "bit" if block.table.is_bits else "register"
    unit += "" if block.count == 1 else "s"
    ids = ", ".join(dict.fromkeys(p.id for p in block.points))
    return (
        f"{block.table.value} {block.start}..{last} (0x{block.start:04X}..0x{last:04X}), "
        f"{block.count} {unit}: {ids}"
    )


def _point_row(p: ModbusPoint, s: ModbusSettings) -> tuple[str, ...]:
    numeric = p.type not in (PointType.BIT, PointType.STRING)
    if p.table.is_bits:
        type_text = "bit"
    elif p.type is PointType.BIT:
        type_text = f"bit {p.bit}"
    else:
        type_text = p.type.value
    return (
        p.id,
        p.name,
        p.table.value,
        f"{p.address} (0x{p.address:04X})",
        type_text,
        str(p.registers),
        _orders_text(p, s),
        _num(p.scale) if numeric else "-",
        _num(p.offset) if numeric else "-",
        p.unit or "-",
        f"{p.access} (self-clearing)" if p.self_clearing else p.access,
        f"{_num(p.write.min)}..{_num(p.write.max)}" if p.write else "-",
        f"{_num(p.poll_s or s.poll_s)} s",
    )


def _food_safety(ids: list[str]) -> list[str]:
    if not ids:
        return []
    return [
        "",
        f"Food-safety records (kept, never dropped from the telemetry history): {', '.join(ids)}",
    ]


def _orders_text(p: ModbusPoint, s: ModbusSettings) -> str:
    """Effective orders; multi-register numbers also get the usual ABCD layout notation."""
    if p.table.is_bits:
        return "-"
    byte = p.byte_order or s.byte_order
    if p.type is PointType.STRING or p.registers == 1:
        return f"{byte}/-"  # word order only matters between the registers of a number
    word = p.word_order or s.word_order
    letters = "ABCDEFGH"[: 2 * p.registers]
    regs = [letters[i : i + 2] for i in range(0, len(letters), 2)]
    if byte == "little":
        regs = [r[::-1] for r in regs]
    if word == "little":
        regs.reverse()
    return f"{byte}/{word} ({''.join(regs)})"


def _enum_text(enum: dict[str, str]) -> str:
    def key(raw: str) -> tuple[int, float, str]:
        # Numeric raw values sort as numbers ("10" after "9"); anything else after them.
        try:
            return (0, float(raw), raw)
        except ValueError:
            return (1, 0.0, raw)

    return ", ".join(f"{raw} = {enum[raw]}" for raw in sorted(enum, key=key))


def _mqtt_part(profile: Profile) -> list[str]:
    lines = [
        "Topic: rst/{site}/device/{device}/telemetry, QoS 0, one JSON object per reading:",
        '  "v" (message version, 1), "device" (the id in the site file), "at" (UTC time of the',
        '  reading, ISO 8601), "seq" (counts up by one per message), "values" (the fields below).',
        "A reading outside a field's min..max is rejected, as is a missing required field.",
        "",
        'Payload fields (keys of "values")',
    ]
    header = ("id", "name", "type", "unit", "min", "max", "required")
    rows = [
        (
            f.id,
            f.name,
            f.type,
            f.unit or "-",
            "-" if f.min is None else _num(f.min),
            "-" if f.max is None else _num(f.max),
            "yes" if f.required else "no",
        )
        for f in profile.fields
    ]
    lines += _table(header, rows)
    lines += _food_safety([f.id for f in profile.fields if f.food_safety])
    # Built from the wire model itself, so the example cannot drift from the contract.
    example = Telemetry(
        device=f"{profile.profile.id}-1",
        at=datetime(2025, 1, 1, 12, tzinfo=UTC),
        seq=1,
        values={f.id: _example_value(f) for f in profile.fields},
    ).model_dump(mode="json")
    lines += ["", "Example payload", *json.dumps(example, indent=2).splitlines()]
    return lines


def _example_value(f: MqttField) -> float | int | bool | str:
    """A plausible value: the middle of the field's range, so the example passes validation."""
    if f.type == "bool":
        return False
    if f.type == "str":
        return "ok"
    low = f.min if f.min is not None else min(0.0, f.max if f.max is not None else 0.0)
    high = f.max if f.max is not None else max(low, 0.0)
    mid = (low + high) / 2
    if f.type == "int":
        return max(math.floor(mid), math.ceil(low))
    return round(mid, 2)


def _num(x: float) -> str:
    """Numbers as people write them: 1 not 1.0, 0.1 not 0.1000000001."""
    x = float(x)  # an int has no is_integer() before Python 3.12
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
