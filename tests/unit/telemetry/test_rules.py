"""Device rules in profiles (``[[rules]]``) and a site's overrides (``[devices.rules.ID]``)."""

from __future__ import annotations

import copy
import tomllib
import typing
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from gateway.config import DeviceInstance, RuleCondition, RuleOverride
from gateway.devices.profile import Profile, load_profile, load_profiles
from gateway.devices.rules import (
    AnomalyRule,
    FlatlineRule,
    LimitRule,
    RecoveryRule,
    SilentRule,
    TrendRule,
    merge_rules,
)
from gateway.errors import ConfigError
from gateway.site_file import parse_site
from gateway.telemetry.detectors import detectors_for

if TYPE_CHECKING:
    from pathlib import Path

POINTS: list[dict[str, Any]] = [
    {"id": "cabinet_temp", "name": "Cabinet air", "table": "input", "address": 0,
     "type": "i16", "scale": 0.1, "unit": "°C", "food_safety": True},
    {"id": "mode", "name": "Mode", "table": "input", "address": 1},
    {"id": "label", "name": "Label", "table": "input", "address": 2, "type": "string",
     "length": 2},
    {"id": "door_open", "name": "Door", "table": "discrete", "address": 0, "type": "bit"},
    {"id": "compressor_running", "name": "Compressor", "table": "discrete", "address": 1,
     "type": "bit"},
]  # fmt: skip
COLD = {"id": "cold_holding", "kind": "limit", "point": "cabinet_temp", "above": 5.0,
        "hold_s": 1800, "suppress_when": ["door_open"], "food_safety": True,
        "priority": "critical"}  # fmt: skip


def profile_data(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "profile": {"id": "room", "vendor": "V", "model": "M", "kind": "fridge",
                    "protocol": "modbus"},
        "points": copy.deepcopy(POINTS),
        "rules": [copy.deepcopy(r) for r in rules],
    }  # fmt: skip


def profile(*rules: dict[str, Any]) -> Profile:
    return Profile.model_validate(profile_data(*rules))


def errors(*rules: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as err:
        profile(*rules)
    return str(err.value)


# ---- the rules of a profile ------------------------------------------------------------------


def test_a_limit_rule_is_parsed_with_its_defaults() -> None:
    (rule,) = profile(COLD).rules
    assert isinstance(rule, LimitRule)
    assert (rule.above, rule.below, rule.limit, rule.high) == (5.0, None, 5.0, True)
    assert (rule.hold_s, rule.hysteresis, rule.clear_s) == (1800, 0.0, 0.0)
    assert rule.suppress_when == ("door_open",)
    assert (rule.priority, rule.food_safety, rule.enabled) == ("critical", True, True)
    assert rule.suppress_max_s == 3600


def test_every_kind_is_told_apart_by_kind() -> None:
    p = profile(
        COLD,
        {"id": "t", "kind": "trend", "point": "cabinet_temp", "above": 5, "horizon_s": 600,
         "min_rate_per_h": 1},
        {"id": "r", "kind": "recovery", "point": "cabinet_temp", "after": "door_open",
         "margin": 0.5},
        {"id": "f", "kind": "flatline", "point": "cabinet_temp", "window_s": 600,
         "min_range": 0.2},
        {"id": "s", "kind": "silent", "after_s": 300},
        {"id": "a", "kind": "anomaly", "point": "compressor_running", "of": "off_run",
         "min_std": 60},
        {"id": "c", "kind": "anomaly", "point": "cabinet_temp", "of": "start_level",
         "while_point": "compressor_running", "min_std": 0.1},
    )  # fmt: skip
    kinds = [type(r) for r in p.rules]
    assert kinds == [LimitRule, TrendRule, RecoveryRule, FlatlineRule, SilentRule, AnomalyRule,
                     AnomalyRule]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({**COLD, "kind": "limmit"}, "limmit"),
        ({**COLD, "hold": 60}, "Extra inputs"),
        ({**COLD, "below": 1.0}, "exactly one of above or below"),
        ({k: v for k, v in COLD.items() if k != "above"}, "exactly one of above or below"),
        ({**COLD, "hold_s": -1}, "greater than or equal to 0"),
        ({**COLD, "above": float("nan")}, "finite number"),
        ({**COLD, "priority": "urgent"}, "critical"),
        ({"id": "x", "kind": "silent"}, "after_s"),
        ({"id": "a", "kind": "anomaly", "point": "cabinet_temp", "of": "rate", "min_std": 1},
         "need while_point"),
        ({"id": "a", "kind": "anomaly", "point": "cabinet_temp", "min_std": 1,
          "while_point": "door_open"}, "only they take one"),
        ({"id": "has space", "kind": "silent", "after_s": 5}, "pattern"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_refused_with_what_is_wrong(rule: dict[str, Any], words: str) -> None:
    assert words in errors(rule)


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({**COLD, "point": "cabinet_tmp"}, "names 'cabinet_tmp', which the profile does not have"),
        ({**COLD, "suppress_when": ["mode"]}, "'mode' holds number, not a bit"),
        ({**COLD, "point": "label"}, "'label' holds text"),
        ({**COLD, "when": [{"point": "doors", "equals": True}]}, "rules[0].when.doors"),
        ({"id": "r", "kind": "recovery", "point": "cabinet_temp", "after": "mode", "margin": 1},
         "rules[0].after"),
        ({"id": "a", "kind": "anomaly", "point": "cabinet_temp", "of": "duty", "min_std": 0.1},
         "not a bit"),
        ({**COLD, "relative_to": "door_open"}, "name a numeric point"),
    ],
)  # fmt: skip
def test_a_rule_names_points_the_profile_has_of_the_right_kind(
    rule: dict[str, Any], words: str
) -> None:
    message = errors(rule)
    assert words in message
    assert "fix:" in message


