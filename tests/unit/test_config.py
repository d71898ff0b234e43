"""The site file: schema (config.py), reading and cross-reference checks (site_file.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import Route, SiteConfig, StationKind, Tables
from gateway.contract import Dining
from gateway.errors import ConfigError, ConfigProblem
from gateway.site_file import load_site, parse_site

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.toml"


def site(**sections: Any) -> dict[str, Any]:
    """A small valid site as parsed TOML; keyword arguments replace whole sections."""
    base: dict[str, Any] = {
        "site": {"id": "bistro", "name": "Bistro", "languages": ["en", "fr"]},
        "tables": {"count": 4},
        "stations": [
            {"id": "grill", "name": "Grill"},
            {"id": "cold", "name": "Cold"},
            {"id": "expo", "name": "Expo", "kind": "expo"},
        ],
        "courses": [{"number": 1, "name": "starters"}, {"number": 2, "name": "mains"}],
        "groups": [
            {"id": "mains", "names": {"en": "Mains", "fr": "Plats"}, "course": 2},
            {"id": "salads", "names": {"en": "Salads", "fr": "Salades"}},
        ],
        "modifiers": [{"id": "rare", "names": {"en": "Rare", "fr": "Saignant"}}],
        "items": [
            {
                "id": "steak",
                "group": "mains",
                "names": {"en": "Steak", "fr": "Steak"},
                "price": 2000,
                "prep_s": 600,
                "modifiers": ["rare"],
            },
            {
                "id": "nicoise",
                "group": "salads",
                "names": {"en": "Nicoise", "fr": "Niçoise"},
                "price": 1200,
                "prep_s": 240,
            },
        ],
        "routes": [
            {"group": "mains", "station": "grill"},
            {"group": "salads", "station": "cold"},
        ],
    }
    base.update(copy.deepcopy(sections))
    return base


def problems(data: dict[str, Any]) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as err:
        parse_site(data)
    return err.value.problems


def keys(data: dict[str, Any]) -> set[str]:
    return {p.key for p in problems(data)}


# --- the demo site and the small site ----------------------------------------------------------


def test_demo_site_loads_clean() -> None:
    cfg = load_site(DEMO)
    assert cfg.site.id == "trattoria"
    assert len(cfg.items) == 30
    assert [s.id for s in cfg.stations if s.kind is StationKind.EXPO] == ["expo"]
    assert cfg.client_id == "gateway-trattoria"
    assert "T40" in cfg.tables.all_ids()
    assert "BAR1" in cfg.tables.all_ids()


def test_small_site_is_valid() -> None:
    cfg = parse_site(site())
    assert cfg.item("steak") is not None
    assert cfg.item("nope") is None


# --- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["gr ill", "grill#", "grill+", "a/b", "-grill", "", "x" * 65, "grill\n", "grïll"]
)
def test_bad_ids_are_rejected_with_a_fix(bad: str) -> None:
    data = site()
    data["stations"][0]["id"] = bad
    found = problems(data)
    assert "stations[0].id" in {p.key for p in found}
    fix = next(p.fix for p in found if p.key == "stations[0].id")
    assert "no spaces" in fix


@pytest.mark.parametrize("section", ["items", "groups", "modifiers"])
def test_bad_ids_rejected_in_every_section(section: str) -> None:
    data = site()
    data[section][0]["id"] = "has space"
    assert f"{section}[0].id" in keys(data)


def test_bad_table_id_rejected() -> None:
    assert "tables.ids[0]" in keys(site(tables={"ids": ["T 1"]}))


def test_ids_may_use_dots_dashes_underscores_and_64_chars() -> None:
    data = site()
    data["stations"][1]["id"] = "c" * 64
    data["routes"][1]["station"] = "c" * 64
    data["items"][1]["id"] = "Nic_oise.2-b"
    parse_site(data)


def test_table_prefix_must_make_valid_ids() -> None:
    problems(site(tables={"count": 2, "prefix": "Table "}))


# --- schema problems -----------------------------------------------------------------------


def test_unknown_key_is_named_with_a_fix() -> None:
    data = site()
    data["items"][0]["prise"] = 5
    (p,) = problems(data)
    assert p.key == "items[0].prise"
    assert p.fix == "remove the key or correct its spelling"


def test_missing_key_is_named() -> None:
    data = site()
    del data["items"][0]["price"]
    (p,) = problems(data)
    assert (p.key, p.fix) == ("items[0].price", "add the key")


def test_route_needs_exactly_one_target() -> None:
    with pytest.raises(ValidationError):
        Route(station="grill")
    with pytest.raises(ValidationError):
        Route(station="grill", group="mains", item="steak")
    assert "routes[0]" in keys(site(routes=[{"station": "grill"}]))


def test_config_is_frozen() -> None:
    cfg = parse_site(site())
    with pytest.raises(ValidationError):
        cfg.site.name = "other"  # type: ignore[misc]


# --- cross references ------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["stations", "groups", "items", "modifiers"])
def test_duplicate_ids(section: str) -> None:
    data = site()
    data[section].append(copy.deepcopy(data[section][0]))
    found = [p for p in problems(data) if p.key == section]
    assert found
    assert "used 2 times" in found[0].message
    assert found[0].fix == "give each entry its own id"


def test_duplicate_course_and_table_ids() -> None:
    courses = [{"number": 1, "name": "a"}, {"number": 1, "name": "b"}, {"number": 2, "name": "c"}]
    assert {"courses", "tables"} <= keys(site(courses=courses, tables={"ids": ["A", "A"]}))


def test_unknown_references_are_all_reported_with_choices() -> None:
    data = site()
    data["items"][0]["group"] = "grills"
    data["items"][0]["modifiers"] = ["rare", "blue"]
    data["items"][1]["course"] = 7
    data["groups"][1]["course"] = 5
    data["stations"][0]["backup"] = "fryer"
    found = {p.key: p for p in problems(data)}
    assert set(found) == {
        "items[0].group",
        "items[0].modifiers",
        "items[1].course",
        "groups[1].course",
        "stations[0].backup",
    }
    assert found["items[0].group"].fix == "use one of: mains, salads"
    assert "'blue'" in found["items[0].modifiers"].message
    assert found["stations[0].backup"].fix == "use one of: cold, expo, grill"


def test_unknown_route_targets() -> None:
    routes = [
        {"group": "mains", "station": "grill"},
        {"group": "salads", "station": "cold"},
        {"group": "sides", "station": "grill"},
        {"item": "soup", "station": "grill"},
        {"modifier": "blue", "station": "grill"},
    ]
    assert keys(site(routes=routes)) == {"routes[2].group", "routes[3].item", "routes[4].modifier"}


def test_station_cannot_back_itself_up() -> None:
    data = site()
    data["stations"][0]["backup"] = "grill"
    (p,) = problems(data)
    assert p.key == "stations[0].backup"


def test_one_expo_at_most() -> None:
    data = site()
    data["stations"].append({"id": "pass", "name": "Pass", "kind": "expo"})
    (p,) = problems(data)
    assert (p.key, p.fix) == ("stations", "keep exactly one expo")


def test_no_tables() -> None:
    (p,) = problems(site(tables={}))
    assert p.key == "tables"


def test_missing_language_names() -> None:
    data = site()
    data["items"][1]["names"] = {"en": "Nicoise"}
    data["groups"][0]["names"] = {}
    data["modifiers"][0]["names"] = {"fr": "Saignant"}
    found = {p.key: p for p in problems(data)}
    assert set(found) == {"items[1].names", "groups[0].names", "modifiers[0].names"}
    assert found["items[1].names"].fix == 'add fr = "..."'
    assert found["groups[0].names"].message == "no name in en, fr"


def test_every_problem_reported_at_once_with_key_message_and_fix() -> None:
    data = site()
    data["stations"].append({"id": "grill", "name": "Second grill"})
    data["items"][0]["group"] = "grills"
    data["items"][1]["names"] = {"en": "Nicoise"}
    data["stations"][1]["backup"] = "pastry"
    found = problems(data)
    assert {p.key for p in found} == {
        "stations",
        "items[0].group",
        "items[1].names",
        "stations[1].backup",
    }
    for p in found:
        assert p.key
        assert p.message
        assert p.fix
        assert p.key in str(p)
        assert "fix:" in str(p)


def test_routing_problems_reported_alongside_unrelated_ones() -> None:
    data = site()
    data["items"][1]["names"] = {"en": "Nicoise"}
    data["routes"][1]["station"] = "salad_bar"
    assert keys(data) == {"items[1].names", "routes[1].station"}


def test_config_error_lists_every_problem_and_the_file(tmp_path: Path) -> None:
    err = ConfigError(tmp_path / "site.toml", [ConfigProblem("a", "b", "c")] * 2)
    text = str(err)
    assert str(tmp_path / "site.toml") in text
    assert "2 problem(s)" in text
    assert text.count("a: b (fix: c)") == 2


# --- load_site -------------------------------------------------------------------------------


def test_load_site_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_site(tmp_path / "nope.toml")
    assert err.value.path == tmp_path / "nope.toml"
    assert err.value.problems[0].key == "(file)"


@pytest.mark.parametrize("content", [b"[site\nid = 1", b"\xff\xfe"])
def test_load_site_bad_toml(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "not valid TOML" in err.value.problems[0].message


def test_load_site_reports_schema_problems_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(DEMO.read_text(encoding="utf-8").replace('id = "grill"', 'id = "gr ill"', 1))
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert str(path) in str(err.value)
    assert err.value.problems[0].key == "stations[0].id"


# --- small behaviours ------------------------------------------------------------------------


def test_tables_all_ids() -> None:
    assert Tables(count=2, ids=("BAR",)).all_ids() == {"T1", "T2", "BAR"}
    assert Tables(count=1, prefix="Table").all_ids() == {"Table1"}
    assert Tables().all_ids() == frozenset()


def test_mqtt_password_env_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n", encoding="utf-8")
    cfg = parse_site(site(mqtt={"password_file": str(pw)}))
    monkeypatch.delenv("GATEWAY_MQTT_PASSWORD", raising=False)
    assert cfg.mqtt.password() == "from-file"
    monkeypatch.setenv("GATEWAY_MQTT_PASSWORD", "from-env")
    assert cfg.mqtt.password() == "from-env"


def test_with_overrides_returns_a_new_config(tmp_path: Path) -> None:
    cfg = parse_site(site())
    new = cfg.with_overrides(mqtt_url="mqtt://10.0.0.2:1883", state_dir=tmp_path)
    assert (new.mqtt.url, new.state.dir) == ("mqtt://10.0.0.2:1883", tmp_path)
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert cfg.with_overrides() == cfg


def test_dining_values_are_the_wire_values() -> None:
    assert [d.value for d in Dining] == ["dine_in", "takeaway", "delivery"]
    assert isinstance(SiteConfig.model_json_schema(), dict)


def test_relative_paths_in_a_site_file_are_relative_to_that_file(tmp_path: Path) -> None:
    site_dir = tmp_path / "etc" / "gateway"
    site_dir.mkdir(parents=True)
    text = DEMO.read_text(encoding="utf-8")
    text = text.replace('dir = "state"', 'dir = "var/state"')
    text = text.replace("[mqtt]\n", '[mqtt]\npassword_file = "mqtt.pw"\n')
    (site_dir / "site.toml").write_text(text)
    cfg = load_site(site_dir / "site.toml")
    assert cfg.state.dir == site_dir / "var" / "state"
    assert cfg.mqtt.password_file == site_dir / "mqtt.pw"
    absolute = load_site(site_dir / "site.toml").with_overrides(state_dir=Path("/srv/state"))
    assert absolute.state.dir == Path("/srv/state")


# --- telemetry ---------------------------------------------------------------------------------


def test_telemetry_defaults_keep_a_local_history_only() -> None:
    cfg = parse_site(site())
    assert cfg.telemetry.history_days == 14
    assert cfg.telemetry.influx is None


def test_an_influx_token_in_the_site_file_is_refused_with_the_fix() -> None:
    data = site()
    data["telemetry"] = {"influx": {"url": "http://influx:8086", "token": "s3cret"}}
    [problem] = problems(data)
    assert problem.key == "telemetry.influx"
    assert "token_file" in problem.message
    assert "GATEWAY_INFLUX_TOKEN" in problem.message


def test_the_influx_token_comes_from_the_environment_or_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "site.toml").write_text(
        DEMO.read_text() + '\n[telemetry.influx]\nurl = "http://i:8086"\ntoken_file = "token"\n'
    )
    cfg = load_site(tmp_path / "site.toml")
    assert cfg.telemetry.influx is not None
    assert cfg.telemetry.influx.token_file == tmp_path / "token"  # relative to the site file
    monkeypatch.delenv("GATEWAY_INFLUX_TOKEN", raising=False)
    assert cfg.telemetry.influx.token() == "from-file"
    monkeypatch.setenv("GATEWAY_INFLUX_TOKEN", "from-env")
    assert cfg.telemetry.influx.token() == "from-env"


def test_an_influx_url_override_adds_a_sink_with_default_org_and_bucket() -> None:
    cfg = parse_site(site()).with_overrides(influx_url="http://tsdb:8428")
    influx = cfg.telemetry.influx
    assert influx is not None
    assert (influx.url, influx.org, influx.bucket) == ("http://tsdb:8428", "kitchen", "kitchen")


def test_an_influx_url_must_be_http() -> None:
    data = site()
    data["telemetry"] = {"influx": {"url": "influx.local:8086"}}
    assert keys(data) == {"telemetry.influx.url"}
