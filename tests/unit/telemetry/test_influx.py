"""The InfluxDB adapter's token rules, before any request (the requests: test_influx_errors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.config import InfluxConfig
from gateway.errors import SinkError
from gateway.telemetry.influx import InfluxWriter

if TYPE_CHECKING:
    from pathlib import Path


def test_a_token_file_that_is_not_text_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_INFLUX_TOKEN", raising=False)
    token = tmp_path / "influx.token"
    token.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SinkError) as err:
        InfluxWriter(InfluxConfig(url="http://127.0.0.1:9", token_file=token))
    assert err.value.kind == "refused"
    assert "not UTF-8" in err.value.message
    assert "GATEWAY_INFLUX_TOKEN" in err.value.message
