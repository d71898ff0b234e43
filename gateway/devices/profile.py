"""Device profiles: one data file (TOML) per model of appliance or sensor, validated here.

A profile says what a device exposes, never where it is: the site file lists device instances
(``[[devices]]``: id, profile, host/port/unit or MQTT id, station, location) that point at a
profile by id. Profiles ship in ``gateway/devices/profiles/`` and a site may add its own
directories (``devices_profiles`` in the site file).

A Modbus point names its table, address, type, byte and word order, scale and offset, unit, poll
interval and access. Engineering value = raw * scale + offset. Writes are refused unless the point
is ``access = "rw"`` and has a ``write`` range; a site may only narrow that range.

An MQTT profile lists the payload fields a sensor node publishes, with their types and plausible
ranges; readings outside them are rejected like any bad input.

``[[rules]]`` say what is a fault or a food-safety excursion for the kind of device (the models
are in :mod:`gateway.devices.rules`); every point a rule names must exist in the profile.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.config import Ident, WriteRange, problems_from_validation
from gateway.devices.rules import PointKind, Rule, check_rule_points
from gateway.errors import ConfigError, ConfigProblem

#: Where the profiles that ship with the gateway live.
BUILTIN_PROFILES = Path(__file__).with_name("profiles")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Table(StrEnum):
    """The four Modbus data tables."""

    HOLDING = "holding"  # 16-bit registers, read/write (function codes 3, 6, 16)
    INPUT = "input"  # 16-bit registers, read-only (function code 4)
    COIL = "coil"  # bits, read/write (function codes 1, 5, 15)
    DISCRETE = "discrete"  # bits, read-only (function code 2)

    @property
    def is_bits(self) -> bool:
        """Coils and discrete inputs hold single bits, not registers."""
        # A set lookup: naming members (``Table.COIL``) goes through enum's descriptor on every
        # call, and planning and decoding ask this for every point.
        return self in _BIT_TABLES


class PointType(StrEnum):
    """How a point's registers become a value."""

    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    F32 = "f32"
    F64 = "f64"
    BIT = "bit"  # one bit of a register (``bit`` = 0..15), or a coil / discrete input
    STRING = "string"  # ``length`` registers of ASCII, two characters each

    def registers(self, length: int = 1) -> int:
        """How many 16-bit registers a value of this type spans."""
        if self is PointType.STRING:
            return length
        return _TYPE_REGISTERS.get(self, 1)


_BIT_TABLES = frozenset({Table.COIL, Table.DISCRETE})
_TYPE_REGISTERS = {PointType.U32: 2, PointType.I32: 2, PointType.F32: 2, PointType.F64: 4}


Order = Literal["big", "little"]


class ModbusPoint(_Frozen):
    """One value a Modbus device exposes."""

    id: Ident
    name: str
    table: Table
    address: int = Field(ge=0, le=65_535)
    type: PointType = PointType.U16
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int = Field(default=1, ge=1, le=64)  # registers, for strings
    byte_order: Order | None = None  # None: the profile's default
    word_order: Order | None = None
    scale: float = Field(default=1.0, allow_inf_nan=False)
    offset: float = Field(default=0.0, allow_inf_nan=False)
    unit: str = ""
    poll_s: float | None = Field(default=None, gt=0, le=3600)
    access: Literal["r", "rw"] = "r"
    write: WriteRange | None = None
    enum: dict[str, str] = Field(default_factory=dict)  # raw value (as text) -> label
    description: str = ""
    # A HACCP record (a cabinet or core temperature, a final rinse): the telemetry history
    # never drops it to make room, and it is kept until every sink has it.
    food_safety: bool = False
    # A command the device resets once it has acted on it (a start coil): reading it back just
    # after a write says nothing, so a write is confirmed by the device accepting it.
    self_clearing: bool = False

    @model_validator(mode="after")
    def _self_clearing_is_writable(self) -> Self:
        if self.self_clearing and self.access != "rw":
            msg = "only a writable point (access = 'rw') can be self_clearing"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.table.is_bits and self.type is not PointType.BIT:
            msg = f"a {self.table.value} point is a single bit: set type = 'bit'"
            raise ValueError(msg)
        if self.type is PointType.BIT and not self.table.is_bits and self.bit is None:
            msg = "a bit in a register needs 'bit' (0..15)"
            raise ValueError(msg)
        if self.access == "rw" and self.table in (Table.INPUT, Table.DISCRETE):
            msg = f"{self.table.value} points are read-only by protocol: use access = 'r'"
            raise ValueError(msg)
        if self.write is not None and self.access != "rw":
            msg = "a write range needs access = 'rw'"
            raise ValueError(msg)
        if self.access == "rw" and self.write is None:
            msg = "a writable point needs a write range (write = { min = .., max = .. })"
            raise ValueError(msg)
        if self.scale == 0:
            msg = "scale must not be 0 (every raw value would read as the offset)"
            raise ValueError(msg)
        if self.access == "rw" and self.type is PointType.BIT and not self.table.is_bits:
            # Setting one bit would overwrite the other 15 with whatever we last read.
            msg = "a bit inside a holding register cannot be written safely: use a coil"
            raise ValueError(msg)
        if (
            self.table.is_bits
            and self.write is not None
            and (self.write.min < 0 or self.write.max > 1)
        ):
            msg = "a coil's write range is within 0..1"
            raise ValueError(msg)
        if self.address + self.registers - 1 > 65_535:
            msg = "the point runs past register 65535"
            raise ValueError(msg)
        return self

    @property
    def registers(self) -> int:
        """Registers (or bits, for coil/discrete tables) this point spans."""
        return 1 if self.table.is_bits else self.type.registers(self.length)


