"""``gateway alerts list`` on real store files, and ``alerts ack`` without a broker or bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.cli import main
from gateway.config import AlertsConfig
from gateway.telemetry.alerts import AlertBook, Timing
from gateway.telemetry.alerts_store import AlertStore, snapshot_of
from gateway.telemetry.signals import Priority, Signal
from gateway.transport.broker import free_port

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
SITE = """
[site]
id = "s1"
name = "Test"
[state]
dir = "{state}"
[tables]
count = 2
[[stations]]
id = "grill"
name = "Grill"
[[groups]]
id = "mains"
names = {{ en = "Mains" }}
[[items]]
id = "burger"
group = "mains"
names = {{ en = "Burger" }}
price = 1000
prep_s = 60
[[routes]]
group = "mains"
station = "grill"
"""


def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(state=tmp_path / "state"))
    return path


def keep(tmp_path: Path) -> None:
    """Three alerts, as a gateway would have left them: one acknowledged, one over."""
    book = AlertBook(Timing.from_config(AlertsConfig()))
    store = AlertStore(tmp_path / "state", fsync=False)
    events = []
    for device, prio in (("fridge-1", Priority.HIGH), ("fryer-1", Priority.CRITICAL),
                         ("oven-1", Priority.LOW)):  # fmt: skip
        sig = Signal("open", device, "r", prio, T0, text=f"{device} is wrong")
        events += book.apply(sig, 0.0, T0)
    events += book.ack("fridge-1:r", "Marta", "door closed", T0).events
    events += book.apply(Signal("clear", "oven-1", "r", Priority.LOW, T0, text="ok"), 0.0, T0)
    store.write(events, snapshot_of(book.seq, T0, book.active, book.cleared))
    store.close()


def test_list_prints_the_active_alerts_most_urgent_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path)
    assert main(["alerts", "list", "--config", str(path)]) == 0
    assert "no active alerts" in capsys.readouterr().out
    keep(tmp_path)
    assert main(["alerts", "list", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2 active alert(s)")
    assert out[1].startswith("critical  fryer-1:r   since ")
    assert out[1].endswith("unacknowledged  fryer-1 is wrong")
    assert out[2].startswith("high      fridge-1:r  since ")
    assert "acknowledged by Marta at " in out[2]
    assert "(door closed)" in out[2]
    assert len(out) == 3
    assert main(["alerts", "list", "--all", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3].startswith("1 alert(s) over")
    assert out[4].startswith("low       oven-1:r    ")
    assert out[4].endswith("oven-1 is wrong")


def test_list_works_with_a_state_dir_given_and_says_what_is_wrong_with_a_damaged_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "alerts.json").write_text("{not json")
    assert main(["alerts", "list", "--config", str(path), "--state-dir", str(other)]) == 1
    err = capsys.readouterr().err
    assert f"{other / 'alerts.json'} is not a readable alert state" in err
    assert "Traceback" not in err


def test_ack_refuses_what_the_gateway_would_refuse_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path)
    code = main(["alerts", "ack", "fridge-1:r", "--by", " ", "--note", "x", "--config", str(path)])
    assert code == 2
    assert "by:" in capsys.readouterr().err


def test_ack_without_a_broker_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = site(tmp_path)
    url = f"mqtt://127.0.0.1:{free_port()}"
    code = main(["alerts", "ack", "fridge-1:r", "--by", "Marta", "--note", "x", "--config",
                 str(path), "--mqtt-url", url, "--timeout", "1"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("gateway alerts ack: cannot reach the MQTT broker at ")
    assert len(err.strip().splitlines()) == 1
