"""The site file's models: one TOML file per restaurant, as one frozen pydantic tree.

This module holds the models and nothing that reads a file, so every module can import the types
without importing the checks. :func:`gateway.site_file.load_site` reads the file and returns a
:class:`SiteConfig`, or raises :class:`gateway.errors.ConfigError` listing *every* problem at once,
each with the key and a fix: schema problems (wrong types, unknown keys) from these models through
:func:`problems_from_validation`, cross-references (unknown group, a station's backup that does
not exist, an item that routes to no station or to two) from
:func:`gateway.site_file.check_site`.

Secrets never need to be in the file: the MQTT password comes from ``GATEWAY_MQTT_PASSWORD`` or from
the file named by ``mqtt.password_file``; the InfluxDB token from ``GATEWAY_INFLUX_TOKEN`` or
``telemetry.influx.token_file`` (a ``token`` key in the file is refused).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)

from gateway.contract import Dining
from gateway.errors import ConfigProblem

#: Identifiers used in topics: must fill a topic level and never be an MQTT wildcard.
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Frozen(BaseModel):
    """Base of every config model: immutable, and unknown keys are errors (typos get caught)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SiteInfo(Frozen):
    """Who this restaurant is."""

    id: Ident
    name: str
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    languages: tuple[str, ...] = Field(default=("en",), min_length=1)


class MqttConfig(Frozen):
    """How to reach the broker. The password is never read from this file."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: Ident | None = None
    username: str | None = None
    password_file: Path | None = None
    keepalive_s: int = Field(default=15, ge=5, le=600)

    def password(self) -> str | None:
        """The broker password: ``GATEWAY_MQTT_PASSWORD`` wins, else ``password_file``'s content."""
        env = os.environ.get("GATEWAY_MQTT_PASSWORD")
        if env:
            return env
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class StateConfig(Frozen):
    """Where durable state lives and how hard it is flushed to disk.

    ``durability = "full"`` fsyncs every batch commit (survives power loss); ``"normal"`` survives a
    crash of the gateway but may lose the last batches on power loss. Commits are batched, so the
    cost of ``full`` is paid once per batch, not per order. ``batch_max`` caps the events in one
    transaction: under load a batch fills while the previous commit is on the disk, so the cap
    bounds throughput when fsyncs are slow (bench/routing: fsyncs of 20-50 ms under load held
    256 at ~1,150 orders/s; 1000 reached ~1,280).
    """

    dir: Path = Path("state")
    durability: Literal["full", "normal"] = "full"
    batch_max: int = Field(default=1000, ge=1, le=10_000)
    min_free_mb: int = Field(default=64, ge=0)


class InfluxConfig(Frozen):
    """Where readings stream to: an InfluxDB 2 (or anything that takes its ``/api/v2/write``).

    The token is never in the site file: ``GATEWAY_INFLUX_TOKEN`` wins, else ``token_file``'s
    content. ``batch_points`` lines go in one write (gzip-compressed); a batch waits at most
    ``flush_s`` for more lines once one is there. ``timeout_s`` bounds one write; a write that
    fails for a reason that may pass (no answer, 5xx, 429) is tried again after a capped, jittered
    backoff, for as long as it takes: the readings wait on disk.
    """

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    org: str = Field(default="kitchen", min_length=1)
    bucket: str = Field(default="kitchen", min_length=1)
    token_file: Path | None = None
    batch_points: int = Field(default=5000, ge=1, le=50_000)
    flush_s: float = Field(default=1.0, gt=0, le=60)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    gzip: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_token_here(cls, data: object) -> object:
        if isinstance(data, dict) and "token" in data:
            msg = (
                "the token is never written in the site file: put it in a file readable only by "
                "the gateway and name it with token_file, or set GATEWAY_INFLUX_TOKEN"
            )
            raise ValueError(msg)
        return data

    def token(self) -> str:
        """The API token: ``GATEWAY_INFLUX_TOKEN`` wins, else ``token_file``'s content, else ""."""
        env = os.environ.get("GATEWAY_INFLUX_TOKEN")
        if env:
            return env
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return ""


