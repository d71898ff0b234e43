"""The InfluxDB adapter against a real HTTP server on loopback, through the real influxdb-client.

The server answers ``POST /api/v2/write`` the way InfluxDB 2 does when things go wrong (its
error JSON, ``Retry-After``, a stall, a hang-up), so what reaches ``InfluxWriter`` is whatever
influxdb-client and urllib3 really raise, not what a mock guesses they raise.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.config import InfluxConfig
from gateway.errors import SinkError
from gateway.telemetry.influx import InfluxWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from email.message import Message
    from pathlib import Path

pytestmark = pytest.mark.integration

LINES = "fridge,device=walkin-1,site=s cabinet_temp=3.5 1700000000000000000\nfridge n=2i 17"


@dataclass
class Answer:
    """What the server does with the next writes."""

    status: int = 204
    code: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang_up: bool = False  # close the connection without answering


@dataclass(frozen=True)
class Request:
    """One write as the server received it."""

    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes


class FakeInflux(ThreadingHTTPServer):
    """``/api/v2/write`` answering as told; keeps every request it got."""

    # Not daemon threads, so server_close() joins every handler: none outlives its test.
    daemon_threads = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = Answer()
        self.requests: list[Request] = []
        self.stopping = threading.Event()  # cuts a deliberate stall short at teardown

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeInflux

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        url = urlsplit(self.path)
        self.server.requests.append(Request(url.path, parse_qs(url.query), self.headers, body))
        answer = self.server.answer
        if answer.hang_up:
            self.close_connection = True
            return
        self.server.stopping.wait(answer.delay_s)
        payload = b""
        if answer.status >= 400:  # InfluxDB 2 sends its error JSON with these
            payload = json.dumps({"code": answer.code, "message": answer.message}).encode()
        # The client has hung up by now when the test is about a stall.
        with contextlib.suppress(OSError):
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base's name
        """Keep the test output quiet."""


@pytest.fixture
def influx() -> Iterator[FakeInflux]:
    server = FakeInflux()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-influx"
    )
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., InfluxWriter]]:
    """Make writers (closed at teardown); the environment's token is cleared first."""
    monkeypatch.delenv("GATEWAY_INFLUX_TOKEN", raising=False)
    writers: list[InfluxWriter] = []

    def make(url: str, **options: Any) -> InfluxWriter:
        writer = InfluxWriter(InfluxConfig(url=url, org="bistro", bucket="readings", **options))
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


def failure(writer: InfluxWriter) -> SinkError:
    with pytest.raises(SinkError) as caught:
        writer.write(LINES)
    return caught.value


# --- classification of what the database answers --------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_a_token_the_database_refuses_names_the_token_fix(
    status: int, influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(status, "unauthorized", "unauthorized access")
    err = failure(connect(influx.url))
    assert (err.sink, err.kind, err.status) == ("influx", "refused", status)
    assert "unauthorized access" in err.message  # what the database said
    assert "token_file" in err.message
    assert "GATEWAY_INFLUX_TOKEN" in err.message
    assert err.retry_after_s is None


