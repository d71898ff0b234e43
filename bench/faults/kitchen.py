"""The simulated kitchen of bench/faults: the demo site's appliances, their physics, its service.

Everything here runs in simulated seconds, no sleeping: the simulator's pure models
(``simulators/appliances``) stepped in steps of the shortest poll interval (each integrating
a second at a time inside), read at their profiles' poll intervals through the gateway's own
codec (``RegisterBank.get``), and each reading handed to the device's
:class:`~gateway.telemetry.detectors.DeviceDetectors` built by ``detectors_for`` exactly as the
live service would. Availability comes from the device service's own state machine
(:func:`gateway.devices.availability.next_state`) fed one outcome per poll.

Kitchen life (seeded, so a run is reproducible), by time of day:

* the kitchen's air: 18 °C at night, 27-29 °C through lunch and dinner (KITCHEN_AIR); every
  appliance but the oil tank (in the store room) loses heat to it or gains it from it.
* walk-in fridge: set at 2 °C (FRIDGE_SETPOINT_C). Door: 0.3/h at night, 6/h during prep
  (07:00-11:00), 12/h at lunch (11:30-14:30) and dinner (17:30-22:30), 4/h in the afternoon,
  6/h at close-down; each opening lasts a lognormal ~25 s (median), at most 150 s. A delivery at 08:00 Monday to Saturday: four
  openings of 40-90 s four minutes apart, a fifth of the stock replaced by goods at 4-7 °C.
  The freezer: a third of those openings; deliveries on Tuesday and Friday.
* defrosts: four a day, 30 minutes each, at 03:00, 09:30, 15:30 and 23:30 (the controllers'
  real-time defrost clock, set outside service as installers do).
* fryer: both vats on at 10:30 from cold, off at 22:45; baskets at up to 24 an hour a vat at
  the dinner peak; each vat filtered at 15:30; the oil changed at close when its TPM is 20 %+.
* combi oven: programs at lunch and early evening; hot holding at 75 °C with the core probe in
  from 19:00 to 21:30, its door opened for portions 8 times an hour.
* dishwasher: 25 cycles an hour at lunch and dinner, 6 otherwise in the day, none at night.
* oil tank: the supplier tops it up at 09:00 when it is below 60 %.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.config import DeviceInstance
from gateway.devices.availability import Outcome, next_state
from gateway.devices.profile import load_profiles
from gateway.telemetry.detectors import detectors_for
from simulators.appliances.cold_room import ColdRoomTuning
from simulators.appliances.dishwasher import CycleState, DishwasherModel
from simulators.appliances.fryer import VATS, FryerMode
from simulators.appliances.fryer_elements import ElementFryerModel
from simulators.appliances.oven import PROGRAMS, OvenMode, OvenModel
from simulators.appliances.registers import RegisterBank
from simulators.appliances.stocked import StockedColdRoomModel
from simulators.appliances.tank import TankModel

if TYPE_CHECKING:
    from collections import deque

    from gateway.contract import DeviceState
    from gateway.devices.codec import Value
    from gateway.devices.profile import Profile
    from gateway.telemetry.detectors import DeviceDetectors
    from gateway.telemetry.signals import Signal
    from simulators.appliances.physics import ApplianceModel

#: Simulated time 0: a Monday, midnight.
START = datetime(2026, 11, 30, tzinfo=UTC)
DAY = 86_400.0
TICK_S = 5  # how often the detectors are told time passed (the live service ticks too)

#: A loaded walk-in in a warm kitchen (DOMAIN.md: cycles of 10-20 min, running 40-70 % of the
#: time, air +1-3 °C at a door opening and back in minutes, defrosts of 20-40 min lifting the
#: air a few degrees, after a compressor failure a quick rise to a little above the stock and
#: then 1-2 °C an hour). bench/faults/replay.py prints what these give.
FRIDGE_TUNING = ColdRoomTuning(wall_tc_s=4_000.0, door_tc_s=500.0, coil_tc_s=900.0, defrost_s=1_800.0)
FREEZER_TUNING = ColdRoomTuning(wall_tc_s=12_000.0, door_tc_s=600.0, coil_tc_s=700.0, defrost_s=1_800.0)
#: The walk-in's set point, as the kitchen set it (the simulator's default is 3 °C, its cut-in
#: then 4.5 °C, half a degree under the limit; replay.py also measures that).
FRIDGE_SETPOINT_C = 2.0
STOCK_RATIO = 12.0
STOCK_TC_S = 150.0
PROBE_NOISE_K = 0.05

#: The demo site's appliances (examples/demo-site.toml) the rules are for.
SITE = (
    ("fryer-1", "fryer-2vat"),
    ("oven-1", "combi-oven"),
    ("fridge-1", "walkin-fridge"),
    ("freezer-1", "freezer"),
    ("dishwasher-1", "dishwasher"),
    ("oil-tank", "tank-level"),
)


def wall(mono: float) -> datetime:
    """The wall stamp of simulated second ``mono``."""
    return START + timedelta(seconds=mono)


def clock(mono: float) -> tuple[int, float]:
    """(weekday 0=Monday, hour of the day as a float) of simulated second ``mono``."""
    day, rest = divmod(mono, DAY)
    return int(day) % 7, rest / 3600.0


@dataclass
class Device:
    """One simulated appliance with the gateway's detectors watching it."""

    inst: DeviceInstance
    profile: Profile
    bank: RegisterBank
    model: ApplianceModel
    detectors: DeviceDetectors
    polls: dict[int, tuple[str, ...]]  # poll interval (s) -> points read at it
    hung: bool = False
    hidden: dict[str, Value] = field(default_factory=dict)  # point -> what it reads instead
    state: DeviceState | None = None
    failures: int = 0
    signals: list[tuple[float, Signal]] = field(default_factory=list)
    history: deque[tuple[float, datetime, dict[str, Value]]] | None = None
    extra: list = field(default_factory=list)  # more detectors fed the same (comparisons)

    def poll(self, t: int) -> None:
        """The poll of second ``t``: the due points, or nothing if the device hangs."""
        due = [pid for every, pts in self.polls.items() if t % every == 0 for pid in pts]
        if not due:
            return
        at = wall(t)
        if self.hung:
            self.failures += 1
            self._state(t, at, next_state(self.state, Outcome.FAILED, self.failures, 3))
            return
        self.failures = 0
        self._state(t, at, next_state(self.state, Outcome.FULL, 0, 3))
        values: dict[str, Value] = {pid: self.bank.get(pid) for pid in due}
        values.update({k: v for k, v in self.hidden.items() if k in values})
        if self.history is not None:
            self.history.append((float(t), at, values))
        for s in self.detectors.reading(float(t), at, values):
            self.signals.append((float(t), s))
        for det in self.extra:
            sig = det.reading(float(t), at, values, values)
            if sig is not None:
                self.signals.append((float(t), sig))

    def tick(self, t: int) -> None:
        """Time passed."""
        for s in self.detectors.tick(float(t), wall(t)):
            self.signals.append((float(t), s))

    def _state(self, t: int, at: datetime, state: DeviceState) -> None:
        if state is not self.state:
            self.state = state
            for s in self.detectors.availability(float(t), at, state):
                self.signals.append((float(t), s))


