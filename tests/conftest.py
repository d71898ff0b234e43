"""Fixtures shared by every test: leak checks (STYLE.md 14), real Mosquitto and VictoriaMetrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from gateway.errors import BrokerStartError, TsdbStartError
from gateway.telemetry.victoria import VictoriaMetrics
from gateway.transport.broker import MosquittoProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

_GRACE_S = 2.0  # threads and child processes that are on their way out get this long


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves threads, asyncio tasks or child processes running.

    asyncio.run() (and asyncio.Runner) silently cancel whatever tasks are still pending when
    the main coroutine returns, which would hide a service that forgot one; so Runner.close is
    wrapped to record those tasks first.
    """
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    leaked_tasks: list[str] = []
    original_close = asyncio.Runner.close

    def close(runner: asyncio.Runner) -> None:
        loop = getattr(runner, "_loop", None)
        if loop is not None and not loop.is_closed():
            leaked_tasks.extend(repr(t) for t in asyncio.all_tasks(loop) if not t.done())
        original_close(runner)

    monkeypatch.setattr(asyncio.Runner, "close", close)
    yield

    problems = []
    if leaked_tasks:
        problems.append(f"asyncio tasks still pending at the end of the loop: {leaked_tasks}")
    deadline = time.monotonic() + _GRACE_S
    extra_threads: list[Any] = []
    extra_children: list[Any] = []
    while time.monotonic() < deadline:
        extra_threads = [t for t in threading.enumerate() if t not in threads_before]
        extra_children = [
            p for p in psutil.Process().children(recursive=True)
            if p.pid not in children_before and _alive(p)
        ]  # fmt: skip
        if not extra_threads and not extra_children:
            break
        time.sleep(0.02)
    if extra_threads:
        problems.append(f"threads left running: {extra_threads}")
    if extra_children:
        problems.append(f"child processes left running: {[p.cmdline() for p in extra_children]}")
        for p in extra_children:  # don't let one test's leak break the next
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    if problems:
        pytest.fail("; ".join(problems))


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def broker() -> Iterator[MosquittoProcess]:
    """A Mosquitto started on a free loopback port, killed at teardown.

    Skipped where Mosquitto is not installed, except in CI, where that is a failure.
    """
    try:
        proc = MosquittoProcess()
    except BrokerStartError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have Mosquitto: {exc}")
        pytest.skip(str(exc))
    try:
        proc.start()
        yield proc
    finally:
        proc.kill()
        proc.close()


@pytest.fixture
def victoria() -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics started on a free loopback port, killed at teardown.

    Skipped where VictoriaMetrics is not installed, except in CI, where that is a failure.
    """
    try:
        tsdb = VictoriaMetrics()
    except TsdbStartError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have VictoriaMetrics: {exc}")
        pytest.skip(str(exc))
    try:
        tsdb.start()
        yield tsdb
    finally:
        tsdb.kill()
        tsdb.close()
