"""Fault and food-safety rules of a device profile (``[[rules]]``), and a site's overrides.

A profile says what is wrong for its kind of device: "cabinet above 5 °C for 30 minutes" for a
walk-in, "final rinse below 82 °C" for a dishwasher. The site file may change a rule for one
device by its id (:class:`gateway.config.RuleOverride`); :func:`merge_rules` applies those and
checks the result as a profile's own rules are checked. The detectors
(``gateway.telemetry.detectors``) are built from the merged rules; this module only describes
them and never imports the telemetry package.

Kinds (each :class:`Rule` has ``id``, ``priority``, ``food_safety``, ``enabled``, ``name``)::

    limit     point above/below a limit (or relative to another point) held for hold_s;
              hysteresis + clear_s before it clears
    trend     the fitted rate of the point over window_s reaches the limit within horizon_s
    recovery  after a disturbance (the door was open) the point does not come back as fast
              as it has learnt it normally does
    flatline  the point moved less than min_range over window_s (a stuck probe)
    silent    no reading for after_s (a hung device, a dead sensor node)
    anomaly   a feature (the value, a duty cycle, the length of on/off runs of a bit, the
              rate of rise while a bit is set, the level at which a bit switches on or off)
              is z standard deviations from its learnt baseline

Point rules may apply only ``when`` the device is in a state (the oven is holding), and may be
suppressed while listed bits are set (``door_open``, ``defrost_active``) plus a grace after they
clear, for at most ``suppress_max_s`` in one stretch: a door left open is no longer a door
opening.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Self

from pydantic import Field, ValidationError, model_validator

from gateway.config import (
    AnomalyFeature,
    Frozen,
    Ident,
    RuleCondition,
    RulePriority,
    problems_from_validation,
)
from gateway.errors import ConfigProblem

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.config import RuleOverride

__all__ = [
    "AnomalyRule",
    "FlatlineRule",
    "LimitRule",
    "PointKind",
    "RecoveryRule",
    "Rule",
    "SilentRule",
    "TrendRule",
    "check_rule_points",
    "merge_rules",
]

#: What a point holds, as far as a rule cares.
PointKind = Literal["bool", "number", "text"]

_Seconds = Annotated[float, Field(ge=0, le=7 * 86_400, allow_inf_nan=False)]
_Span = Annotated[float, Field(gt=0, le=7 * 86_400, allow_inf_nan=False)]
_Number = Annotated[float, Field(allow_inf_nan=False)]


class _Rule(Frozen):
    id: Ident
    name: str = ""
    priority: RulePriority = "medium"
    food_safety: bool = False
    enabled: bool = True


class _PointRule(_Rule):
    point: Ident
    when: tuple[RuleCondition, ...] = ()
    suppress_when: tuple[Ident, ...] = ()
    suppress_grace_s: _Seconds = 0.0
    # A stretch of suppression longer than this stops suppressing: a defrost ends, a door
    # propped open for an hour is a fault, not "a door opening".
    suppress_max_s: _Span = 3_600.0


class _Bound(_PointRule):
    above: _Number | None = None
    below: _Number | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.above is None) == (self.below is None):
            msg = "give exactly one of above or below"
            raise ValueError(msg)
        return self

    @property
    def limit(self) -> float:
        """The bound, whichever side it is on."""
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    @property
    def high(self) -> bool:
        """True when exceeding the limit upwards is the violation."""
        return self.above is not None


class LimitRule(_Bound):
    """The point is above (or below) a limit for ``hold_s``.

    ``relative_to`` makes the limit relative to another point (``below = -15`` with
    ``relative_to = "vat1_set_temp"``: 15 K under the set point). Once open it clears when the
    value is back past the limit by ``hysteresis`` for ``clear_s``.
    """

    kind: Literal["limit"]
    relative_to: Ident | None = None
    hold_s: _Seconds = 0.0
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    clear_s: _Seconds = 0.0


class TrendRule(_Bound):
    """The point's least-squares rate over ``window_s`` reaches the limit within ``horizon_s``.

    Only rates of at least ``min_rate_per_h`` (units per hour, towards the limit) count; the
    projection must hold for ``hold_s``; it clears when the projection falls short of the limit
    by ``hysteresis`` (or the rate halves) for ``clear_s``.
    """

    kind: Literal["trend"]
    horizon_s: _Span
    window_s: _Span = 1_800.0
    min_rate_per_h: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    hold_s: _Seconds = 0.0
    hysteresis: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    clear_s: _Seconds = 0.0


class RecoveryRule(_PointRule):
    """After a disturbance (bit ``after`` set, then cleared) the point does not come back.

    The level to come back to (within ``margin``) is the highest value (``direction = "high"``)
    of the undisturbed ``window_s`` before the disturbance: a cycling unit's air is back once
    it is within the range it cycled in. How long that normally takes is learnt from the
    device's own disturbances (an EWMA of the recovery times with ``half_life_s``, after
    ``min_samples`` of them). A recovery longer than the learnt mean plus ``z`` standard
    deviations, and than ``min_s``, opens. ``direction`` is the way the disturbance pushes the
    value (``high``: a door warms a fridge).
    """

    kind: Literal["recovery"]
    after: Ident
    direction: Literal["high", "low"] = "high"
    window_s: _Span = 1_800.0
    margin: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    z: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 4.0
    min_s: _Seconds = 600.0
    min_std: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    half_life_s: _Span = 7 * 86_400.0
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 10


class FlatlineRule(_PointRule):
    """The point moved less than ``min_range`` over ``window_s`` of readings: a stuck probe."""

    kind: Literal["flatline"]
    window_s: _Span
    min_range: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SilentRule(_Rule):
    """No reading from the device for ``after_s`` (it hangs, its node is dead or offline)."""

    kind: Literal["silent"]
    after_s: _Span


class AnomalyRule(_PointRule):
    """A feature of the point is ``z`` standard deviations from its learnt baseline.

    ``of``: ``value`` (each reading), ``duty`` (the share of each ``window_s`` a bit was set),
    ``on_run`` / ``off_run`` (how long a bit stays set / clear; the run in progress is judged
    as it grows, so a compressor that does not start is seen before its run ends), ``rate``
    (the rate of rise, units per hour, over each run of ``while_point`` from its lowest reading
    to its last: heating speed while the heater is on), ``start_level`` (the value at which
    ``while_point`` switches on, a thermostat's cut-in; judged while the bit stays off: the
    compressor did not start although the air is past where it always starts), ``stop_level``
    (the value at which it switches off, the cut-out; judged when it goes off: the compressor
    tripped in the middle of a run, and is still off ``hold_s`` later).
    The baseline is an EWMA of mean and variance with ``half_life_s`` of time; nothing opens
    before ``warm_up_s`` of it and ``min_samples`` samples. ``min_std`` floors the deviation
    (in the feature's unit: seconds for runs, 0..1 for duty). The value must stay out for
    ``hold_s`` (run lengths open as soon as they cross).
    """

    kind: Literal["anomaly"]
    of: AnomalyFeature = "value"
    direction: Literal["high", "low"] = "high"
    z: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 4.0
    half_life_s: _Span = 86_400.0
    warm_up_s: _Seconds = 86_400.0
    min_samples: Annotated[int, Field(ge=1, le=100_000)] = 30
    min_std: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    window_s: _Span = 3_600.0
    while_point: Ident | None = None
    hold_s: _Seconds = 0.0
    clear_s: _Seconds = 0.0

    @model_validator(mode="after")
    def _rate_needs_a_bit(self) -> Self:
        if (self.of in ("rate", "start_level", "stop_level")) != (self.while_point is not None):
            msg = (
                "of = 'rate', 'start_level' and 'stop_level' need while_point (the bit they "
                "follow), and only they take one"
            )
            raise ValueError(msg)
        return self


#: One rule of a profile, told apart by ``kind``.
Rule = Annotated[
    LimitRule | TrendRule | RecoveryRule | FlatlineRule | SilentRule | AnomalyRule,
    Field(discriminator="kind"),
]

_KINDS: dict[str, type[_Rule]] = {
    "limit": LimitRule,
    "trend": TrendRule,
    "recovery": RecoveryRule,
    "flatline": FlatlineRule,
    "silent": SilentRule,
    "anomaly": AnomalyRule,
}


def check_rule_points(
    rules: tuple[Rule, ...], points: Mapping[str, PointKind], key: str = "rules"
) -> list[ConfigProblem]:
    """Every rule of ``rules`` names points the profile has, of the right kind; ids are unique.

    Args:
        rules: the rules, in file order.
        points: the profile's point (or field) ids and what they hold.
        key: where the rules are, for the messages.
    """
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for n, rule in enumerate(rules):
        if rule.id in seen:
            problems.append(
                ConfigProblem(f"{key}[{n}].id", f"rule id '{rule.id}' is used twice", "rename one")
            )
        seen.add(rule.id)
        problems += _point_problems(rule, points, f"{key}[{n}]")
    return problems


def _point_problems(rule: Rule, points: Mapping[str, PointKind], where: str) -> list[ConfigProblem]:
    if isinstance(rule, SilentRule):
        return []
    value_kinds: tuple[PointKind, ...] = ("number", "bool")
    if isinstance(rule, AnomalyRule) and rule.of in ("duty", "on_run", "off_run"):
        value_kinds = ("bool",)
    wanted: list[tuple[str, str, tuple[PointKind, ...]]] = [
        ("point", rule.point, value_kinds),
        *((f"when.{c.point}", c.point, ("number", "bool")) for c in rule.when),
        *(("suppress_when", p, ("bool",)) for p in rule.suppress_when),
    ]
    if isinstance(rule, LimitRule) and rule.relative_to is not None:
        wanted.append(("relative_to", rule.relative_to, ("number",)))
    if isinstance(rule, RecoveryRule):
        wanted.append(("after", rule.after, ("bool",)))
    if isinstance(rule, AnomalyRule) and rule.while_point is not None:
        wanted.append(("while_point", rule.while_point, ("bool",)))
    known = ", ".join(sorted(points)[:12])
    bits = ", ".join(sorted(p for p, k in points.items() if k == "bool")[:12]) or "(none)"
    problems = []
    for field, point, kinds in wanted:
        kind = points.get(point)
        if kind is None:
            problems.append(
                ConfigProblem(
                    f"{where}.{field}",
                    f"rule '{rule.id}' names '{point}', which the profile does not have",
                    f"use one of: {known}",
                )
            )
        elif kind not in kinds:
            bit = kinds == ("bool",)
            need = "a bit (true/false)" if bit else "a number or a bit"
            problems.append(
                ConfigProblem(
                    f"{where}.{field}",
                    f"rule '{rule.id}': '{point}' holds {kind}, not {need}",
                    f"use one of: {bits}" if bit else "name a numeric point",
                )
            )
    return problems


def merge_rules(
    rules: tuple[Rule, ...],
    overrides: Mapping[str, RuleOverride],
    points: Mapping[str, PointKind],
    key: str = "rules",
    owner: str = "the profile",
) -> tuple[tuple[Rule, ...], list[ConfigProblem]]:
    """A device's rules: its profile's, with the site's ``overrides`` applied, checked.

    Args:
        rules: the profile's rules.
        overrides: rule id -> what the site changes.
        points: the profile's point ids and what they hold (to check the merged rules).
        key: where the overrides are, for the messages (``devices[2].rules``).
        owner: what has the rules, for the messages (``profile walkin-fridge``).

    Returns:
        The merged rules (disabled ones included, in profile order) and every problem: an
        override naming a rule the profile does not have, a field the rule's kind has not, a
        value out of range, a point that does not exist. A rule with a problem is kept as the
        profile has it.
    """
    problems: list[ConfigProblem] = []
    ids = [r.id for r in rules]
    for rule_id in overrides:
        if rule_id not in ids:
            choices = ", ".join(ids) or "(the profile has no rules)"
            problems.append(
                ConfigProblem(
                    f"{key}.{rule_id}",
                    f"{owner} has no rule '{rule_id}'",
                    f"use one of: {choices}",
                )
            )
    merged: list[Rule] = []
    for rule in rules:
        override = overrides.get(rule.id)
        if override is None:
            merged.append(rule)
            continue
        changes = override.model_dump(exclude_unset=True)
        cls = _KINDS[rule.kind]
        try:
            new = cls.model_validate({**rule.model_dump(exclude_unset=True), **changes})
        except ValidationError as err:
            for p in problems_from_validation(err):
                field, message, fix = p.key, p.message, p.fix
                if message.startswith("Extra inputs"):
                    message = f"a {rule.kind} rule has no '{field}'"
                    fix = f"remove {field} from the override of '{rule.id}'"
                at = f"{key}.{rule.id}" if field == "(top level)" else f"{key}.{rule.id}.{field}"
                problems.append(ConfigProblem(at, message, fix))
            merged.append(rule)
            continue
        found = _point_problems(new, points, f"{key}.{rule.id}")  # type: ignore[arg-type]
        problems += found
        merged.append(rule if found else new)  # type: ignore[arg-type]
    return tuple(merged), problems