def make_devices(
    seed: int, *, fridge_setpoint_c: float = FRIDGE_SETPOINT_C, only: tuple[str, ...] = ()
) -> dict[str, Device]:
    """The site's devices (``only`` some of them), as the gateway would build their detectors."""
    profiles = load_profiles()
    devices = {}
    for n, (device_id, profile_id) in enumerate(SITE):
        if only and device_id not in only:
            continue
        profile = profiles[profile_id]
        inst = DeviceInstance(id=device_id, profile=profile_id, host="127.0.0.1", port=15020 + n)
        bank = RegisterBank(profile)
        if profile_id == "walkin-fridge":
            bank.set("setpoint", fridge_setpoint_c)
        model = _model(profile_id, bank, seed + n)
        polls: dict[int, list[str]] = {}
        for p in profile.points:
            every = profile.poll_interval(p.id, inst.poll_s)
            assert every is not None
            assert every == int(every), "the replay polls on whole seconds"
            polls.setdefault(int(every), []).append(p.id)
        devices[device_id] = Device(
            inst, profile, bank, model, detectors_for(inst, profile),
            {k: tuple(v) for k, v in polls.items()},
        )  # fmt: skip
    return devices


def _model(profile_id: str, bank: RegisterBank, seed: int) -> ApplianceModel:
    # The defrosts follow the clock (DEFROSTS_H, KitchenLife), never the interval timer.
    if profile_id == "walkin-fridge":
        bank.set("defrost_interval_h", 24)
        return StockedColdRoomModel(
            bank, tuning=FRIDGE_TUNING, stock_ratio=STOCK_RATIO, stock_tc_s=STOCK_TC_S,
            probe_noise_k=PROBE_NOISE_K, seed=seed,
        )  # fmt: skip
    if profile_id == "freezer":
        bank.set("defrost_interval_h", 24)
        return StockedColdRoomModel(
            bank, tuning=FREEZER_TUNING, stock_ratio=STOCK_RATIO, stock_tc_s=STOCK_TC_S,
            probe_noise_k=PROBE_NOISE_K, seed=seed,
        )  # fmt: skip
    if profile_id == "fryer-2vat":
        return ElementFryerModel(bank, hot=False)
    if profile_id == "combi-oven":
        return OvenModel(bank)
    if profile_id == "dishwasher":
        return DishwasherModel(bank)
    return TankModel(bank)


