"""The Grafana dashboard asks only for what the telemetry schema really has (docs/telemetry.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.devices.profile import load_profiles
from gateway.telemetry.notes import NOTE_FIELDS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy/grafana/kitchen-gateway.json").read_text(encoding="utf-8"))


def schema() -> dict[str, set[str]]:
    """Measurement -> every field it can have: the built-in profiles' kinds, and the notes."""
    fields: dict[str, set[str]] = {}
    for profile in load_profiles(()).values():
        points = profile.points or profile.fields
        fields.setdefault(profile.profile.kind.value, set()).update(p.id for p in points)
    for measurement, names in NOTE_FIELDS.items():
        fields[measurement] = set(names)
    return fields


TARGETS = [
    (panel["title"], target["query"])
    for panel in DASHBOARD["panels"]
    for target in panel["targets"]
]


def test_the_dashboard_has_the_panels_a_maintenance_team_asks_for() -> None:
    titles = " | ".join(t for t, _ in TARGETS)
    for needed in ("Alert timeline", "Device health", "cold holding", "-18", "57", "82", "TPM"):
        assert needed in titles


@pytest.mark.parametrize(("title", "query"), TARGETS, ids=[t for t, _ in TARGETS])
def test_every_query_names_a_measurement_and_fields_of_the_schema(title: str, query: str) -> None:
    known = schema()
    measurements = re.findall(r'r\._measurement == "([^"]+)"', query)
    fields = re.findall(r'r\._field == "([^"]+)"', query)
    assert measurements, f"{title}: the query names no measurement"
    assert fields, f"{title}: the query names no field"
    for m in measurements:
        assert m in known, f"{title}: no measurement {m!r} in the schema ({sorted(known)})"
        for f in fields:
            assert f in known[m], f"{title}: {m} has no field {f!r}"
    assert 'r.site == "${site}"' in query  # one site's data, never a neighbour's


def test_the_provisioning_files_point_at_the_dashboard() -> None:
    provider = (ROOT / "deploy/grafana/provisioning/dashboards/kitchen-gateway.yaml").read_text()
    assert "path: /var/lib/grafana/dashboards/kitchen-gateway" in provider
    source = (ROOT / "deploy/grafana/provisioning/datasources/kitchen-gateway.yaml").read_text()
    assert "version: Flux" in source
    assert "token: $KITCHEN_INFLUX_READ_TOKEN" in source  # never a token in the file
