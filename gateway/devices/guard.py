"""The write guard: Modbus has no authentication, so the gateway decides which writes leave it.

Reads are the default; a write is sent only when :meth:`WriteGuard.check` approves it:

1. the device is listed in the site file, and its profile is a loaded Modbus profile;
2. the point exists, is ``access = "rw"`` with a write range, and is a whole register or a coil
   (a single bit of a register would need a read-modify-write that could clobber its neighbours);
3. the value has the point's type (a bool or 0/1 for a bit, a number otherwise; never text), is
   finite, and lies inside the *effective* range: the profile's range narrowed by the site's
   ``writes`` entry for that point (a site may only narrow; :func:`check_device_writes` reports a
   wider one as a config problem, and the guard uses the intersection anyway);
4. the codec can encode it, and the words decode back inside the effective range (rounding to the
   register's resolution must not push a value over a limit);
5. the device has had fewer than ``writes_per_minute`` approved writes in the last 60 s.

Every refusal is an ordinary :class:`Refused` result whose ``reason`` starts with one of the
:class:`Reason` values, and is counted in ``WriteGuard.refused`` by that value. The guard never
raises for bad input: a value of any type, NaN, a huge int, a codec failure are all refusals.
It is pure apart from the rate-limit window, which counts monotonic seconds from an injected
clock: a step of the wall clock neither frees nor uses up a device's write budget.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.devices.codec import CodecError, decode_point, encode_point
from gateway.devices.profile import PointType
from gateway.errors import ConfigProblem

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from gateway.config import DeviceInstance, WriteRange
    from gateway.devices.codec import Value
    from gateway.devices.profile import ModbusPoint, Profile

__all__ = [
    "Approved",
    "Reason",
    "Refused",
    "WriteGuard",
    "WriteRequest",
    "check_device_writes",
    "effective_range",
]

#: The rate limit counts approved writes over this sliding window.
WINDOW_S = 60.0


class Reason(StrEnum):
    """Why a write was refused: the start of every ``Refused.reason`` and the counter key."""

    UNKNOWN_DEVICE = "unknown device"
    UNKNOWN_POINT = "unknown point"
    NOT_WRITABLE = "not writable"
    WRONG_TYPE = "wrong type"
    NOT_A_NUMBER = "not a number"
    OUT_OF_RANGE = "out of range"
    NOT_REPRESENTABLE = "not representable"
    RATE_LIMIT = "rate limit"


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """Someone wants ``value`` written to ``device``.``point``.

    Attributes:
        device: the device id from the site file.
        point: the point id from the device's profile.
        value: the engineering value (bool for bits).
        source: who asks, for the audit log: ``"cli"``, ``"action:<rule index>"``, ...
    """

    device: str
    point: str
    value: Value
    source: str


@dataclass(frozen=True, slots=True)
class Approved:
    """The write may go out: exactly ``words`` to ``point``'s registers (or one 0/1 for a coil)."""

    request: WriteRequest
    point: ModbusPoint
    words: list[int]


@dataclass(frozen=True, slots=True)
class Refused:
    """The write must not go out; ``reason`` says why in words an operator understands."""

    request: WriteRequest
    reason: str

    @property
    def kind(self) -> Reason:
        """The :class:`Reason` this refusal is counted under."""
        # Reasons are built as f"{kind}..." below; no value is a prefix of another.
        return next(r for r in Reason if self.reason.startswith(r.value))


@dataclass(frozen=True, slots=True)
class _Target:
    device: DeviceInstance
    profile: Profile


