"""``gateway device ...`` without a device: docs, value parsing, usage and lookup errors.

Reads and writes against a real Modbus server are in tests/integration/test_device_writes.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli import main
from gateway.devices.cli_commands import docs, parse_value
from gateway.devices.profile import BUILTIN_PROFILES, load_profiles

if TYPE_CHECKING:
    from pathlib import Path

FRYER = load_profiles()["fryer-2vat"]

SITE = """
[site]
id = "bistro"
name = "Bistro"

[state]
dir = "{state}"

[tables]
count = 2

[[stations]]
id = "fry"
name = "Fry"

[[groups]]
id = "fried"
names = {{ en = "Fried" }}

[[items]]
id = "fries"
group = "fried"
names = {{ en = "Fries" }}
price = 400
prep_s = 180

[[routes]]
group = "fried"
station = "fry"

[[devices]]
id = "fryer1"
profile = "fryer-2vat"
host = "127.0.0.1"
port = 1

[[devices]]
id = "probe1"
profile = "fridge-probe-node"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(state=tmp_path / "state"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("point", "text", "value"),
    [
        ("vat1_cook_time", "90", 90),
        ("vat1_cook_time", "-5", -5),
        ("vat1_set_temp", "175.5", 175.5),
        ("vat1_set_temp", "1e3", 1000.0),
        ("vat1_set_temp", "abc", "abc"),  # left as text: the guard refuses it as the wrong type
        ("vat1_timer_start", "true", True),
        ("vat1_timer_start", "ON", True),
        ("vat1_timer_start", "0", False),
        ("vat1_timer_start", "no", False),
        ("vat1_timer_start", "2", "2"),
        ("firmware", "12", "12"),  # text points keep text
        (None, "12", 12),  # an unknown point: still a number in the audit log
    ],
)
def test_parse_value(point: str | None, text: str, value: Any) -> None:
    p = FRYER.point(point) if point is not None else None
    parsed = parse_value(p, text)
    assert parsed == value
    assert type(parsed) is type(value)


def test_parse_value_keeps_nan_for_the_guard() -> None:
    p = FRYER.point("vat1_set_temp")
    parsed = parse_value(p, "nan")
    assert isinstance(parsed, float)
    assert math.isnan(parsed)


def test_docs_by_id_and_by_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "docs", "fryer-2vat"]) == 0
    by_id = capsys.readouterr().out
    assert by_id.startswith("Example Foodservice EF-2V (fryer)")
    assert "vat1_set_temp" in by_id
    assert docs(str(BUILTIN_PROFILES / "fryer-2vat.toml")) == 0
    assert capsys.readouterr().out == by_id


def test_docs_searches_the_sites_profile_directories(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "profiles"
    extra.mkdir()
    text = (BUILTIN_PROFILES / "fryer-2vat.toml").read_text(encoding="utf-8")
    (extra / "mine.toml").write_text(text.replace('"fryer-2vat"', '"my-fryer"'), encoding="utf-8")
    # A top-level key: it must come before the first table header.
    site.write_text(f'devices_profiles = ["{extra}"]\n' + site.read_text("utf-8"), "utf-8")
    assert main(["device", "docs", "my-fryer"]) == 1
    assert "no profile 'my-fryer'" in capsys.readouterr().err
    assert main(["device", "docs", "my-fryer", "--config", str(site)]) == 0
    assert "profile: my-fryer" in capsys.readouterr().out


def test_docs_of_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "docs", "toaster"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gateway: error: no profile 'toaster'; known profiles: ")
    assert "fryer-2vat" in err


def test_docs_of_a_broken_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[profile]\nid = 'x'\n", encoding="utf-8")
    assert main(["device", "docs", str(bad)]) == 2
    assert "problem" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["device"],
        ["device", "read", "fryer1"],  # --config is required
        ["device", "write", "fryer1", "vat1_cook_time", "--config", "x.toml"],
        ["device", "erase", "fryer1"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    capsys.readouterr()


def test_read_of_an_unknown_device(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "read", "fryer9", "--config", str(site)]) == 1
    err = capsys.readouterr().err
    assert err == "gateway: error: no device 'fryer9' in the site file; devices: fryer1, probe1\n"


def test_read_of_an_mqtt_sensor(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["device", "read", "probe1", "--config", str(site)]) == 1
    assert "probe1 is not a Modbus TCP device" in capsys.readouterr().err


def test_write_to_an_unknown_device_is_refused_and_audited(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["device", "write", "fryer9", "vat1_cook_time", "90", "--config", str(site)]
    assert main(argv) == 3
    assert "unknown device 'fryer9'" in capsys.readouterr().err
    assert (tmp_path / "state" / "audit.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_state_dir_flag_moves_the_audit_log(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "elsewhere"
    argv = ["device", "write", "probe1", "temp", "1", "--config", str(site)]
    assert main([*argv, "--state-dir", str(other)]) == 3
    assert "not a loaded Modbus profile" in capsys.readouterr().err
    assert (other / "audit.jsonl").exists()
    assert not (tmp_path / "state" / "audit.jsonl").exists()
