"""The availability machine (gateway.devices.availability), exhaustively, with a manual clock."""

from __future__ import annotations

import itertools
import logging

import pytest

from gateway.clock import ManualClock
from gateway.contract import DeviceState
from gateway.devices.availability import Availability, Outcome, next_state

ON, DEG, OFF = DeviceState.ONLINE, DeviceState.DEGRADED, DeviceState.OFFLINE
STATES: list[DeviceState | None] = [None, ON, DEG, OFF]


def oracle(
    state: DeviceState | None, outcome: Outcome, failures: int, offline_after: int
) -> DeviceState:
    """The table in the module docstring, written out row by row."""
    table = {
        Outcome.FULL: {None: ON, ON: ON, DEG: ON, OFF: ON},
        Outcome.PARTIAL: {None: DEG, ON: DEG, DEG: DEG, OFF: DEG},
        Outcome.DISCONNECTED: {None: OFF, ON: OFF, DEG: OFF, OFF: OFF},
        Outcome.UNREACHABLE: {None: OFF, ON: OFF, DEG: OFF, OFF: OFF},
        Outcome.BUSY: {None: OFF, ON: ON, DEG: DEG, OFF: OFF},
    }
    if outcome in table:
        return table[outcome][state]
    if failures >= offline_after:
        return OFF
    return {None: OFF, ON: DEG, DEG: DEG, OFF: OFF}[state]


@pytest.mark.parametrize("offline_after", [1, 2, 3, 5])
def test_next_state_matches_the_table_for_every_input(offline_after: int) -> None:
    for state, outcome, failures in itertools.product(STATES, Outcome, range(8)):
        assert next_state(state, outcome, failures, offline_after) == oracle(
            state, outcome, failures, offline_after
        ), (state, outcome, failures, offline_after)


def replay(outcomes: list[Outcome], offline_after: int) -> list[DeviceState | None]:
    """States after each outcome, computed with the oracle and the failure count by hand."""
    state: DeviceState | None = None
    failures = 0
    out: list[DeviceState | None] = []
    for o in outcomes:
        if o is Outcome.BUSY:
            out.append(state)  # a busy reply changes nothing, not even the count
            continue
        failures = 0 if o in (Outcome.FULL, Outcome.PARTIAL) else failures + 1
        state = oracle(state, o, failures, offline_after)
        out.append(state)
    return out


@pytest.mark.parametrize("offline_after", [1, 2, 3])
def test_every_sequence_of_four_outcomes_changes_exactly_when_the_state_does(
    offline_after: int,
) -> None:
    for seq in itertools.product(Outcome, repeat=4):
        clock = ManualClock()
        machine = Availability("fryer1", clock, offline_after=offline_after)
        expected = replay(list(seq), offline_after)
        previous: DeviceState | None = None
        changes = 0
        for outcome, want in zip(seq, expected, strict=True):
            clock.advance(1.0)
            change = machine.observe(outcome, "boom")
            assert machine.state is (want or OFF)  # busy before any poll: still unknown
            if want is previous:
                assert change is None
            else:
                changes += 1
                assert change is not None
                assert change.state is want
                assert change.device == "fryer1"
                assert change.at == clock.now()
            previous = want
        assert machine.changes == changes


def test_before_any_poll_the_device_reads_as_offline_and_unknown() -> None:
    machine = Availability("d", ManualClock())
    assert machine.state is OFF
    assert not machine.known
    assert machine.last_ok is None


def test_degraded_after_one_and_two_failures_offline_after_three() -> None:
    clock = ManualClock()
    m = Availability("d", clock, offline_after=3)
    assert m.observe(Outcome.FULL) is not None
    first = m.observe(Outcome.FAILED, "no answer within 0.5 s")
    assert first is not None
    assert first.state is DEG
    assert first.reason == "a poll failed: no answer within 0.5 s"
    assert m.observe(Outcome.FAILED, "no answer within 0.5 s") is None  # still degraded
    third = m.observe(Outcome.FAILED, "no answer within 0.5 s")
    assert third is not None
    assert third.state is OFF
    assert third.reason == "3 polls in a row failed: no answer within 0.5 s"
    assert m.failures == 3


def test_back_online_on_the_first_full_poll_and_failures_reset() -> None:
    clock = ManualClock()
    m = Availability("d", clock)
    for _ in range(5):
        m.observe(Outcome.FAILED, "x")
    assert m.state is OFF
    clock.advance(30)
    back = m.observe(Outcome.FULL)
    assert back is not None
    assert back.state is ON
    assert back.reason == "all reads ok"
    assert m.failures == 0
    assert m.last_ok == clock.now()


def test_a_closed_connection_is_offline_at_once() -> None:
    m = Availability("d", ManualClock(), offline_after=10)
    m.observe(Outcome.FULL)
    change = m.observe(Outcome.DISCONNECTED, "not connected: connection refused")
    assert change is not None
    assert change.state is OFF
    assert change.reason == "not connected: connection refused"


def test_some_blocks_failing_is_degraded_and_counts_as_an_answer() -> None:
    m = Availability("d", ManualClock())
    m.observe(Outcome.FAILED)
    m.observe(Outcome.FAILED)
    change = m.observe(Outcome.PARTIAL, "refused function 3 with exception 2")
    assert change is not None
    assert change.state is DEG
    assert change.reason.startswith("some reads failed")
    assert m.failures == 0


def test_failures_that_never_answered_start_offline_not_degraded() -> None:
    m = Availability("d", ManualClock(), offline_after=3)
    change = m.observe(Outcome.FAILED, "no answer")
    assert change is not None
    assert change.state is OFF


def test_each_change_is_logged_once_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.devices.availability")
    clock = ManualClock()
    m = Availability("fryer1", clock, offline_after=2)
    outcomes = [Outcome.FULL] * 3 + [Outcome.FAILED] * 5 + [Outcome.FULL] * 3
    for o in outcomes:
        clock.advance(1)
        m.observe(o, "no answer")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    offline = "device fryer1 is offline (was degraded for 1 s): 2 polls in a row failed: no answer"
    assert lines == [
        ("INFO", "device fryer1 is online"),
        ("WARNING", "device fryer1 is degraded (was online for 3 s): a poll failed: no answer"),
        ("WARNING", offline),
        ("INFO", "device fryer1 is online (was offline for 4 s)"),
    ]  # fmt: skip


def test_stop_goes_offline_once_without_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.devices.availability")
    m = Availability("d", ManualClock())
    assert m.stop("gateway stopped") is None  # never online: nothing to take back
    m.observe(Outcome.FULL)
    caplog.clear()
    change = m.stop("gateway stopped")
    assert change is not None
    assert change.state is OFF
    assert change.reason == "gateway stopped"
    assert m.stop("again") is None
    assert caplog.records == []


def test_offline_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="offline_after"):
        Availability("d", ManualClock(), offline_after=0)


@pytest.mark.parametrize("step_s", [-7200.0, 7200.0])
def test_a_wall_clock_step_is_in_the_stamps_only(
    step_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    m = Availability("d", clock)
    m.observe(Outcome.DISCONNECTED, "refused")
    clock.advance(30)
    clock.step_wall(step_s)
    with caplog.at_level(logging.INFO, logger="gateway.devices.availability"):
        back = m.observe(Outcome.FULL)
    assert back is not None
    assert back.at == clock.now()  # the record carries the wall clock as it reads now
    # How long it was offline is monotonic time: 30 s, not 30 s plus or minus two hours.
    assert caplog.messages[-1] == "device d is online (was offline for 30 s)"