class TelemetryConfig(Frozen):
    """How readings are kept on the gateway's disk, and where they stream to.

    Every reading is written to a local history (``{state.dir}/telemetry.db``) before it counts
    as taken; sinks (``influx``) work from it with a durable cursor. ``history_days``: readings
    older than this are pruned daily, once every sink has them (food-safety readings a sink has
    not taken yet are kept until it has). ``max_mb``: past it, the oldest readings of points that
    are not food-safety are dropped, counted per device, with one alert. ``food_safety_cap_mb``:
    past it a critical alert is raised and the food-safety readings are kept anyway.
    ``queue_readings``: readings held in memory while the disk is slow or failing; past it the
    newest non-food-safety readings are refused (counted, alerted).
    """

    history_days: float = Field(default=14, gt=0, le=3660)
    max_mb: float = Field(default=1024, gt=0)
    food_safety_cap_mb: float = Field(default=4096, gt=0)
    queue_readings: int = Field(default=100_000, ge=100, le=10_000_000)
    influx: InfluxConfig | None = None


class HaccpConfig(Frozen):
    """The food-safety (HACCP) record an inspector is given (``gateway.telemetry.haccp``).

    ``interval_min``: one record per food-safety unit per interval, on the clock's marks (:00,
    :15, ...), so it divides 60. ``keep_days``: a monthly segment of the record is retired once
    its newest record is this old (so records are kept between ``keep_days`` and a month more);
    inspectors expect 90 days at least, a year where the local rules say so. ``dir``: where the
    segments live; default ``{state.dir}/haccp``, a relative path is relative to ``state.dir``.
    The record is kept apart from the telemetry history and outlives its ``history_days``.
    """

    interval_min: int = Field(default=15, ge=1, le=60)
    keep_days: int = Field(default=90, le=3660)
    dir: Path | None = None

    @model_validator(mode="after")
    def _sound(self) -> Self:
        if 60 % self.interval_min:
            msg = (
                f"interval_min = {self.interval_min} does not divide the hour: use 1, 2, 3, 4, "
                "5, 6, 10, 12, 15, 20, 30 or 60 (food-safety records are kept every 10-20 min)"
            )
            raise ValueError(msg)
        if self.keep_days < 90:
            msg = (
                f"keep_days = {self.keep_days} is too short: food-safety records are kept 90 "
                "days at least (a year where the local rules ask for it)"
            )
            raise ValueError(msg)
        return self

    def directory(self, state_dir: Path) -> Path:
        """Where the record lives, given the site's (effective) ``state.dir``."""
        return state_dir / "haccp" if self.dir is None else state_dir / self.dir


class DeliveryConfig(Frozen):
    """How tickets are resent until a screen acknowledges them."""

    resend_after_s: float = Field(default=3.0, gt=0, le=300)
    resend_max_interval_s: float = Field(default=30.0, gt=0, le=3600)
    max_payload_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    max_lines_per_order: int = Field(default=200, ge=1)
    max_qty: int = Field(default=50, ge=1)


class KdsConfig(Frozen):
    """Screen behaviour the gateway enforces or advertises."""

    silence_timeout_s: float = Field(default=40.0, gt=0)
    warn_after_s: int = Field(default=300, ge=0)
    late_after_s: int = Field(default=480, ge=0)


class EscalationTimes(Frozen):
    """Seconds an unacknowledged alert waits at each priority before it goes one level up.

    ``0`` means never (the alert stays at that priority until it is acknowledged or clears).
    """

    high: float = Field(default=900, ge=0)
    medium: float = Field(default=3600, ge=0)
    low: float = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _no_critical(cls, data: object) -> object:
        if isinstance(data, dict) and "critical" in data:
            msg = (
                "a critical alert cannot go higher: how often it is said again while nobody "
                "acknowledges it is alerts.renotify_s"
            )
            raise ValueError(msg)
        return data


