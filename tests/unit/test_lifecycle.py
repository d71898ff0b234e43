"""The service protocol and the supervisor: one way to start, fail and stop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

from gateway.errors import ServiceFailed, StoreError
from gateway.lifecycle import Service, Supervisor, first_error

if TYPE_CHECKING:
    from collections.abc import Iterator


class Recorder(Service):
    """A service that records its life and can be told to fail in start or in its loop."""

    def __init__(self, name: str, log: list[str], *, fail_start: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_start = fail_start
        self.loop_error: BaseException | None = None
        self.poke = asyncio.Event()
        self.looping = asyncio.Event()

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        self.spawn(self._loop(), "loop")
        await self.looping.wait()  # entering means ready: the loop runs
        if self.fail_start:
            raise StoreError(f"{self.name} cannot open")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    async def _loop(self) -> None:
        try:
            self.looping.set()
            await self.poke.wait()
            if self.loop_error is not None:
                raise self.loop_error
        except asyncio.CancelledError:
            self.log.append(f"cancelled {self.name}")
            raise


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_services_start_in_order_and_stop_in_reverse_with_their_loops_first() -> None:
    log: list[str] = []

    async def main() -> None:
        async with Supervisor() as sup:
            await sup.enter(Recorder("a", log))
            await sup.enter(Recorder("b", log))
            assert sup.names == ["a", "b"]

    run(main())
    assert log == ["start a", "start b", "cancelled b", "stop b", "cancelled a", "stop a"]


def test_a_failing_start_stops_what_started_and_names_the_service() -> None:
    log: list[str] = []

    async def main() -> None:
        async with Supervisor() as sup:
            await sup.enter(Recorder("a", log))
            await sup.enter(Recorder("b", log, fail_start=True))
            pytest.fail("not reached")

    with pytest.raises(ServiceFailed) as info:
        run(main())
    assert info.value.service == "b"
    assert isinstance(info.value.cause, StoreError)
    assert str(info.value) == "b stopped: b cannot open"
    # b's own loop was cancelled and b stopped before a was.
    assert log == ["start a", "start b", "cancelled b", "stop b", "cancelled a", "stop a"]


@pytest.mark.parametrize("error", [StoreError("disk gone"), ZeroDivisionError("bug")])
def test_a_failing_loop_leaves_every_service_and_raises_one_service_failed(
    error: Exception,
) -> None:
    log: list[str] = []
    forever = asyncio.Event()

    async def main() -> None:
        async with Supervisor() as sup:
            await sup.enter(Recorder("a", log))
            b = await sup.enter(Recorder("b", log))
            await sup.enter(Recorder("c", log))
            b.loop_error = error
            b.poke.set()
            await forever.wait()  # cancelled by b's TaskGroup

    with pytest.raises(ServiceFailed) as info:
        run(main())
    assert info.value.service == "b"
    assert info.value.cause is error
    assert "\n" not in str(info.value)
    if not isinstance(error, StoreError):
        assert "a bug" in str(info.value)
    assert log[-5:] == ["cancelled c", "stop c", "stop b", "cancelled a", "stop a"]


def test_the_callers_task_is_not_left_cancelled_after_a_failure() -> None:
    async def main() -> str:
        log: list[str] = []
        with contextlib.suppress(ServiceFailed):
            async with Supervisor() as sup:
                b = await sup.enter(Recorder("b", log))
                b.loop_error = StoreError("x")
                b.poke.set()
                await asyncio.Event().wait()
        await asyncio.sleep(0)  # would raise CancelledError if a cancel request were left over
        return "went on"

    assert asyncio.run(main()) == "went on"


def test_an_outside_cancellation_passes_through_and_stops_everything() -> None:
    log: list[str] = []

    async def main() -> None:
        async def body() -> None:
            async with Supervisor() as sup:
                await sup.enter(Recorder("a", log))
                await asyncio.Event().wait()

        task = asyncio.create_task(body())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert log == ["start a", "cancelled a", "stop a"]


def test_sync_context_managers_are_services_too() -> None:
    log: list[str] = []

    @contextlib.contextmanager
    def store() -> Iterator[str]:
        log.append("open")
        yield "the store"
        log.append("close")

    async def main() -> None:
        async with Supervisor() as sup:
            assert await sup.enter(store(), name="store") == "the store"
            await sup.enter(Recorder("a", log))

    run(main())
    assert log == ["open", "start a", "cancelled a", "stop a", "close"]


def test_spawn_outside_start_is_refused() -> None:
    async def idle() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="spawn"):
        Recorder("a", []).spawn(idle(), "x")


def test_first_error_digs_into_nested_groups() -> None:
    inner = ValueError("inner")
    group = BaseExceptionGroup("outer", [ExceptionGroup("mid", [inner])])
    assert first_error(group) is inner
    assert first_error(inner) is inner