def _rate(hour: float, table: tuple[tuple[float, float, float], ...]) -> float:
    for start, end, per_h in table:
        if start <= hour < end:
            return per_h
    return 0.0


WALKIN_DOORS = (
    (0.0, 6.0, 0.3), (6.0, 7.0, 2.0), (7.0, 11.0, 6.0), (11.0, 11.5, 8.0), (11.5, 14.5, 12.0),
    (14.5, 17.5, 4.0), (17.5, 22.5, 12.0), (22.5, 23.5, 6.0), (23.5, 24.0, 0.5),
)  # fmt: skip
FRYER_BASKETS = (
    (11.0, 12.0, 6.0), (12.0, 14.0, 20.0), (14.0, 15.0, 6.0), (17.5, 18.5, 8.0),
    (18.5, 21.5, 24.0), (21.5, 22.5, 8.0),
)  # fmt: skip
WASH_CYCLES = (
    (7.0, 11.5, 6.0), (11.5, 15.0, 25.0), (15.0, 18.0, 6.0), (18.0, 23.0, 25.0),
    (23.0, 23.5, 10.0),
)  # fmt: skip
HOLD_FROM_H, HOLD_TO_H, HOLD_C = 19.0, 21.5, 75.0
#: The kitchen's air through the day (hour, °C): cool at night, hot with the ranges on.
KITCHEN_AIR = ((0.0, 18.0), (6.0, 18.0), (9.0, 22.0), (11.5, 27.0), (14.5, 28.0), (16.0, 25.0),
               (18.0, 29.0), (22.5, 29.0), (24.0, 18.0))  # fmt: skip


def kitchen_air_c(hour: float) -> float:
    """The kitchen's air temperature at ``hour`` (linear between KITCHEN_AIR's points)."""
    for (h0, c0), (h1, c1) in itertools.pairwise(KITCHEN_AIR):
        if h0 <= hour <= h1:
            return c0 + (c1 - c0) * (hour - h0) / (h1 - h0)
    return KITCHEN_AIR[0][1]


#: Defrosts on the controllers' real-time clocks, outside service as installers set them.
DEFROSTS_H = (3.0, 9.5, 15.5, 23.5)