def _seconds_or_table(value: object) -> str:
    return "table" if isinstance(value, dict | EscalationTimes) else "seconds"


class AlertsConfig(Frozen):
    """When an alert nobody acknowledges is said again, louder (``gateway.telemetry.alerts``).

    ``escalate_after_s``: one number for every priority below critical, or a table
    ``{ high = 900, medium = 3600, low = 0 }``: an alert unacknowledged that long at its
    priority is escalated one level and published again; 0 is never. ``renotify_s``: a critical
    alert (which cannot go higher) unacknowledged is published again this often; 0 is never.

    The defaults: a critical alert (food at risk, tickets nobody sees, orders refused) is said
    again every 10 minutes, often enough that a busy kitchen does not forget it, rarely enough
    not to be noise during a rush; a high one (an appliance reporting its own failure) becomes
    critical after 15 minutes; a medium one (a database unreachable, an unsynchronised clock)
    becomes high after an hour, within the shift; low ones (notes) never escalate.
    """

    # Told apart by shape, so a mistake is reported against the form that was meant.
    escalate_after_s: Annotated[
        Annotated[float, Field(ge=0), Tag("seconds")] | Annotated[EscalationTimes, Tag("table")],
        Discriminator(_seconds_or_table),
    ] = EscalationTimes()
    renotify_s: float = Field(default=600, ge=0)

    def times(self) -> EscalationTimes:
        """The escalation time of each priority below critical."""
        after = self.escalate_after_s
        if isinstance(after, EscalationTimes):
            return after
        return EscalationTimes(high=after, medium=after, low=after)


class StationKind(StrEnum):
    """A prep station cooks its part; the expo sees the whole table."""

    PREP = "prep"
    EXPO = "expo"


class Station(Frozen):
    """A kitchen station with its screen."""

    id: Ident
    name: str
    kind: StationKind = StationKind.PREP
    backup: Ident | None = None


class Course(Frozen):
    """A course; later courses wait for ``fire_course`` or for ``auto_fire_after_s``."""

    number: int = Field(ge=1, le=9)
    name: str
    auto_fire_after_s: float | None = Field(default=None, ge=0)


class Group(Frozen):
    """A menu group (starters, grill, ...)."""

    id: Ident
    names: dict[str, str]
    course: int = 1


class Modifier(Frozen):
    """A modifier a guest may ask for; it may cost, change prep time, or route elsewhere."""

    id: Ident
    names: dict[str, str]
    price: int = Field(default=0, ge=0)  # discounts belong to billing, not to a modifier
    prep_delta_s: int = Field(default=0, ge=-3600, le=3600)


class Item(Frozen):
    """A dish or drink. ``price`` is in minor units (cents) of ``site.currency``."""

    id: Ident
    group: Ident
    names: dict[str, str]
    price: int = Field(ge=0)
    prep_s: int = Field(ge=0, le=4 * 3600)
    course: int | None = None
    allergens: tuple[str, ...] = ()
    modifiers: tuple[Ident, ...] = ()
    available: bool = True


class Route(Frozen):
    """Sends a group, item or modifier to a station, optionally only for some dining options.

    Exactly one of ``group``, ``item`` or ``modifier`` is set. The more specific level wins
    (modifier over item over group); at the same level a rule naming dining options wins over one
    that does not. ``also`` lists stations that get a copy on purpose (saying so is what makes a
    second station legal).
    """

    group: Ident | None = None
    item: Ident | None = None
    modifier: Ident | None = None
    station: Ident
    dining: tuple[Dining, ...] = ()
    also: tuple[Ident, ...] = ()

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = [t for t in (self.group, self.item, self.modifier) if t is not None]
        if len(targets) != 1:
            msg = "a route names exactly one of group, item or modifier"
            raise ValueError(msg)
        return self