class ModbusSettings(_Frozen):
    """How to talk to a model of Modbus device."""

    byte_order: Order = "big"
    word_order: Order = "big"
    max_registers_per_read: int = Field(default=60, ge=1, le=125)  # protocol limit is 125
    max_bits_per_read: int = Field(default=256, ge=1, le=2000)
    max_gap: int = Field(default=8, ge=0, le=100)  # unused registers a merged read may span
    poll_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    writes_per_minute: int = Field(default=30, ge=0, le=6000)


class MqttField(_Frozen):
    """One field of an MQTT sensor node's JSON payload."""

    id: Ident
    name: str
    type: Literal["float", "int", "bool", "str"] = "float"
    unit: str = ""
    min: float | None = None  # plausible range: a reading outside it is rejected
    max: float | None = None
    required: bool = True
    food_safety: bool = False  # as ModbusPoint.food_safety


class DeviceKind(StrEnum):
    """What a device is, for people and for the services that consume it."""

    FRYER = "fryer"
    OVEN = "oven"
    FRIDGE = "fridge"
    FREEZER = "freezer"
    DISHWASHER = "dishwasher"
    SCALE = "scale"
    LEVEL = "level"
    PROBE = "probe"


class ProfileInfo(_Frozen):
    """Who made the device and what it is."""

    id: Ident
    vendor: str
    model: str
    kind: DeviceKind
    protocol: Literal["modbus", "mqtt"]
    description: str = ""


class Profile(_Frozen):
    """A whole device profile file."""

    profile: ProfileInfo
    modbus: ModbusSettings | None = None
    points: tuple[ModbusPoint, ...] = ()
    fields: tuple[MqttField, ...] = ()
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _protocol_parts(self) -> Self:
        if self.profile.protocol == "modbus":
            if not self.points or self.fields:
                msg = "a modbus profile has [[points]] and no [[fields]]"
                raise ValueError(msg)
            ids = [p.id for p in self.points]
        else:
            if not self.fields or self.points or self.modbus is not None:
                msg = "an mqtt profile has [[fields]] and no [[points]] or [modbus]"
                raise ValueError(msg)
            ids = [f.id for f in self.fields]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            what = "point" if self.profile.protocol == "modbus" else "field"
            msg = f"duplicate {what} ids: {', '.join(dupes)}"
            raise ValueError(msg)
        s = self.settings
        for p in self.points:
            limit = s.max_bits_per_read if p.table.is_bits else s.max_registers_per_read
            if p.registers > limit:
                # A value split over two reads could tear (half old, half new).
                msg = f"point {p.id} spans {p.registers} registers, over the read limit {limit}"
                raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _rules_name_points(self) -> Self:
        problems = check_rule_points(self.rules, self.point_kinds())
        if problems:
            raise ValueError("; ".join(f"{p.key}: {p.message} (fix: {p.fix})" for p in problems))
        return self

    def point_kinds(self) -> dict[str, PointKind]:
        """Every point (or field) id and what it holds: a bit, a number or text."""
        kinds: dict[str, PointKind] = {}
        for p in self.points:
            bit = p.type is PointType.BIT
            kinds[p.id] = "bool" if bit else "text" if p.type is PointType.STRING else "number"
        for f in self.fields:
            kinds[f.id] = "bool" if f.type == "bool" else "text" if f.type == "str" else "number"
        return kinds

    def poll_interval(self, point_id: str, device_poll_s: float | None = None) -> float | None:
        """How often a Modbus point is read, as the device service polls it.

        Its own ``poll_s``, else the site's for the device, else the profile's; the site's is
        also the fastest. None for an MQTT field: a sensor node publishes when it likes.
        """
        point = self.point(point_id)
        if point is None:
            return None
        if point.poll_s is None:
            return device_poll_s or self.settings.poll_s
        return max(point.poll_s, device_poll_s) if device_poll_s else point.poll_s

    @property
    def settings(self) -> ModbusSettings:
        """Modbus settings (defaults when the file has no [modbus] table)."""
        return self.modbus or ModbusSettings()

    def point(self, point_id: str) -> ModbusPoint | None:
        """A Modbus point by id."""
        return next((p for p in self.points if p.id == point_id), None)


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file; ConfigError lists every problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(
            path, [ConfigProblem("(file)", err.strerror or str(err), "check the path")]
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            path, [ConfigProblem("(file)", f"not valid TOML: {err}", "fix the syntax")]
        ) from None
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(path, problems_from_validation(err)) from None


def load_profiles(dirs: tuple[Path, ...] = ()) -> dict[str, Profile]:
    """Every profile in the built-in directory and ``dirs`` (later ones win), by id."""
    profiles: dict[str, Profile] = {}
    for d in (BUILTIN_PROFILES, *dirs):
        for path in sorted(d.glob("*.toml")):
            p = load_profile(path)
            profiles[p.profile.id] = p
    return profiles
