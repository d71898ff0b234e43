"""Broker URL parsing: the accepted forms, the refusals, and properties over generated input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import TransportError
from gateway.transport.url import BrokerAddress, parse_broker_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883, tls=False)),
        ("mqtt://broker.local", BrokerAddress("broker.local", 1883, tls=False)),
        ("mqtts://broker.local", BrokerAddress("broker.local", 8883, tls=True)),
        ("MQTT://Broker.Local:1/", BrokerAddress("broker.local", 1, tls=False)),
        ("mqtt://[::1]:1884", BrokerAddress("::1", 1884, tls=False)),
        ("mqtt://h:2?protocol=4", BrokerAddress("h", 2, tls=False, protocol=4)),
        ("mqtts://h?protocol=5", BrokerAddress("h", 8883, tls=True, protocol=5)),
    ],
)
def test_accepted(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("tcp://h:1883", "unsupported scheme"),
        ("ws://h:1883", "unsupported scheme"),
        ("h:1883", "unsupported scheme"),
        ("", "unsupported scheme"),
        ("mqtt://", "no host"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:0", "port 0"),
        ("mqtt://h:65536", "out of range"),
        ("mqtt://h:port", "port"),
        ("mqtt://user:secret@h", "credentials"),
        ("mqtt://user@h", "credentials"),
        ("mqtt://h/site", "path"),
        ("mqtt://h#x", "fragment"),
        ("mqtt://h?protocol=3", "protocol must be"),
        ("mqtt://h?protocol=4&protocol=5", "protocol must be"),
        ("mqtt://h?qos=1", "unknown option"),
        ("mqtt://h?protocol", "bad query"),
        ("mqtt://h?=", "protocol must be"),  # parses to no fields; once a KeyError
        ("mqtt://[::1", "Invalid IPv6"),
    ],
)
def test_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(TransportError, match=why) as err:
        parse_broker_url(url)
    assert "invalid MQTT broker URL" in str(err.value)


def test_password_is_not_echoed() -> None:
    with pytest.raises(TransportError, match="credentials") as err:
        parse_broker_url("mqtt://user:hunter2@h")
    assert "hunter2" not in str(err.value)
    assert "user:***@h" in str(err.value)


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@given(
    host=st.one_of(hostnames, ipv4, ipv6),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    scheme=st.sampled_from(["mqtt", "mqtts"]),
    protocol=st.sampled_from([None, 4, 5]),
)
def test_round_trip(host: str, port: int | None, scheme: str, protocol: int | None) -> None:
    netloc = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{netloc}" + (f":{port}" if port else "")
    url += f"?protocol={protocol}" if protocol else ""
    address = parse_broker_url(url)
    assert address.host == host.lower()
    assert address.port == (port or (8883 if scheme == "mqtts" else 1883))
    assert address.tls == (scheme == "mqtts")
    assert address.protocol == protocol


@given(st.text())
def test_any_text_parses_or_raises_transport_error(text: str) -> None:
    try:
        address = parse_broker_url(text)
    except TransportError:
        return
    assert 0 < address.port < 65536
    assert address.host


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=30))
def test_any_ascii_after_the_scheme_parses_or_raises_transport_error(rest: str) -> None:
    for scheme in ("mqtt://", "mqtts://"):
        with contextlib.suppress(TransportError):
            parse_broker_url(scheme + rest)
