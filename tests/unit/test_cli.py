"""The ``gateway`` command line: exit codes, what it prints, and how overrides combine."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.cli import effective_config, main
from gateway.errors import BrokerUnavailable, StoreFull
from gateway.site_file import load_site

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

    from gateway.config import SiteConfig

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo-site.toml"

CROSS_REFERENCE_PROBLEMS = """
[site]
id = "bistro"
name = "Bistro"
languages = ["en", "fr"]

[tables]
count = 4

[[stations]]
id = "grill"
name = "Grill"
backup = "nowhere"

[[groups]]
id = "mains"
names = { en = "Mains" }

[[items]]
id = "steak"
group = "mainz"
names = { en = "Steak", fr = "Steak" }
price = 2000
prep_s = 600

[[routes]]
group = "mains"
station = "grill"
"""

SCHEMA_PROBLEMS = """
[site]
id = "bad id"
name = "Bistro"

[tables]
countt = 4

[[groups]]
id = "mains"
names = { en = "Mains" }

[[items]]
id = "steak"
group = "mains"
names = { en = "Steak" }
price = -5
prep_s = 600

[[routes]]
group = "mains"
station = "grill"
"""


@pytest.fixture(autouse=True)
def _keep_root_log_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


# --- check-config ---------------------------------------------------------------------------


def test_check_config_on_the_demo_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(DEMO)]) == 0
    out = capsys.readouterr().out
    for part in ("'trattoria'", "44 tables", "30 items", "6 stations", "Routes OK"):
        assert part in out
    assert out.count("\n") == 1, "the summary is one paragraph"


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        (CROSS_REFERENCE_PROBLEMS, ["stations[0].backup", "groups[0].names", "items[0].group"]),
        (SCHEMA_PROBLEMS, ["site.id", "tables.countt", "stations", "items[0].price"]),
    ],
    ids=["cross-references", "schema"],
)
def test_check_config_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, keys: list[str]
) -> None:
    site = tmp_path / "broken.toml"
    site.write_text(text)
    assert main(["check-config", str(site)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert str(site) in lines[0]
    problems = lines[1:]
    for key in keys:
        matching = [line for line in problems if line.strip().startswith(f"{key}:")]
        assert matching, f"{key} not reported in:\n{captured.err}"
        assert all("(fix: " in line for line in matching)


def test_check_config_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_config_on_bad_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "bad.toml"
    site.write_text("[site\n")
    assert main(["check-config", str(site)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_unknown_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check-config", str(DEMO), "--frobnicate"])
    assert exc.value.code == 2
    assert "--frobnicate" in capsys.readouterr().err


# --- overrides ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_site() -> SiteConfig:
    return load_site(DEMO)


def test_file_values_stand_without_flags_or_environment(demo_site: SiteConfig) -> None:
    cfg = effective_config(demo_site, {})
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    # The file says "state": relative to the site file's folder, not to where the command runs.
    assert cfg.state.dir == DEMO.parent / "state"


def test_environment_overrides_the_file(demo_site: SiteConfig) -> None:
    env = {"GATEWAY_MQTT_URL": "mqtt://broker.lan:1884", "GATEWAY_STATE_DIR": "/var/lib/gw"}
    cfg = effective_config(demo_site, env)
    assert cfg.mqtt.url == "mqtt://broker.lan:1884"
    assert cfg.state.dir == Path("/var/lib/gw")
    assert demo_site.mqtt.url == "mqtt://127.0.0.1:1883", "the loaded config is not changed"


def test_the_influx_url_comes_from_a_flag_or_the_environment(demo_site: SiteConfig) -> None:
    assert effective_config(demo_site, {}).telemetry.influx is None
    env = {"GATEWAY_INFLUX_URL": "http://env:8086"}
    influx = effective_config(demo_site, env).telemetry.influx
    assert influx is not None
    assert influx.url == "http://env:8086"
    influx = effective_config(demo_site, env, influx_url="http://flag:8086").telemetry.influx
    assert influx is not None
    assert influx.url == "http://flag:8086"


def test_flags_override_the_environment(demo_site: SiteConfig) -> None:
    env = {"GATEWAY_MQTT_URL": "mqtt://env:1883", "GATEWAY_STATE_DIR": "/env"}
    cfg = effective_config(demo_site, env, mqtt_url="mqtt://flag:1883", state_dir=Path("/flag"))
    assert cfg.mqtt.url == "mqtt://flag:1883"
    assert cfg.state.dir == Path("/flag")


def test_one_flag_and_one_variable_combine(demo_site: SiteConfig) -> None:
    env = {"GATEWAY_MQTT_URL": "mqtt://env:1883", "GATEWAY_STATE_DIR": "/env"}
    cfg = effective_config(demo_site, env, state_dir=Path("/flag"))
    assert (cfg.mqtt.url, cfg.state.dir) == ("mqtt://env:1883", Path("/flag"))


def test_empty_environment_values_count_as_unset(demo_site: SiteConfig) -> None:
    cfg = effective_config(demo_site, {"GATEWAY_MQTT_URL": "", "GATEWAY_STATE_DIR": ""})
    assert (cfg.mqtt.url, cfg.state.dir) == ("mqtt://127.0.0.1:1883", DEMO.parent / "state")


# --- contract -------------------------------------------------------------------------------


def test_contract_check_passes_on_the_committed_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contract", "check", "--dir", str(ROOT / "docs")]) == 0
    assert "up to date" in capsys.readouterr().out


def test_contract_check_lists_stale_files_and_export_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contract", "check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "asyncapi.yaml" in err
    assert "Ticket.json" in err
    assert "gateway contract export" in err
    assert main(["contract", "export", "--dir", str(tmp_path)]) == 0
    assert main(["contract", "check", "--dir", str(tmp_path)]) == 0


# --- run ------------------------------------------------------------------------------------


def _fake_app(
    monkeypatch: pytest.MonkeyPatch,
    run_gateway: Callable[[SiteConfig], Coroutine[object, object, None]],
) -> None:
    module = types.ModuleType("gateway.app")
    module.run_gateway = run_gateway  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.app", module)


def test_run_applies_flags_and_environment_then_exits_0(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[SiteConfig] = []

    async def run_gateway(cfg: SiteConfig) -> None:
        seen.append(cfg)

    _fake_app(monkeypatch, run_gateway)
    monkeypatch.setenv("GATEWAY_MQTT_URL", "mqtt://env:1883")
    monkeypatch.setenv("GATEWAY_STATE_DIR", "/env")
    code = main(
        ["run", "--config", str(DEMO), "--state-dir", str(tmp_path), "--log-level", "debug"]
    )
    assert code == 0
    (cfg,) = seen
    assert (cfg.mqtt.url, cfg.state.dir) == ("mqtt://env:1883", tmp_path)
    assert logging.getLogger().level == logging.DEBUG


@pytest.mark.parametrize(
    "error",
    [
        BrokerUnavailable("mqtt://127.0.0.1:1", "connection refused"),
        ExceptionGroup("services", [StoreFull(Path("/state/gateway.db"))]),
    ],
    ids=["plain", "in-a-task-group"],
)
def test_run_reports_a_gateway_error_in_one_line_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception
) -> None:
    async def run_gateway(cfg: SiteConfig) -> None:
        raise error

    _fake_app(monkeypatch, run_gateway)
    assert main(["run", "--config", str(DEMO)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("gateway: error:")]
    assert len(lines) == 1
    assert "Traceback" not in err


def test_run_with_a_broken_site_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_app(monkeypatch, lambda cfg: pytest.fail("must not start"))
    site = tmp_path / "broken.toml"
    site.write_text(CROSS_REFERENCE_PROBLEMS)
    assert main(["run", "--config", str(site)]) == 2
    assert "items[0].group" in capsys.readouterr().err


def test_run_keeps_the_traceback_of_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run_gateway(cfg: SiteConfig) -> None:
        raise ZeroDivisionError

    _fake_app(monkeypatch, run_gateway)
    with pytest.raises(ZeroDivisionError):
        main(["run", "--config", str(DEMO)])


def test_ctrl_c_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run_gateway(cfg: SiteConfig) -> None:
        raise KeyboardInterrupt

    _fake_app(monkeypatch, run_gateway)
    assert main(["run", "--config", str(DEMO)]) == 0


def test_run_uses_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    loops: list[object] = []

    async def run_gateway(cfg: SiteConfig) -> None:
        import asyncio  # noqa: PLC0415

        loops.append(asyncio.get_running_loop())

    _fake_app(monkeypatch, run_gateway)
    assert main(["run", "--config", str(DEMO)]) == 0
    assert isinstance(loops[0], uvloop.Loop)


# --- demo -----------------------------------------------------------------------------------


def test_demo_gets_every_argument_after_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def demo_main(argv: list[str]) -> int:
        calls.append(argv)
        return 3

    module = types.ModuleType("gateway.demo")
    module.main = demo_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.demo", module)
    assert main(["demo", "--speed", "20", "extra", "--help"]) == 3
    assert main(["demo"]) == 3
    assert calls == [["--speed", "20", "extra", "--help"], []]