class WriteRange(Frozen):
    """Values a write may set (engineering units, inclusive)."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            msg = "write.min must not be greater than write.max"
            raise ValueError(msg)
        return self


RulePriority = Literal["critical", "high", "medium", "low"]
#: What an ``anomaly`` rule learns the baseline of (gateway.devices.rules.AnomalyRule).
AnomalyFeature = Literal["value", "duty", "on_run", "off_run", "rate", "start_level", "stop_level"]


class RuleCondition(Frozen):
    """A state of the device a rule applies in, e.g. ``{ point = "mode", one_of = [1, 3] }``.

    ``equals`` (a bit or an enum value), ``one_of`` (enum values), ``above`` / ``below``
    (numbers, exclusive): every one given must hold.
    """

    point: Ident
    # StrictBool first: pydantic would otherwise read TOML's `1` as a bool.
    equals: StrictBool | int | None = None
    one_of: tuple[int, ...] = ()
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.equals is None and not self.one_of and self.above is None and self.below is None:
            msg = "a condition needs equals, one_of, above or below"
            raise ValueError(msg)
        return self

    def holds(self, value: float | str) -> bool:
        """Whether ``value`` (the point's latest reading) meets the condition."""
        if isinstance(value, str):
            return False
        if self.equals is not None and value != self.equals:
            return False
        if self.one_of and value not in self.one_of:
            return False
        if self.above is not None and not value > self.above:
            return False
        return self.below is None or value < self.below


class RuleOverride(Frozen):
    """A site's change to one of its device's profile rules (``[devices.rules.RULE_ID]``).

    Any field of the rule but its ``kind`` and ``point`` may be given; ``enabled = false`` turns
    the rule off for this device. What is given replaces the profile's value, and the merged rule
    is checked as the profile's own rules are (``gateway.devices.rules.merge_rules``): a field
    the rule's kind does not have is an error naming it.
    """

    name: str | None = None
    priority: RulePriority | None = None
    food_safety: bool | None = None
    enabled: bool | None = None
    when: tuple[RuleCondition, ...] | None = None
    suppress_when: tuple[Ident, ...] | None = None
    suppress_grace_s: float | None = None
    suppress_max_s: float | None = None
    above: float | None = None
    below: float | None = None
    relative_to: Ident | None = None
    hold_s: float | None = None
    hysteresis: float | None = None
    clear_s: float | None = None
    horizon_s: float | None = None
    window_s: float | None = None
    min_rate_per_h: float | None = None
    min_range: float | None = None
    after_s: float | None = None
    of: AnomalyFeature | None = None
    direction: Literal["high", "low"] | None = None
    z: float | None = None
    half_life_s: float | None = None
    warm_up_s: float | None = None
    min_samples: int | None = None
    min_std: float | None = None
    while_point: Ident | None = None
    after: Ident | None = None
    margin: float | None = None
    min_s: float | None = None


class DeviceInstance(Frozen):
    """One appliance or sensor at the site; what it exposes comes from its profile.

    Modbus devices give ``host``/``port``/``unit``; MQTT sensor nodes publish as ``id``.
    ``writes`` may narrow the profile's write ranges (point id -> range), never widen them.
    ``rules`` changes the profile's fault and food-safety rules for this device, by rule id
    (``[devices.rules.cold_holding]`` with ``hold_s = 1200``, or ``enabled = false``).
    """

    id: Ident
    profile: Ident
    station: Ident | None = None
    location: str = ""
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    port: int = Field(default=502, ge=1, le=65_535)
    unit: int = Field(default=1, ge=0, le=247)
    poll_s: float | None = Field(default=None, gt=0, le=3600)
    writes: dict[str, WriteRange] = Field(default_factory=dict)
    rules: dict[str, RuleOverride] = Field(default_factory=dict)


class ActionRule(Frozen):
    """One ``[[appliance_actions]]`` entry: which tickets trigger which appliance write.

    When a ticket for ``station`` with a matching item (``items``, or any item of ``group``)
    fires, ``value`` (or the line's prep time, ``value_from = "prep_s"``) is written to
    ``device``.``point``, through the same write guard as every other write.
    """

    station: Ident
    items: tuple[Ident, ...] = ()
    group: Ident | None = None
    device: Ident
    point: Ident
    # StrictBool first: pydantic would otherwise read TOML's `1` as a bool for a coil.
    value: StrictBool | int | float | None = None
    value_from: Literal["prep_s"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if (self.value is None) == (self.value_from is None):
            msg = "give exactly one of value or value_from"
            raise ValueError(msg)
        if not self.items and self.group is None:
            msg = "give items, group or both: a rule without them would match nothing"
            raise ValueError(msg)
        return self


class Tables(Frozen):
    """The tables orders may name: explicit ids, or ``count`` tables named ``prefix`` + n."""

    ids: tuple[Ident, ...] = ()
    count: int = Field(default=0, ge=0, le=2000)
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,15}$")] = "T"

    def all_ids(self) -> frozenset[str]:
        """Every valid table id."""
        return frozenset(self.ids) | {f"{self.prefix}{n}" for n in range(1, self.count + 1)}


class SiteConfig(Frozen):
    """The whole site file."""

    site: SiteInfo
    mqtt: MqttConfig = MqttConfig()
    state: StateConfig = StateConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    kds: KdsConfig = KdsConfig()
    alerts: AlertsConfig = AlertsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    haccp: HaccpConfig = HaccpConfig()
    tables: Tables
    stations: tuple[Station, ...] = Field(min_length=1)
    courses: tuple[Course, ...] = (Course(number=1, name="main"),)
    groups: tuple[Group, ...] = Field(min_length=1)
    modifiers: tuple[Modifier, ...] = ()
    items: tuple[Item, ...] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(min_length=1)
    devices: tuple[DeviceInstance, ...] = ()
    appliance_actions: tuple[ActionRule, ...] = ()
    #: Extra directories of device profiles (the built-in ones are always loaded).
    devices_profiles: tuple[Path, ...] = ()

    @property
    def client_id(self) -> str:
        """The gateway's MQTT client id (stable, so its broker session survives restarts)."""
        return self.mqtt.client_id or f"gateway-{self.site.id}"

    def item(self, item_id: str) -> Item | None:
        """Look an item up by id."""
        return next((i for i in self.items if i.id == item_id), None)

    def with_overrides(
        self,
        *,
        mqtt_url: str | None = None,
        state_dir: Path | None = None,
        influx_url: str | None = None,
    ) -> Self:
        """Apply command-line / environment overrides, returning a new frozen config.

        ``influx_url`` with no ``[telemetry.influx]`` in the file streams to that URL with the
        default org and bucket.
        """
        mqtt = self.mqtt if mqtt_url is None else self.mqtt.model_copy(update={"url": mqtt_url})
        state = self.state
        if state_dir is not None:
            state = state.model_copy(update={"dir": state_dir})
        telemetry = self.telemetry
        if influx_url is not None:
            influx = (
                InfluxConfig(url=influx_url)
                if telemetry.influx is None
                else telemetry.influx.model_copy(update={"url": influx_url})
            )
            telemetry = telemetry.model_copy(update={"influx": influx})
        return self.model_copy(update={"mqtt": mqtt, "state": state, "telemetry": telemetry})


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_FIXES = {
    "extra_forbidden": "remove the key or correct its spelling",
    "missing": "add the key",
    "string_pattern_mismatch": "use letters, digits, '_', '.' or '-' (no spaces, '#', '+' or '/')",
}


def problems_from_validation(err: ValidationError) -> list[ConfigProblem]:
    """Turn pydantic's errors into problems that name the key and the fix."""
    return [
        ConfigProblem(
            key=_loc(e["loc"]),
            message=e["msg"],
            fix=_FIXES.get(e["type"], "see examples/demo-site.toml for a valid value"),
        )
        for e in err.errors()
    ]