def test_no_such_bucket_is_refused_and_names_the_bucket(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(404, "not found", 'bucket "readings" not found')
    err = failure(connect(influx.url))
    assert (err.kind, err.status) == ("refused", 404)
    assert "bucket 'readings'" in err.message
    assert "org 'bistro'" in err.message
    assert "create the bucket" in err.message


def test_a_batch_too_large_is_too_large(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(413, "request too large", "unable to read data: too large")
    err = failure(connect(influx.url))
    assert (err.kind, err.status) == ("too_large", 413)


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (400, "unable to parse 'fridge n=2i 17': bad timestamp"),
        (422, "failure writing points: field type conflict"),
    ],
)
def test_data_the_database_refuses_is_rejected(
    status: int, said: str, influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(status, "invalid", said)
    err = failure(connect(influx.url))
    assert (err.kind, err.status) == ("rejected", status)
    assert said in err.message


def test_429_is_unavailable_for_as_long_as_retry_after_says(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(429, "too many requests", "slow down", headers={"Retry-After": "7"})
    err = failure(connect(influx.url))
    assert (err.kind, err.status, err.retry_after_s) == ("unavailable", 429, 7)


def test_a_retry_after_date_leaves_the_wait_to_the_backoff(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    influx.answer = Answer(503, "unavailable", "starting", headers={"Retry-After": date})
    err = failure(connect(influx.url))
    assert (err.kind, err.retry_after_s) == ("unavailable", None)


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_unavailable_after_one_attempt(
    status: int, influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(status, "internal error", "engine closed")
    err = failure(connect(influx.url))
    assert (err.kind, err.status, err.retry_after_s) == ("unavailable", status, None)
    assert len(influx.requests) == 1  # the sink retries with backoff; the client must not


# --- no answer --------------------------------------------------------------------------------


def test_a_server_slower_than_the_timeout_is_unavailable(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(delay_s=5.0)
    writer = connect(influx.url, timeout_s=0.3)
    started = time.monotonic()
    err = failure(writer)
    took = time.monotonic() - started
    assert (err.kind, err.status) == ("unavailable", None)
    assert f"{influx.url} does not answer" in err.message
    assert "timed out" in err.message
    assert 0.25 < took < 2.0  # the timeout, once, not the server's 5 s
    assert len(influx.requests) == 1


def test_a_server_that_hangs_up_is_unavailable(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    influx.answer = Answer(hang_up=True)
    err = failure(connect(influx.url))
    assert (err.kind, err.status) == ("unavailable", None)
    assert f"{influx.url} does not answer" in err.message
    assert len(influx.requests) == 1


def test_nothing_listening_is_unavailable(connect: Callable[..., InfluxWriter]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Closed: nothing listens on the port now (nor, on loopback, in the next few milliseconds).
    url = f"http://127.0.0.1:{port}"
    err = failure(connect(url, timeout_s=2.0))
    assert (err.kind, err.status) == ("unavailable", None)
    assert err.message.startswith(f"{url} does not answer (")
    assert "Connection refused" in err.message
    assert "telemetry.influx.url" in err.message  # the fix
    # The reason, not urllib3's repr of its connection object again.
    assert "HTTPConnection(" not in err.message


# --- the token ----------------------------------------------------------------------------------


def test_a_missing_token_file_is_refused_at_construction(
    tmp_path: Path, connect: Callable[..., InfluxWriter]
) -> None:
    missing = tmp_path / "secrets" / "influx.token"
    with pytest.raises(SinkError) as caught:
        connect("http://127.0.0.1:9", token_file=missing)
    err = caught.value
    assert (err.kind, err.status) == ("refused", None)
    assert str(missing) in err.message
    assert "No such file or directory" in err.message
    assert "GATEWAY_INFLUX_TOKEN" in err.message


def test_the_token_file_is_sent_as_a_token(
    tmp_path: Path, influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    token = tmp_path / "influx.token"
    token.write_text("from-the-file\n", encoding="utf-8")
    connect(influx.url, token_file=token).write(LINES)
    assert influx.requests[0].headers["Authorization"] == "Token from-the-file"


def test_the_environment_token_wins_over_the_token_file(
    tmp_path: Path,
    influx: FakeInflux,
    connect: Callable[..., InfluxWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = tmp_path / "influx.token"
    token.write_text("from-the-file\n", encoding="utf-8")
    writer = connect(influx.url, token_file=token)  # the fixture cleared the variable first...
    monkeypatch.setenv("GATEWAY_INFLUX_TOKEN", "from-the-env")
    writer.write(LINES)  # ...and this writer read the file's token
    connect(influx.url, token_file=token).write(LINES)
    assert [r.headers["Authorization"] for r in influx.requests] == [
        "Token from-the-file",
        "Token from-the-env",
    ]


def test_a_missing_token_file_does_not_matter_when_the_environment_has_one(
    tmp_path: Path,
    influx: FakeInflux,
    connect: Callable[..., InfluxWriter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_INFLUX_TOKEN", "from-the-env")
    connect(influx.url, token_file=tmp_path / "absent.token").write(LINES)
    assert influx.requests[0].headers["Authorization"] == "Token from-the-env"


# --- the request ------------------------------------------------------------------------------


def test_a_write_is_one_gzip_request_with_org_bucket_and_ns_precision(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    connect(influx.url, gzip=True).write(LINES)
    (request,) = influx.requests
    assert request.path == "/api/v2/write"
    assert request.query == {"org": ["bistro"], "bucket": ["readings"], "precision": ["ns"]}
    assert request.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(request.body).decode("utf-8") == LINES


def test_without_gzip_the_lines_go_as_they_are(
    influx: FakeInflux, connect: Callable[..., InfluxWriter]
) -> None:
    connect(influx.url, gzip=False).write(LINES)
    (request,) = influx.requests
    assert request.headers["Content-Encoding"] is None
    assert request.body.decode("utf-8") == LINES
    assert request.query["precision"] == ["ns"]