def _num(x: float) -> str:
    """A limit as people write it: 200, not 200.0."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _span(low: float, high: float) -> str:
    return f"{_num(low)}..{_num(high)}"


def effective_range(point: ModbusPoint, site: WriteRange | None) -> tuple[float, float] | None:
    """The values a write to ``point`` may set: the profile's range narrowed by the site's.

    Args:
        point: the profile's point.
        site: the device's ``writes`` entry for the point, if any.

    Returns:
        ``(low, high)`` inclusive, or None when nothing may be written (no profile range, or a
        site range that does not overlap it).
    """
    if point.write is None:
        return None
    low, high = point.write.min, point.write.max
    if site is not None:
        # Intersection, not replacement: a site range that is wider by mistake still cannot
        # widen what the profile's author judged safe.
        low, high = max(low, site.min), min(high, site.max)
    return (low, high) if low <= high else None


def _slack(point: ModbusPoint, bound: float) -> float:
    """How far a decoded value may stray from a limit through floating-point arithmetic alone.

    Integer registers decode to ``raw * scale + offset`` exactly up to float64 rounding; an f32
    keeps about 7 digits. The slack is far below any register's resolution, so it can only
    forgive arithmetic noise, never a value that is really over the limit.
    """
    magnitude = abs(bound) + abs(point.offset) + abs(point.scale)
    relative = 2.0**-22 if point.type is PointType.F32 else 2.0**-40
    return magnitude * relative


class WriteGuard:
    """Approves or refuses writes against the profiles' allow-list and the site's narrowing.

    Attributes:
        refused: refusals counted by :class:`Reason` (its string value).
        approved: how many writes were approved.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        devices: Sequence[DeviceInstance],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Index the site's devices; nothing is written or read here.

        Args:
            profiles: loaded profiles by id.
            devices: the site's device instances (the first of duplicate ids wins; the config
                check reports duplicates).
            monotonic: seconds from a monotonic clock, for the rate-limit window; the
                gateway passes its injected clock's ``Clock.monotonic`` (the default, the
                system's, suits one-shot callers: the command line, the config check).
        """
        self._targets: dict[str, _Target | None] = {}
        for d in devices:
            if d.id in self._targets:
                continue
            profile = profiles.get(d.profile)
            modbus = profile is not None and profile.profile.protocol == "modbus"
            # None still lists the device, so its refusal can say why it cannot be written.
            self._targets[d.id] = _Target(d, profile) if modbus and profile else None
        self._monotonic = monotonic
        self._recent: dict[str, deque[float]] = {}
        self.refused: Counter[str] = Counter()
        self.approved = 0

    def check(self, request: WriteRequest) -> Approved | Refused:
        """Decide whether ``request`` may be written; approval takes a slot in the rate window.

        Args:
            request: the write asked for; any value of any type is accepted and judged.

        Returns:
            :class:`Approved` with the words to write, or :class:`Refused` with the reason.
        """
        verdict = self._validate(request)
        if isinstance(verdict, str):
            return self._refuse(request, verdict)
        target, point, words = verdict
        settings = target.profile.settings
        # Only writes that would otherwise go out count: a flood of bad requests must not use
        # up the budget of the good ones.
        now = self._monotonic()
        window = self._recent.setdefault(target.device.id, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) >= settings.writes_per_minute:
            limit = settings.writes_per_minute
            return self._refuse(request, f"{Reason.RATE_LIMIT} ({limit} writes per minute)")
        window.append(now)
        self.approved += 1
        return Approved(request, point, words)

    def _refuse(self, request: WriteRequest, reason: str) -> Refused:
        refusal = Refused(request, reason)
        self.refused[refusal.kind.value] += 1
        return refusal

    def _validate(self, request: WriteRequest) -> tuple[_Target, ModbusPoint, list[int]] | str:
        """Everything but the rate limit: the approved parts, or the refusal reason."""
        found = self._locate(request)
        if isinstance(found, str):
            return found
        target, point = found
        value = request.value
        problem = _type_problem(point, value)
        if problem is not None:
            return problem
        assert isinstance(value, int | float)  # narrowed by _type_problem
        rng = effective_range(point, target.device.writes.get(point.id))
        if rng is None:
            return f"{Reason.OUT_OF_RANGE}: the site allows no value for {point.id}"
        if not rng[0] <= value <= rng[1]:
            return f"{Reason.OUT_OF_RANGE} {_span(*rng)}"
        return _encoded(target, point, value, rng)

    def _locate(self, request: WriteRequest) -> tuple[_Target, ModbusPoint] | str:
        """The device and a writable point, or the refusal reason."""
        # Ids are checked for type first: an unhashable id must be a refusal, not a TypeError.
        listed = isinstance(request.device, str) and request.device in self._targets
        target = self._targets[request.device] if listed else None
        if target is None:
            why = "its profile is not a loaded Modbus profile" if listed else "not in the site file"
            return f"{Reason.UNKNOWN_DEVICE} {request.device!r} ({why})"
        point = target.profile.point(request.point) if isinstance(request.point, str) else None
        if point is None:
            return f"{Reason.UNKNOWN_POINT} {request.point!r} on {request.device}"
        if point.access != "rw" or point.write is None:
            return f"{Reason.NOT_WRITABLE}: {point.id} is read-only"
        if point.type is PointType.BIT and not point.table.is_bits:
            return (
                f"{Reason.NOT_WRITABLE}: {point.id} is bit {point.bit} of register "
                f"{point.address}; writing it alone needs a read-modify-write"
            )
        return target, point


def _type_problem(point: ModbusPoint, value: object) -> str | None:
    """A refusal reason when ``value`` is not a finite value of the point's kind."""
    if point.type is PointType.BIT:
        # 0/1 are as natural as true/false in a site file; 1.0 or 2 are not.
        ok = isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
        return None if ok else f"{Reason.WRONG_TYPE}: {point.id} takes true/false or 0/1"
    if point.type is PointType.STRING:
        return f"{Reason.WRONG_TYPE}: text points cannot be written"
    # bool is an int in Python, but "true" for a temperature is a mistake, not 1 degree.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{Reason.WRONG_TYPE}: {point.id} takes a number, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{Reason.NOT_A_NUMBER}: {value!r}"
    return None


