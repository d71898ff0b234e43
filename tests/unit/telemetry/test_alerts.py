"""The alert book: dedup, escalation one level per unacknowledged period, acks, clears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import AlertsConfig
from gateway.contract import AckStatus
from gateway.telemetry.alerts import CLEARED_KEPT, AlertBook, AlertEvent, Timing
from gateway.telemetry.signals import Priority, Signal

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
TIMING = Timing.from_config(AlertsConfig())  # high 900 s, medium 3600 s, low never, renotify 600


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def opening(device: str = "fridge-1", rule: str = "cold_holding",
            priority: Priority = Priority.MEDIUM, t: float = 0.0) -> Signal:  # fmt: skip
    return Signal("open", device, rule, priority, at(t), point="cabinet_temp", value=9.5,
                  limit=8.0, since=at(t - 1200), food_safety=True, text="too warm")  # fmt: skip


def clearing(device: str = "fridge-1", rule: str = "cold_holding", t: float = 0.0) -> Signal:
    return Signal("clear", device, rule, Priority.MEDIUM, at(t), text="cold again")


def kinds(events: list[AlertEvent]) -> list[str]:
    return [e.event for e in events]


def test_the_defaults_are_the_documented_ones() -> None:
    assert TIMING.after_s == {
        Priority.CRITICAL: 600,
        Priority.HIGH: 900,
        Priority.MEDIUM: 3600,
        Priority.LOW: None,
    }
    one = Timing.from_config(AlertsConfig(escalate_after_s=60, renotify_s=0))
    assert one.after_s == {Priority.CRITICAL: None, Priority.HIGH: 60, Priority.MEDIUM: 60,
                           Priority.LOW: 60}  # fmt: skip


def test_an_alert_opens_once_with_what_it_is_about_and_repeats_say_nothing() -> None:
    book = AlertBook(TIMING)
    (ev,) = book.apply(opening(), 0.0, at(0))
    assert (ev.seq, ev.event, ev.at, ev.message) == (1, "opened", at(0), "too warm")
    a = ev.alert
    assert (a.alert_id, a.subject, a.rule, a.priority) == (
        "fridge-1:cold_holding", "fridge-1", "cold_holding", Priority.MEDIUM
    )
    assert (a.point, a.value, a.limit, a.food_safety) == ("cabinet_temp", 9.5, 8.0, True)
    assert a.started_at == at(-1200)  # when the condition began, not when it was judged
    assert book.apply(opening(t=5), 5.0, at(5)) == []
    assert book.apply(opening(priority=Priority.CRITICAL), 6.0, at(6)) == []
    assert [r.alert_id for r in book.active] == ["fridge-1:cold_holding"]
    assert book.seq == 1


def test_a_clear_ends_it_once_and_a_clear_of_nothing_says_nothing() -> None:
    book = AlertBook(TIMING)
    assert book.apply(clearing(), 0.0, at(0)) == []
    book.apply(opening(), 0.0, at(0))
    (ev,) = book.apply(clearing(t=30), 30.0, at(30))
    assert (ev.event, ev.message, ev.alert.cleared_at) == ("cleared", "cold again", at(30))
    assert book.active == []
    assert book.apply(clearing(t=31), 31.0, at(31)) == []
    # The next time the rule is violated is a new occurrence, opened and announced again.
    assert kinds(book.apply(opening(t=40), 40.0, at(40))) == ["opened"]


def test_unacknowledged_it_goes_up_one_level_per_period_then_is_said_again() -> None:
    book = AlertBook(TIMING)
    book.apply(opening(priority=Priority.MEDIUM), 0.0, at(0))
    assert book.tick(3599.0, at(3599)) == []
    (up,) = book.tick(3600.0, at(3600))
    assert (up.event, up.alert.priority, up.alert.escalations) == ("escalated", Priority.HIGH, 1)
    assert book.tick(3600 + 899.0, at(4499)) == []
    (up,) = book.tick(3600 + 900.0, at(4500))
    assert (up.event, up.alert.priority) == ("escalated", Priority.CRITICAL)
    (again,) = book.tick(4500 + 600.0, at(5100))
    assert (again.event, again.alert.priority) == ("renotified", Priority.CRITICAL)
    (again,) = book.tick(5100 + 600.0, at(5700))
    assert again.event == "renotified"


def test_a_late_tick_escalates_one_level_only_and_the_next_period_counts_from_it() -> None:
    book = AlertBook(TIMING)
    book.apply(opening(priority=Priority.MEDIUM), 0.0, at(0))
    (up,) = book.tick(50_000.0, at(50_000))  # the loop was stuck for hours: still one level
    assert up.alert.priority is Priority.HIGH
    assert book.tick(50_001.0, at(50_001)) == []
    assert book.next_due == 50_000.0 + 900


def test_low_alerts_never_escalate_by_default() -> None:
    book = AlertBook(TIMING)
    book.apply(opening(priority=Priority.LOW), 0.0, at(0))
    assert book.next_due is None
    assert book.tick(1e9, at(0)) == []


def test_an_acknowledged_alert_never_escalates_and_the_first_ack_is_the_one_kept() -> None:
    book = AlertBook(TIMING)
    book.apply(opening(priority=Priority.HIGH), 0.0, at(0))
    first = book.ack("fridge-1:cold_holding", "Marta", "door closed", at(60))
    assert first.status is AckStatus.ACKNOWLEDGED
    assert kinds(list(first.events)) == ["acknowledged"]
    assert first.alert is not None
    assert (first.alert.acked_by, first.alert.acked_at, first.alert.note) == (
        "Marta", at(60), "door closed"
    )
    again = book.ack("fridge-1:cold_holding", "Luca", "on it", at(70))
    assert (again.status, again.events) == (AckStatus.ALREADY_ACKNOWLEDGED, ())
    assert again.alert is not None
    assert again.alert.acked_by == "Marta"
    assert book.tick(1e6, at(1e6)) == []
    assert book.next_due is None
    # Still active: only the detector's clear ends it.
    assert [r.acked_by for r in book.active] == ["Marta"]
    (ev,) = book.apply(clearing(t=900), 900.0, at(900))
    assert ev.alert.acked_by == "Marta"
    late = book.ack("fridge-1:cold_holding", "Luca", "on it", at(901))
    assert late.status is AckStatus.ALREADY_ACKNOWLEDGED  # told who, and that it is over
    assert late.alert is not None
    assert late.alert.cleared_at == at(900)


def test_acks_of_unknown_and_of_cleared_alerts_are_told_so() -> None:
    book = AlertBook(TIMING)
    assert book.ack("nope:nothing", "Marta", "x", at(0)).status is AckStatus.UNKNOWN
    book.apply(opening(), 0.0, at(0))
    book.apply(clearing(t=10), 10.0, at(10))
    over = book.ack("fridge-1:cold_holding", "Marta", "x", at(20))
    assert (over.status, over.events) == (AckStatus.CLEARED, ())
    assert over.alert is not None
    assert over.alert.cleared_at == at(10)


def test_a_latched_alert_is_over_once_acknowledged() -> None:
    book = AlertBook(TIMING)
    dead = Signal("open", "orders", "dead_letter", Priority.CRITICAL, at(0), text="kept in ...")
    book.apply(dead, 0.0, at(0), latched=True)
    result = book.ack("orders:dead_letter", "Marta", "reported the bug", at(5))
    assert result.status is AckStatus.ACKNOWLEDGED
    assert kinds(list(result.events)) == ["acknowledged", "cleared"]
    assert result.events[1].message == "acknowledged by Marta: reported the bug"
    assert book.active == []
    assert book.ack("orders:dead_letter", "Marta", "again", at(6)).status is (
        AckStatus.ALREADY_ACKNOWLEDGED
    )
    assert kinds(book.apply(dead, 7.0, at(7), latched=True)) == ["opened"]  # a new one


def test_the_active_set_is_most_urgent_first_then_oldest() -> None:
    book = AlertBook(TIMING)
    book.apply(opening("a", "r", Priority.LOW, t=0), 0.0, at(0))
    book.apply(opening("b", "r", Priority.CRITICAL, t=10), 10.0, at(10))
    book.apply(opening("c", "r", Priority.CRITICAL, t=5), 5.0, at(5))
    assert [r.alert_id for r in book.active] == ["c:r", "b:r", "a:r"]


def test_cleared_alerts_are_remembered_up_to_a_bound() -> None:
    book = AlertBook(TIMING)
    for n in range(CLEARED_KEPT + 5):
        book.apply(opening(f"d{n}"), 0.0, at(0))
        book.apply(clearing(f"d{n}"), 0.0, at(0))
    assert len(book.cleared) == CLEARED_KEPT
    assert book.ack("d0:cold_holding", "M", "x", at(1)).status is AckStatus.UNKNOWN
    assert book.ack(f"d{CLEARED_KEPT + 4}:cold_holding", "M", "x", at(1)).status is (
        AckStatus.CLEARED
    )


def test_a_restored_book_gives_unacknowledged_alerts_a_fresh_period() -> None:
    book = AlertBook(TIMING)
    book.apply(opening(priority=Priority.HIGH), 0.0, at(0))
    book.apply(opening("fryer-1", "oil", Priority.HIGH), 0.0, at(0))
    book.ack("fryer-1:oil", "Marta", "x", at(1))
    # Monotonic time starts elsewhere after a restart: the period counts from the restore.
    restored = AlertBook(TIMING, active=book.active, cleared=book.cleared, seq=book.seq,
                         mono=7.0)  # fmt: skip
    assert restored.next_due == 7.0 + 900
    (up,) = restored.tick(907.0, at(2000))
    assert up.alert.alert_id == "fridge-1:cold_holding"
    assert up.seq == book.seq + 1


def test_replaying_events_onto_an_older_state_gives_the_newer_one() -> None:
    book = AlertBook(TIMING)
    events = book.apply(opening(priority=Priority.HIGH), 0.0, at(0))
    old = AlertBook(TIMING, active=book.active, seq=book.seq)
    events += book.apply(opening("fryer-1", "oil", Priority.LOW), 1.0, at(1))
    events += list(book.ack("fridge-1:cold_holding", "Marta", "x", at(2)).events)
    events += book.apply(clearing("fryer-1", "oil"), 3.0, at(3))
    assert old.replay(events, 100.0) == 3  # the first is in its state already
    assert old.active == book.active
    assert old.cleared == book.cleared
    assert old.seq == book.seq
    assert old.next_due is None  # acknowledged: nothing to escalate


# --- properties over random sequences ----------------------------------------------------------

SMALL = Timing({Priority.CRITICAL: 300.0, Priority.HIGH: 200.0, Priority.MEDIUM: 100.0,
                Priority.LOW: 50.0})  # fmt: skip
IDS = ("a", "b", "c")
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(IDS), st.sampled_from(list(Priority)),
                  st.booleans()),
        st.tuples(st.just("clear"), st.sampled_from(IDS)),
        st.tuples(st.just("ack"), st.sampled_from((*IDS, "x")), st.sampled_from(("M", "L"))),
        st.tuples(st.just("tick"), st.floats(0, 700)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_random_signals_acks_and_ticks_keep_the_book_sound(ops: list[tuple[object, ...]]) -> None:
    book = AlertBook(SMALL)
    mono = 0.0
    events: list[tuple[float, AlertEvent]] = []
    for op in ops:
        if op[0] == "tick":
            mono += float(op[1])  # type: ignore[arg-type]
            events += [(mono, e) for e in book.tick(mono, at(mono))]
        elif op[0] == "open":
            _, dev, prio, latched = op
            sig = Signal("open", str(dev), "r", prio, at(mono))  # type: ignore[arg-type]
            events += [(mono, e) for e in book.apply(sig, mono, at(mono), latched=bool(latched))]
        elif op[0] == "clear":
            sig = Signal("clear", str(op[1]), "r", Priority.LOW, at(mono))
            events += [(mono, e) for e in book.apply(sig, mono, at(mono))]
        else:
            result = book.ack(f"{op[1]}:r", str(op[2]), "note", at(mono))
            assert bool(result.events) == (result.status is AckStatus.ACKNOWLEDGED)
            events += [(mono, e) for e in result.events]

    assert [e.seq for _, e in events] == list(range(1, len(events) + 1))
    active: dict[str, AlertEvent] = {}  # the occurrence's last event
    last_level: dict[str, float] = {}  # when it got its current priority
    for when, e in events:
        alert_id = e.alert.alert_id
        if e.event == "opened":
            assert alert_id not in active, "two active alerts with one id"
            last_level[alert_id] = when
        else:
            assert alert_id in active, f"{e.event} of an alert that is not active"
            before = active[alert_id].alert
            if e.event in ("escalated", "renotified"):
                assert not before.acknowledged, "an acknowledged alert escalated"
                period = SMALL.period(before.priority)
                assert period is not None
                # A hair of float slack: the test sums its ticks apart from the book's own sums.
                assert when - last_level[alert_id] >= period - 1e-9, "escalated before its period"
                assert e.alert.priority is before.priority.escalated()
                last_level[alert_id] = when
        if e.event == "cleared":
            del active[alert_id]
        else:
            active[alert_id] = e
    # Every opened alert is either active now or was cleared; the book agrees.
    assert {r.alert_id for r in book.active} == set(active)
    assert {r.alert_id: r for r in book.active} == {k: e.alert for k, e in active.items()}
    replayed = AlertBook(SMALL)
    replayed.replay([e for _, e in events], 0.0)
    assert replayed.active == book.active
    assert replayed.cleared == book.cleared
