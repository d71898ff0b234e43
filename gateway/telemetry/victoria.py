"""Start and stop a real VictoriaMetrics on loopback, for tests, the benchmark and the demo.

``VictoriaMetrics`` runs Debian's ``victoria-metrics`` with the flags below, in a directory of
its own that lives as long as the object, so ``restart()`` after ``kill()`` comes back on the
same port with the same data, as systemd would restart it. It is modelled on
``gateway.transport.broker.MosquittoProcess``.

Flags, and why:

- ``-httpListenAddr=127.0.0.1:PORT``: the default listens on every interface.
- ``-retentionPeriod=100y``: samples older than now minus the retention are dropped (answered
  204, logged as a warning only). The default, one month, would silently drop the fixed old
  timestamps tests write and what a gateway back-fills from its disk after a long outage.
  (In exchange a timestamp in seconds sent as nanoseconds is kept, in January 1970.)
- ``-search.latencyOffset=0s``: ``/api/v1/query`` and ``query_range`` hide the last 30 s by
  default (measured: the newest point, 5 s old, was missing; with 0s it is there). It does not
  affect ``/api/v1/export``: that stops at its ``end`` argument, which defaults to the request
  time and hid points written less than a second before; ``export()`` passes a far ``end``.
- ``-dedup.minScrapeInterval=1ms`` (``dedup=True``): one sample per series and millisecond.
- ``-loggerLevel=WARN``: a sample dropped for its timestamp is only logged as a warning, and
  that log line is its only trace; at the default (INFO) a start and stop log ~70 lines.

Measured on VictoriaMetrics 1.79.5 (Debian) with influxdb-client 1.50.0, 2026-12-04, and
checked by ``tests/integration/test_victoria.py``:

- **Names.** A line ``fryer,site=a temp=180.5,oil=3i`` becomes the series ``fryer_temp`` and
  ``fryer_oil``, each with the label ``site="a"``; timestamps are kept to the millisecond.
- **What ``/api/v2/write`` answers.** 204 for every body it can read, even when lines are
  skipped: a line it cannot parse is dropped (logged as an error, "cannot unmarshal InfluxDB
  line"), a timestamp more than 2 days ahead is dropped (warning), a string field is stored as
  0 and so is an unquoted non-number (``v=abc``), ``true``/``false`` as 1/0, and tags after
  the 30th are dropped.
  400 (``text/plain`` body) when it cannot read the body: a line longer than
  ``-influx.maxLineSize`` (256 KiB; body "cannot read influx line protocol data: too long
  line: more than 262144 bytes"), or a body that is not the gzip it claims to be. The lines
  before the long one in the same request **are** stored: a 400 is not all-or-nothing.
  Through influxdb-client a 400 is ``influxdb_client.rest.ApiException`` with ``.status`` 400
  and the text in ``.body``. A stopped server (connection refused) raises
  ``urllib3.exceptions.NewConnectionError`` (a ``urllib3.exceptions.HTTPError``, not an
  ``ApiException`` and not wrapped in ``MaxRetryError``) from ``write()`` at once.
- **Duplicates.** With ``dedup`` a point written twice (same series and millisecond, in one
  request or two, before or after a flush) is exported once, straight after
  ``force_flush()`` and after a restart: no merge is needed. When the two values differ,
  which one is kept is not defined (not the last written, as InfluxDB would). Without
  ``dedup`` the export holds both. Timestamps finer than a millisecond fall into the same
  millisecond.
- **Durability.** ``force_flush()`` makes writes visible, not durable. Written data reaches
  the disk 5.0 s after ``force_flush()`` and 10.0 s after a write without one; a ``kill()``
  (SIGKILL) before that loses it, flushed or not. Written longer ago, it survives ``kill()``.
  ``stop()`` (SIGTERM) writes everything first. ``GET /snapshot/create`` also writes
  everything to disk at once (~10 ms).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from gateway.errors import TsdbStartError
from gateway.transport.broker import ChildResources, free_port, port_free

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

__all__ = ["Series", "VictoriaMetrics"]

_LOOPBACK = "127.0.0.1"
_BINARY = "victoria-metrics"
_INSTALL_HINT = "install it with `apt-get install victoria-metrics` (Debian) or run scripts/setup"
#: ``end`` for ``/api/v1/export``: 9999-12-31T23:59:59Z. VictoriaMetrics refuses samples more
#: than 2 days ahead, so nothing stored lies beyond it, and no clock is read to compute it.
_EXPORT_END_S = 253_402_300_799
_HTTP_TIMEOUT_S = 10.0

# Loopback only: an http_proxy in the environment must never see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Series:
    """One time series as ``/api/v1/export`` returns it.

    Attributes:
        metric: its labels, ``__name__`` (``measurement_field``) included.
        values: the samples' values, in timestamp order.
        timestamps: the samples' times, in milliseconds since the epoch.
    """

    metric: dict[str, str]
    values: tuple[float, ...]
    timestamps: tuple[int, ...]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name} not written)"
    # A failed start is a Go panic: the message, then dozens of lines of goroutine trace that
    # would push it out of the tail and say nothing to whoever runs the tests. A trace ends
    # where the next (timestamped) log record of a later run starts.
    kept, in_trace = [], False
    for line in text.splitlines():
        if line.startswith("goroutine "):
            in_trace = True
        elif line[:1].isdigit():
            in_trace = False
        if not in_trace:
            kept.append(line)
    return "\n".join(kept[-lines:]).strip() or f"({path.name} empty)"


class VictoriaMetrics:
    """A VictoriaMetrics on ``127.0.0.1:port`` that takes InfluxDB line protocol writes.

    Write to ``url`` with influxdb-client (``/api/v2/write``; org, bucket and token are
    accepted and ignored), call ``force_flush()``, read back with ``export()``.

    Example::

        with VictoriaMetrics() as tsdb:
            run_gateway(tsdb.url)
            tsdb.force_flush()
            series = tsdb.export('{__name__="fryer_temp"}')
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        dedup: bool = True,
        start_timeout_s: float = 10.0,
    ) -> None:
        """Prepare (but do not start) a server.

        Args:
            port: loopback port to listen on; a free one is picked when None.
            data_dir: where it keeps its data; kept by ``close()``. When None, a directory
                inside the object's own temporary directory, deleted by ``close()``.
            dedup: keep one sample per series and millisecond, as InfluxDB keeps one point
                per series and timestamp (see the module docstring for what it measured).
            start_timeout_s: how long ``start()`` waits for ``/health`` to answer.

        Raises:
            TsdbStartError: the ``victoria-metrics`` binary is not installed.
        """
        binary = shutil.which(_BINARY) or shutil.which(_BINARY, path="/usr/bin:/usr/local/bin")
        if binary is None:
            raise TsdbStartError(f"the `{_BINARY}` binary was not found on PATH: {_INSTALL_HINT}")
        self._binary = binary
        self.port = port if port is not None else free_port()
        self._dedup = dedup
        self._start_timeout_s = start_timeout_s
        self._res = ChildResources("gateway-victoria-")
        self._release = weakref.finalize(self, self._res.release)
        self.dir = self._res.dir
        self.data_dir = data_dir if data_dir is not None else self.dir / "data"
        self.log_path = self.dir / "victoria-metrics.log"

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._res.proc is not None and self._res.proc.poll() is None

    def _argv(self) -> list[str]:
        argv = [
            self._binary,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={_LOOPBACK}:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]
        if self._dedup:
            argv.append("-dedup.minScrapeInterval=1ms")
        return argv

    def start(self) -> None:
        """Start the server and return once ``GET /health`` answers ``OK``.

        It opens its storage before it listens, so by then it takes writes and queries.

        Raises:
            TsdbStartError: the port is taken, the process exited, or ``/health`` did not
                answer in time; the message includes the tail of the server's log.
        """
        if self.running:
            return
        if not port_free(self.port):
            # Else our readiness probe would take the other listener for our server.
            raise TsdbStartError(f"port {self.port} on {_LOOPBACK} is already in use")
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 -- fixed argv, binary found by shutil.which
                self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self._res.proc = proc
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            if proc.poll() is not None:
                self._fail(f"{_BINARY} exited with code {proc.returncode} while starting")
            if self._healthy() and proc.poll() is None:
                return
            if time.monotonic() > deadline:
                self._fail(f"/health on port {self.port} not OK after {self._start_timeout_s} s")
            time.sleep(0.01)

    def _healthy(self) -> bool:
        try:
            return self._get("/health", timeout_s=0.5).strip() == b"OK"
        except OSError:  # refused while it starts; URLError is an OSError
            return False

    def _fail(self, what: str) -> None:
        self.kill()
        raise TsdbStartError(f"{what}.\n--- {self.log_path} ---\n{_tail(self.log_path)}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server with SIGTERM, which writes everything to disk first.

        Falls back to SIGKILL if it has not exited within ``timeout_s``.
        """
        self._res.end_process(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """Kill the server with SIGKILL and wait for it to exit.

        Writes not yet on disk are lost, ``force_flush()`` or not (see the module docstring).
        """
        self._res.end_process(signal.SIGKILL, 5.0)

    def restart(self) -> None:
        """Stop the server if it runs, then start it on the same port with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server (cleanly) and delete the directory this object made."""
        try:
            self.stop()
        finally:
            self._release()

    def __enter__(self) -> Self:
        """Start the server."""
        try:
            self.start()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Kill the server (a test's data need not be kept) and delete its directory."""
        try:
            self.kill()
        finally:
            self.close()

    def force_flush(self) -> None:
        """Make every write answered so far visible to ``export()`` and queries (not durable).

        Raises:
            urllib.error.URLError: the server did not answer (it is not running?).
        """
        self._get("/internal/force_flush")

    def export(self, match: str = '{__name__=~".+"}') -> list[Series]:
        """Return every sample of the series ``match`` selects, one ``Series`` per series.

        Args:
            match: a series selector, e.g. ``{__name__="fryer_temp",site="a"}``.

        Returns:
            The series sorted by their labels, each with its samples in timestamp order.

        Raises:
            urllib.error.URLError: the server did not answer or refused the selector (an
                ``HTTPError`` carries its status and message).
        """
        # urlencode, not string formatting: an unencoded `+` of `.+` arrives as a space and
        # then nothing matches (MEASURED.md).
        query = urllib.parse.urlencode({"match[]": match, "end": str(_EXPORT_END_S)})
        body = self._get(f"/api/v1/export?{query}")
        # One JSON object per line; a series may come in several lines (one per stored block),
        # so lines with the same labels are joined.
        samples: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[tuple[int, float]]]]
        samples = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            metric = {str(k): str(v) for k, v in item["metric"].items()}
            key = tuple(sorted(metric.items()))
            pairs = samples.setdefault(key, (metric, []))[1]
            pairs.extend(zip(item["timestamps"], item["values"], strict=True))
        result = []
        for key in sorted(samples):
            metric, pairs = samples[key]
            pairs.sort(key=lambda pair: pair[0])
            result.append(
                Series(
                    metric=metric,
                    values=tuple(float(v) for _, v in pairs),
                    timestamps=tuple(int(t) for t, _ in pairs),
                )
            )
        return result

    def _get(self, path_and_query: str, timeout_s: float = _HTTP_TIMEOUT_S) -> bytes:
        request = urllib.request.Request(f"{self.url}{path_and_query}")  # noqa: S310 -- http://127.0.0.1 only
        with _OPENER.open(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body