class KitchenLife:
    """Who does what to which appliance, second by second (seeded)."""

    def __init__(self, devices: dict[str, Device], seed: int) -> None:
        """Kitchen life for ``devices`` (any of the site's; others are ignored)."""
        self.devices = devices
        self.rng = random.Random(seed)
        self.door_left: dict[str, float] = {}  # device -> seconds until its door closes
        self.door_stuck_open: set[str] = set()
        self.delivery: dict[str, list[float]] = {}  # device -> door openings still to come
        self.holding = False
        self.dt = 1

    def _chance(self, per_h: float) -> bool:
        return per_h > 0 and self.rng.random() < per_h * self.dt / 3600.0

    def _at(self, t: int, hour: float) -> bool:
        """Whether the day's ``hour`` falls in this step, ``t`` .. ``t + dt``."""
        mark = int(hour * 3600)
        return t % 86_400 <= mark < t % 86_400 + self.dt

    def step(self, t: int, dt: int = 1) -> None:
        """What happens in seconds ``t`` .. ``t + dt``."""
        self.dt = dt
        weekday, hour = clock(t)
        air = kitchen_air_c(hour) if t % 60 < dt else None
        for device_id, d in self.devices.items():
            m = d.model
            if air is not None and not isinstance(m, TankModel):
                m.ambient_c = air
            if isinstance(m, StockedColdRoomModel):
                self._room(t, device_id, m, weekday, hour)
            elif isinstance(m, ElementFryerModel):
                self._fryer(t, m, hour)
            elif isinstance(m, OvenModel):
                self._oven(device_id, m, hour)
            elif isinstance(m, DishwasherModel):
                if m.state is CycleState.IDLE and self._chance(_rate(hour, WASH_CYCLES)):
                    m.start_cycle()
            elif isinstance(m, TankModel) and self._at(t, 9.0) and m.level_pct < 60.0:
                m.refill()

    def _door(self, device_id: str, model: StockedColdRoomModel | OvenModel, open_s: float) -> None:
        self.door_left[device_id] = open_s
        model.open_door()

    def _doors(self, device_id: str, model: StockedColdRoomModel | OvenModel) -> bool:
        """Count an open door down; True while it is open."""
        if device_id in self.door_stuck_open:
            return True
        left = self.door_left.get(device_id)
        if left is None:
            return False
        if left <= self.dt:
            del self.door_left[device_id]
            model.close_door()
            return False
        self.door_left[device_id] = left - self.dt
        return True

    def _room(self, t: int, device_id: str, m: StockedColdRoomModel, weekday: int, hour: float) -> None:
        freezer = m.bank.profile.profile.kind == "freezer"
        if any(self._at(t, h) for h in DEFROSTS_H):
            m.start_defrost()
        delivery_h, days = (8.5, (1, 4)) if freezer else (8.0, (0, 1, 2, 3, 4, 5))
        if weekday in days and self._at(t, delivery_h):
            m.deliver(0.15 if freezer else 0.2, self.rng.uniform(-14, -12) if freezer else self.rng.uniform(4, 7))
            self.delivery[device_id] = [t + 240.0 * k for k in range(4)]
        if self._doors(device_id, m):
            return
        pending = self.delivery.get(device_id)
        if pending and t >= pending[0]:
            pending.pop(0)
            self._door(device_id, m, self.rng.uniform(40, 90))
            return
        per_h = _rate(hour, WALKIN_DOORS) / (3.0 if freezer else 1.0)
        if self._chance(per_h):
            self._door(device_id, m, min(150.0, 25.0 * math.exp(self.rng.gauss(0.0, 0.6))))

    def _fryer(self, t: int, m: ElementFryerModel, hour: float) -> None:
        for vat in range(1, VATS + 1):
            v = m.vats[vat - 1]
            if self._at(t, 10.5) and v.mode is FryerMode.OFF:
                m.power_on(vat)
            elif self._at(t, 22.75):
                m.power_off(vat)
            elif self._at(t, 22.8) and v.tpm >= 20.0:
                m.change_oil(vat)
            elif self._at(t, 15.5 + (vat - 1) / 6) and v.mode in (FryerMode.FRYING, FryerMode.STANDBY):
                m.filter_oil(vat)
            elif (
                v.mode in (FryerMode.FRYING, FryerMode.STANDBY)
                and v.basket_lifted
                and self._chance(_rate(hour, FRYER_BASKETS))
            ):
                m.start_timer(vat)

    def _oven(self, device_id: str, m: OvenModel, hour: float) -> None:
        if self._doors(device_id, m):
            return
        cooking = m.mode in (OvenMode.HOT_AIR, OvenMode.STEAM, OvenMode.COMBI)
        if HOLD_FROM_H <= hour < HOLD_TO_H:
            if not self.holding and not cooking:
                self.holding = True
                m.bank.set("cabinet_set_temp", HOLD_C)
                m.insert_probe(food_c=72.0)  # food just cooked goes into the holding oven
            if self.holding:
                if not cooking:
                    m.bank.set("cabinet_set_temp", HOLD_C)
                    m.start_program(5)  # a user program: hot air at the set point, 20 min
                elif self._chance(8.0):
                    self._door(device_id, m, self.rng.uniform(8, 20))
            return
        if self.holding:
            self.holding = False
            m.stop()
            m.remove_probe()
        lunch = 11.0 <= hour < 14.0 or 17.0 <= hour < 19.0
        if m.mode is OvenMode.OFF and lunch and self._chance(1.5):
            number = self.rng.choice(sorted(PROGRAMS))
            if PROGRAMS[number].core_c is not None:
                m.insert_probe()
            m.start_program(number)
        elif cooking and self._chance(2.0):
            self._door(device_id, m, self.rng.uniform(10, 30))


def run(
    devices: dict[str, Device],
    life: KitchenLife,
    start: int,
    end: int,
    *,
    every: float | None = None,
    watch: object = None,
) -> None:
    """Simulate seconds ``start`` .. ``end`` - 1: life, physics, polls, ticks.

    Time moves in steps of the shortest poll interval of ``devices`` (1 s with the fryer, 5 s
    for the walk-ins alone): nothing is read in between, and the models integrate in steps of
    at most a second inside each.

    Args:
        devices: what to simulate.
        life: what happens to them.
        start: first simulated second (a multiple of the step).
        end: the second to stop before.
        every: call ``watch(t)`` every this many seconds (None: never).
        watch: a callable taking the second, for ground truth and snapshots.
    """
    dt = math.gcd(TICK_S, *(every for d in devices.values() for every in d.polls))
    if every is not None:
        dt = math.gcd(dt, int(every))
    assert start % dt == 0, (start, dt)
    for t in range(start, end, dt):
        life.step(t, dt)
        for d in devices.values():
            d.model.step(float(dt))
        now = t + dt
        for d in devices.values():
            d.poll(now)
            if now % TICK_S == 0:
                d.tick(now)
        if every is not None and watch is not None and now % every == 0:
            watch(now)  # type: ignore[operator]