def test_rule_ids_are_unique_in_a_profile() -> None:
    assert "rule id 'cold_holding' is used twice" in errors(COLD, COLD)


def test_a_condition_needs_something_to_test() -> None:
    with pytest.raises(ValidationError, match="equals, one_of, above or below"):
        RuleCondition(point="mode")
    c = RuleCondition(point="mode", one_of=(1, 3), below=3)
    assert [c.holds(v) for v in (1, 3, 2, "1")] == [True, False, False, False]
    assert RuleCondition(point="door_open", equals=True).holds(value=True)
    assert not RuleCondition(point="door_open", equals=True).holds(value=False)


def test_a_broken_rule_in_a_profile_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "room.toml"
    path.write_text(
        '[profile]\nid = "room"\nvendor = "V"\nmodel = "M"\nkind = "fridge"\n'
        'protocol = "modbus"\n\n[[points]]\nid = "t"\nname = "T"\ntable = "input"\naddress = 0\n\n'
        '[[rules]]\nid = "cold"\nkind = "limit"\npoint = "t"\nabove = 5\nhold_s = "long"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.path == path
    assert [p.key for p in err.value.problems] == ["rules[0].limit.hold_s"]


# ---- the built-in profiles -------------------------------------------------------------------


def test_the_built_in_profiles_carry_the_domain_limits() -> None:
    profiles = load_profiles()

    def rule(profile_id: str, rule_id: str) -> Any:
        return next(r for r in profiles[profile_id].rules if r.id == rule_id)

    cold = rule("walkin-fridge", "cold_holding")
    assert (cold.above, cold.hold_s, cold.food_safety) == (5.0, 1800, True)
    assert set(cold.suppress_when) == {"door_open", "defrost_active"}
    assert rule("fridge-probe-node", "cold_holding").above == 5.0
    assert rule("freezer", "frozen_holding").above == -18.0
    hot = rule("combi-oven", "hot_holding")
    assert (hot.below, hot.point, hot.food_safety) == (57.0, "core_temp", True)
    assert hot.when  # only while holding
    rinse = rule("dishwasher", "final_rinse")
    assert (rinse.below, rinse.food_safety) == (82.0, True)
    assert rule("fryer-2vat", "vat1_oil_discard").above == 24.0
    assert rule("fryer-2vat", "vat2_oil_discard").above == 24.0
    assert rule("tank-level", "reorder").below == 25.0
    assert rule("combi-oven", "door_open_too_long").hold_s == 180
    for profile_id in ("walkin-fridge", "freezer", "fridge-probe-node"):
        kinds = {r.kind for r in profiles[profile_id].rules}
        assert {"limit", "trend", "flatline", "silent", "recovery"} <= kinds, profile_id
    # Every profile says when its device has gone silent.
    assert all(any(r.kind == "silent" for r in p.rules) for p in profiles.values())


def test_every_food_safety_rule_watches_a_food_safety_point() -> None:
    for p in load_profiles().values():
        food = {x.id for x in p.points if x.food_safety} | {f.id for f in p.fields if f.food_safety}
        for r in p.rules:
            if r.food_safety:
                assert getattr(r, "point", None) in food, (p.profile.id, r.id)


def test_the_override_model_has_every_rule_field_but_kind_and_point() -> None:
    fields: set[str] = set()
    for cls in (LimitRule, TrendRule, RecoveryRule, FlatlineRule, SilentRule, AnomalyRule):
        fields |= set(cls.model_fields)
    assert set(RuleOverride.model_fields) == fields - {"id", "kind", "point"}
    # ... and each field takes what the rules take (pydantic checks ranges on the merge).
    for name, info in RuleOverride.model_fields.items():
        assert type(None) in typing.get_args(info.annotation), name


# ---- a site's overrides ----------------------------------------------------------------------


def site(**rules: Any) -> dict[str, Any]:
    return {
        "site": {"id": "bistro", "name": "Bistro"},
        "tables": {"count": 2},
        "stations": [{"id": "cold", "name": "Cold"}],
        "groups": [{"id": "g", "names": {"en": "G"}}],
        "items": [{"id": "i", "group": "g", "names": {"en": "I"}, "price": 1, "prep_s": 1}],
        "routes": [{"group": "g", "station": "cold"}],
        "devices": [
            {"id": "fryer-1", "profile": "fryer-2vat", "host": "10.0.0.4"},
            {"id": "fridge-1", "profile": "walkin-fridge", "host": "10.0.0.5", "rules": rules},
        ],
    }


def test_an_override_changes_one_rule_of_one_device() -> None:
    cfg = parse_site(site(cold_holding={"hold_s": 1200, "priority": "high"},
                          door_left_open={"enabled": False}))  # fmt: skip
    fridge = cfg.devices[1]
    profiles = load_profiles()
    dets = detectors_for(fridge, profiles["walkin-fridge"])
    by_id = {r.id: r for r in dets.rules}
    assert "door_left_open" not in by_id
    assert (by_id["cold_holding"].hold_s, by_id["cold_holding"].priority) == (1200, "high")
    assert by_id["cold_holding"].above == 5.0  # the rest as the profile has it
    # The other fridge of the same profile keeps the profile's rule.
    other = DeviceInstance(id="fridge-2", profile="walkin-fridge", host="10.0.0.6")
    again = {r.id: r for r in detectors_for(other, profiles["walkin-fridge"]).rules}
    assert again["cold_holding"].hold_s == 1800
    assert "door_left_open" in again


def test_an_override_written_as_toml_tables_is_read() -> None:
    text = (
        '[site]\nid = "bistro"\nname = "Bistro"\n[tables]\ncount = 2\n'
        '[[stations]]\nid = "cold"\nname = "Cold"\n[[groups]]\nid = "g"\nnames = { en = "G" }\n'
        '[[items]]\nid = "i"\ngroup = "g"\nnames = { en = "I" }\nprice = 1\nprep_s = 1\n'
        '[[routes]]\ngroup = "g"\nstation = "cold"\n'
        '[[devices]]\nid = "fridge-1"\nprofile = "walkin-fridge"\nhost = "10.0.0.5"\n'
        "[devices.rules.cold_holding]\nhold_s = 1200\n"
        "[devices.rules.cold_holding.when]\n"
    )
    with pytest.raises(ConfigError):  # `when` is a list of conditions, not a table
        parse_site(tomllib.loads(text))
    cfg = parse_site(tomllib.loads(text.replace("[devices.rules.cold_holding.when]\n", "")))
    assert cfg.devices[0].rules["cold_holding"].hold_s == 1200


def problems(**rules: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(site(**rules))
    return [str(p) for p in err.value.problems]


def test_an_override_of_a_rule_the_profile_lacks_names_the_ones_it_has() -> None:
    (line,) = problems(cold_holdin={"hold_s": 60})
    assert line.startswith("devices[1].rules.cold_holdin: profile walkin-fridge has no rule")
    assert "fix: use one of: cold_holding, warming" in line


def test_an_override_may_not_give_a_field_its_rule_kind_lacks() -> None:
    (line,) = problems(cold_holding={"horizon_s": 600})
    assert line.startswith("devices[1].rules.cold_holding.horizon_s: a limit rule has no")
    assert "fix: remove horizon_s" in line


def test_an_override_is_checked_like_the_profile_rule() -> None:
    (line,) = problems(cold_holding={"hold_s": -5})
    assert line.startswith("devices[1].rules.cold_holding.hold_s")
    (line,) = problems(cold_holding={"below": 1.0})
    assert "exactly one of above or below" in line
    (line,) = problems(cold_holding={"suppress_when": ["door"]})
    assert "devices[1].rules.cold_holding.suppress_when" in line
    assert "names 'door'" in line


def test_an_override_cannot_change_kind_or_point() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(site(cold_holding={"point": "evaporator_temp"}))
    assert [p.key for p in err.value.problems] == ["devices[1].rules.cold_holding.point"]


def test_merge_rules_keeps_the_profile_rule_where_an_override_is_wrong() -> None:
    p = profile(COLD)
    rules, found = merge_rules(
        p.rules, {"cold_holding": RuleOverride(hold_s=-1)}, p.point_kinds(), key="x"
    )
    assert rules == p.rules
    assert [f.key for f in found] == ["x.cold_holding.hold_s"]
    rules, found = merge_rules(p.rules, {"cold_holding": RuleOverride(hold_s=60)}, p.point_kinds())
    assert found == []
    assert rules[0].hold_s == 60  # type: ignore[union-attr]


def test_detectors_for_an_unchecked_device_refuses_a_bad_override() -> None:
    fridge = DeviceInstance(
        id="fridge-9", profile="walkin-fridge", host="h", rules={"nope": RuleOverride(z=3)}
    )
    with pytest.raises(ConfigError, match="profile walkin-fridge has no rule 'nope'"):
        detectors_for(fridge, load_profiles()["walkin-fridge"])