def _encoded(
    target: _Target, point: ModbusPoint, value: float, rng: tuple[float, float]
) -> tuple[_Target, ModbusPoint, list[int]] | str:
    """Encode, then prove the words decode back inside the range (or say why not)."""
    settings = target.profile.settings
    try:
        words = encode_point(point, value, settings)
        back = decode_point(point, words, settings)
    except (CodecError, ValueError, TypeError, OverflowError) as err:
        # The codec is the authority on what fits; any failure there refuses rather than writes.
        return f"{Reason.NOT_REPRESENTABLE}: {err}"
    if isinstance(back, str) or not isinstance(back, int | float):
        return f"{Reason.NOT_REPRESENTABLE}: {point.id} decodes to {back!r}"
    low, high = rng
    if not low - _slack(point, low) <= back <= high + _slack(point, high):
        # e.g. 199.6 on a register of whole units becomes 200 > 199.5: the device would get
        # a value the range forbids.
        return (
            f"{Reason.NOT_REPRESENTABLE}: {_num(value)} is stored as {_num(float(back))}, "
            f"outside {_span(low, high)}"
        )
    return target, point, words


def check_device_writes(
    profiles: Mapping[str, Profile], devices: Sequence[DeviceInstance]
) -> list[ConfigProblem]:
    """Config check of the site's ``[devices.writes]`` narrowing: every problem, each with a fix.

    A site range may only narrow the profile's: one that names an unknown or read-only point, or
    reaches past the profile's range, is a problem. Devices whose profile is unknown are skipped
    (the profile reference check reports them).

    Args:
        profiles: loaded profiles by id.
        devices: the site's device instances, in file order (problem keys use their index).

    Returns:
        The problems found; empty when every ``writes`` entry is a valid narrowing.
    """
    problems: list[ConfigProblem] = []
    for n, d in enumerate(devices):
        profile = profiles.get(d.profile)
        if profile is None:
            continue
        for point_id, site in d.writes.items():
            key = f"devices[{n}].writes.{point_id}"
            point = profile.point(point_id)
            if profile.profile.protocol != "modbus":
                problems.append(
                    ConfigProblem(key, f"{d.profile} is an MQTT sensor", "remove 'writes'")
                )
            elif point is None:
                known = ", ".join(p.id for p in profile.points if p.access == "rw")
                problems.append(
                    ConfigProblem(
                        key,
                        f"profile {d.profile} has no point '{point_id}'",
                        f"use a writable point: {known or '(none)'}",
                    )
                )
            elif point.write is None:
                problems.append(ConfigProblem(key, f"{point_id} is read-only", "remove this entry"))
            elif site.min < point.write.min or site.max > point.write.max:
                allowed = _span(point.write.min, point.write.max)
                problems.append(
                    ConfigProblem(
                        key,
                        f"{_span(site.min, site.max)} is wider than the profile's {allowed}: "
                        "a site may only narrow a write range",
                        f"use a range inside {allowed}",
                    )
                )
    return problems
