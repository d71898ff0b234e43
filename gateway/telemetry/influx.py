"""The InfluxDB adapter: line protocol to ``/api/v2/write`` through influxdb-client.

influxdb-client's exceptions (and urllib3's, under it) become :class:`~gateway.errors.SinkError`
here and nowhere else, sorted by what the sink should do about them:

* ``unavailable``: no answer, a refused connection, a timeout, 5xx, 429: it may pass; try the
  same batch again after a backoff (``retry_after_s`` when the database said how long);
* ``refused``: 401/403 (the token), 404 (no such org or bucket), any other 4xx about the request
  itself: retrying the same request cannot help until a person fixes something;
* ``too_large``: 413: the batch is split and sent in halves;
* ``rejected``: 400/422: the database refused the data (a line it cannot parse, a field whose
  type conflicts with what it holds); the sink halves the batch to find the lines at fault.

Why the synchronous write API and not influxdb-client's batching one: the batching writer keeps
its buffer in memory and reports success or failure from a thread of its own, after the fact;
the history's cursor may only move once a batch is known to be in the database. Batching is
done by the sink (lines from the history), gzip by the client (``enable_gzip``), retries with
backoff by the sink (the client's own retries are off, so one write is one attempt).
"""

from __future__ import annotations

import gzip
import logging
import re
import types
from typing import TYPE_CHECKING, Any

from gateway.errors import SinkError

if TYPE_CHECKING:
    from gateway.config import InfluxConfig

__all__ = ["InfluxWriter"]

log = logging.getLogger(__name__)

_BODY_CHARS = 300  # of an error body, in a message


class InfluxWriter:
    """Writes line protocol to one InfluxDB bucket; blocking (the sink calls it on a thread)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        """Connect lazily; the token is read now (a fixed token file is read at the next one).

        Raises:
            SinkError: ``refused`` when the token file cannot be read.
        """
        # Imported here: ~30 MiB and a second of start-up that a site without a database skips.
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
        from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: PLC0415
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415

        self.cfg = cfg
        try:
            token = cfg.token()
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
            raise SinkError(
                "influx", "refused", None,
                f"cannot read the token file {cfg.token_file}: {why}; fix: put the token in it "
                "(readable by the gateway's user) or set GATEWAY_INFLUX_TOKEN",
            ) from err  # fmt: skip
        self._client = InfluxDBClient(
            url=cfg.url,
            token=token or "-",  # the client sends no Authorization header for an empty token
            org=cfg.org,
            timeout=int(cfg.timeout_s * 1000),
            enable_gzip=cfg.gzip,
        )
        if cfg.gzip:
            _compress_fast(self._client.conf)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        # The client's own constant is a plain "ns", while its signature names the class.
        self._precision: Any = WritePrecision.NS

    def write(self, body: str) -> None:
        """Write ``body`` (lines joined by newlines, ns timestamps) in one request.

        Raises:
            SinkError: it was not written (or not all of it: ``rejected``).
        """
        from influxdb_client.client.exceptions import InfluxDBError  # noqa: PLC0415
        from influxdb_client.rest import ApiException  # noqa: PLC0415
        from urllib3.exceptions import HTTPError  # noqa: PLC0415

        cfg = self.cfg
        try:
            self._api.write(bucket=cfg.bucket, org=cfg.org, record=body,
                            write_precision=self._precision)  # fmt: skip
        except ApiException as err:
            raise _from_status(cfg, err.status, err.body, err.headers) from err
        except InfluxDBError as err:
            status = err.response.status if err.response is not None else None
            raise _from_status(cfg, status, str(err.message), None) from err
        except (HTTPError, OSError) as err:
            raise SinkError(
                "influx", "unavailable", None,
                f"{cfg.url} does not answer ({_reason(err)}); fix: check that the database runs "
                "and that telemetry.influx.url (or --influx-url) is right",
            ) from err  # fmt: skip

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()  # type: ignore[no-untyped-call]


def _compress_fast(conf: Any) -> None:
    """Make the client gzip a write at level 1, not at ``gzip.compress``'s default 9.

    Measured in bench/telemetry: level 9 costs 4.7 us a point and gives 8.2:1; level 1 costs
    0.42 us and gives 6.7:1. The client compresses in its configuration's
    ``update_request_body`` (and sets the header in ``update_request_header_params``, left as
    it is); this replaces the first on our client's own configuration object only.
    """
    base = type(conf).update_request_body

    def update_request_body(self: Any, path: str, body: Any) -> Any:
        if path == "/api/v2/write" and self.enable_gzip:
            raw = body if isinstance(body, bytes) else str(body).encode("utf-8")
            return gzip.compress(raw, compresslevel=1)
        return base(self, path, body)

    conf.update_request_body = types.MethodType(update_request_body, conf)


def _reason(err: BaseException) -> str:
    inner = getattr(err, "reason", None)
    text = str(inner or err)
    # urllib3 puts the connection object first ("HTTPConnection(host=.., port=..): Failed to
    # establish a new connection: [Errno 111] Connection refused"): the URL is said already.
    return re.sub(r"^(?:<[^>]*>|\w+\([^)]*\)): ", "", text)[:_BODY_CHARS]


def _from_status(
    cfg: InfluxConfig, status: int | None, body: object, headers: object
) -> SinkError:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    text = text.strip()[:_BODY_CHARS]
    where = f"{cfg.url} (org {cfg.org!r}, bucket {cfg.bucket!r})"
    if status in (401, 403):
        return SinkError(
            "influx", "refused", status,
            f"{where} does not accept the token ({status}: {text}); fix: put a token with write "
            "access to the bucket in telemetry.influx.token_file or GATEWAY_INFLUX_TOKEN",
        )  # fmt: skip
    if status == 404:
        return SinkError(
            "influx", "refused", status,
            f"{where} has no such org or bucket (404: {text}); fix: create the bucket, or set "
            "telemetry.influx.org and .bucket to existing ones",
        )  # fmt: skip
    if status == 413:
        return SinkError("influx", "too_large", status, f"{where}: batch too large (413)")
    if status in (400, 422):
        what = f"{where} refused the data ({status}: {text})"
        return SinkError("influx", "rejected", status, what)
    if status is None or status == 429 or status >= 500:
        return SinkError(
            "influx", "unavailable", status, f"{where} answers {status}: {text}",
            retry_after_s=_retry_after(headers),
        )  # fmt: skip
    return SinkError("influx", "refused", status, f"{where} answers {status}: {text}")


def _retry_after(headers: object) -> float | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    value = get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare; the backoff will do
