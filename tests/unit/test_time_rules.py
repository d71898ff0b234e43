"""Waits on monotonic time, records on wall time (STYLE.md 20), held by reading the code.

Two rules over every module of ``gateway/``:

1. The system clocks are read, and real time slept, only through :mod:`gateway.clock` (so
   tests can run on virtual time and step the wall clock), except in the modules listed in
   ``DIRECT`` with the reason they may.
2. No module decides *when* by comparing wall-clock instants: no ``.now()`` reading is compared
   with, or subtracted from, anything, except where ``WALL_MATH`` says why (judging the clock
   itself, showing an age to a person).

A new module that needs an exception must say why here, where a reviewer sees it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"

#: Modules that may read the system clocks or sleep in real time directly, and why.
DIRECT = {
    "clock.py": "the clocks themselves",
    "demo.py": "the demo's live view counts real seconds for the person watching it",
    "cli.py": "gateway status shows the age of the clock record to a person",
    "devices/audit.py": "the default wall clock for stamps when none is injected",
    "store/deadletters.py": "the default wall clock for stamps when none is injected",
    "store/sqlite.py": "commit stamps fall back to the wall clock when the caller gives none",
    "devices/cli_commands.py": "gateway device read: a one-off command timing real answers",
    "devices/deadline.py": "the Modbus request timeout: I/O on the loop's clock, a hot path",
    "devices/connection.py": "the connection's reconnect backoff, on the loop's clock",
    "devices/poller.py": "turns the connection's loop-time retry into a wait from now",
    "devices/fanout.py": "sleep(0): a yield between batches, not a wait",
    "transport/connect.py": "MQTT connect retries: I/O on the loop's clock",
    "transport/link.py": "MQTT keepalive ticks and reconnect pauses: I/O on the loop's clock",
    "transport/mqtt.py": "MQTT read pauses and receive stamps: I/O on the loop's clock",
    "transport/broker.py": "waiting for a broker process to listen (tests and the demo)",
    "telemetry/victoria.py": "waiting for a VictoriaMetrics process to answer (tests, demo)",
}

#: Modules that may do arithmetic or comparisons on wall-clock readings, and why.
WALL_MATH = {
    "routing/steady.py": "measures the wall clock's steps since the anchor (wall_offset)",
}

_CLOCK_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("asyncio", "sleep"),
}


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(GATEWAY.rglob("*.py")):
        rel = path.relative_to(GATEWAY).as_posix()
        out.append((rel, ast.parse(path.read_text(), filename=str(path))))
    return out


MODULES = _modules()


def _direct_reads(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        owner = func.value
        name = owner.id if isinstance(owner, ast.Name) else None
        # loop.time() / asyncio.get_running_loop().time(): the event loop's clock.
        loop_time = func.attr == "time" and not node.args and name != "datetime"
        if (name, func.attr) in _CLOCK_CALLS or loop_time:
            lines.append(node.lineno)
    return lines


def _is_now(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "now"
    )


def _wall_names(scope: ast.AST) -> set[str]:
    """Names bound in ``scope`` straight from a ``.now()`` reading (``now = clock.now()``)."""
    names = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and _is_now(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.NamedExpr) and _is_now(node.value):
            names.add(node.target.id)
    return names


def _wall_math(tree: ast.Module) -> list[int]:
    lines = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for scope in scopes:
        wall = _wall_names(scope)
        for node in ast.walk(scope):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
                operands = [node.left, node.right]
            else:
                continue
            if any(_is_now(o) or (isinstance(o, ast.Name) and o.id in wall) for o in operands):
                lines.append(node.lineno)
    return sorted(set(lines))


@pytest.mark.parametrize(("module", "tree"), MODULES, ids=[m for m, _ in MODULES])
def test_clocks_are_read_through_the_injected_clock(module: str, tree: ast.Module) -> None:
    found = _direct_reads(tree)
    if module in DIRECT:
        return
    assert not found, (
        f"gateway/{module} reads the system clock or sleeps in real time directly (lines "
        f"{found}): take a gateway.clock.Clock and use now(), monotonic() and sleep(), or add "
        "the module to DIRECT in this test with the reason it must"
    )


@pytest.mark.parametrize(("module", "tree"), MODULES, ids=[m for m, _ in MODULES])
def test_nothing_decides_when_by_comparing_wall_clock_instants(
    module: str, tree: ast.Module
) -> None:
    found = _wall_math(tree)
    if module in WALL_MATH:
        return
    assert not found, (
        f"gateway/{module} compares or subtracts wall-clock readings (lines {found}): decide "
        "on clock.monotonic(), keep now() for stamps, or add the module to WALL_MATH here with "
        "the reason"
    )


def test_the_exceptions_name_modules_that_exist_and_still_need_them() -> None:
    trees = dict(MODULES)
    for module in DIRECT:
        assert module in trees, f"DIRECT names gateway/{module}, which is gone"
        assert _direct_reads(trees[module]), (
            f"gateway/{module} no longer reads the clock directly: take it out of DIRECT"
        )
    for module in WALL_MATH:
        assert module in trees, f"WALL_MATH names gateway/{module}, which is gone"
        assert _wall_math(trees[module]), f"gateway/{module} does no wall math: drop it"


def test_the_checks_catch_what_they_are_for() -> None:
    bad = ast.parse(
        "import time, asyncio\n"
        "from datetime import datetime\n"
        "def f(clock, loop, due):\n"
        "    a = time.monotonic()\n"
        "    b = datetime.now()\n"
        "    c = loop.time()\n"
        "    if clock.now() >= due:\n"
        "        return clock.now() - due\n"
        "    now = clock.now()\n"
        "    return now < due\n"
    )
    assert _direct_reads(bad) == [4, 5, 6]
    assert _wall_math(bad) == [7, 8, 10]
