"""The shape of the package: no import cycles, layers that keep to themselves, one exception tree.

The graph comes from ``scripts/import_graph.py`` (the same code ``python scripts/import_graph.py``
runs): module-level and deferred imports count, ``if TYPE_CHECKING:`` ones do not, because they
never run. The layering rules below look at every import, ``TYPE_CHECKING`` ones included: an
annotation ties a module to a name as much as a call does.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.devices.codec import CodecError
from gateway.errors import CommandRejected, GatewayError, TransportError
from gateway.routing.commands import InvalidLine
from gateway.routing.kitchen import KitchenError
from gateway.routing.records import KitchenError as RecordsKitchenError
from gateway.transport.connect import ConnectRefused

if TYPE_CHECKING:
    from types import ModuleType

    import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ig = _load_script()
GRAPH = ig.build(ROOT)
EDGES = GRAPH.edges()


def _outside(prefix: str, allowed: tuple[str, ...], *, type_only: bool = True) -> list[str]:
    """``module:line imports name`` for every import of ``prefix`` by a module not ``allowed``."""
    return [
        f"{m}:{i.line} imports {i.module} {', '.join(i.names)}".rstrip()
        for m, imps in sorted(GRAPH.importers(prefix, type_only=type_only).items())
        if not any(m == a or m.startswith(a + ".") for a in allowed)
        for i in imps
    ]


def _reachable(start: str) -> set[str]:
    """Every package module ``start`` loads at run time, directly or through others."""
    seen, todo = {start}, [start]
    while todo:
        for nxt in EDGES[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen - {start}


# --- the graph itself ---------------------------------------------------------------------


def test_the_graph_covers_the_package() -> None:
    # A parser that found nothing would pass every rule below.
    files = set((ROOT / "gateway").rglob("*.py"))
    assert len(GRAPH.modules) == len(files)
    assert {"gateway.app", "gateway.config", "gateway.site_file", "gateway.errors"} <= set(EDGES)
    assert {"gateway.config", "gateway.devices.checks", "gateway.routing.rules"} <= EDGES[
        "gateway.site_file"
    ]


KNOWN_CYCLES: list[list[str]] = []


def test_no_new_import_cycles() -> None:
    found = ig.cycles(EDGES)
    new = [c for c in found if c not in KNOWN_CYCLES]
    loops = [" -> ".join(ig.loop_through(c, EDGES)) for c in new]
    assert not loops, "import cycles:\n" + "\n".join(loops)


def test_no_import_cycles() -> None:
    found = ig.cycles(EDGES)
    assert not found, [" -> ".join(ig.loop_through(c, EDGES)) for c in found]


def test_config_models_import_nothing_that_checks_them() -> None:
    # The loop this replaced: config -> config_check -> devices.checks -> devices.actions -> config.
    assert EDGES["gateway.config"] <= {"gateway.contract", "gateway.errors"}
    assert EDGES["gateway.contract"] == set()


# --- layers -------------------------------------------------------------------------------


def test_routing_does_not_import_transport() -> None:
    # Routing gets typed events and returns typed ones; the MQTT transport is the app's business.
    routing = [m for m in GRAPH.modules if m.startswith("gateway.routing")]
    assert len(routing) > 5
    assert [
        i for i in _outside("gateway.transport", ("gateway.transport",)) if "routing" in i
    ] == []
    assert not [i for m in routing for i in GRAPH.imports[m] if "transport" in i.module]


def test_only_the_wiring_and_the_store_import_the_sqlite_store() -> None:
    # The order service works on a batch and a storage protocol, never on the SQLite classes;
    # only the code that puts the gateway together names them.
    wiring = ("gateway.app", "gateway.wiring", "gateway.plugs", "gateway.store")
    assert _outside("gateway.store.sqlite", wiring) == []


def test_only_the_modbus_adapter_imports_pymodbus() -> None:
    # The simulators (simulators/appliances/) are the server side and use pymodbus too; no
    # module of gateway/ other than the adapter does.
    assert _outside("pymodbus", ("gateway.devices.connection",)) == []


def test_the_device_service_runs_without_the_modbus_adapter() -> None:
    # DeviceService gets a connection factory, so a unit test can hand it fakes without
    # loading pymodbus.
    assert "gateway.devices.connection" not in _reachable("gateway.devices.service")


def test_only_the_transport_imports_paho() -> None:
    assert _outside("paho", ("gateway.transport",)) == []


def test_each_other_library_has_one_home() -> None:
    assert _outside("amqtt", ("gateway.transport.broker",)) == []
    # The telemetry history is telemetry's own store (a file of its own, beside gateway.db).
    assert _outside("sqlite3", ("gateway.store", "gateway.telemetry.history")) == []
    assert _outside("influxdb_client", ("gateway.telemetry.influx",)) == []
    assert _outside("urllib3", ("gateway.telemetry.influx",)) == []


def test_telemetry_services_do_not_import_their_adapter() -> None:
    # The recorder and the sink get a writer factory; only the plug names the InfluxDB adapter.
    for service in ("gateway.telemetry.recorder", "gateway.telemetry.sink"):
        assert "gateway.telemetry.influx" not in _reachable(service)
    assert _outside("gateway.telemetry.influx", ("gateway.plugs", "gateway.telemetry.influx")) == []


def test_the_devices_know_nothing_of_telemetry() -> None:
    devices = [m for m in GRAPH.modules if m.startswith("gateway.devices")]
    assert not [i for m in devices for i in GRAPH.imports[m] if "telemetry" in i.module]


# --- the exception tree -------------------------------------------------------------------


def _exception_classes() -> dict[str, str]:
    """Every class of gateway/ that descends from GatewayError -> the base it names first."""
    bases: dict[str, list[list[str]]] = {}
    for path in GRAPH.files.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                bases.setdefault(node.name, []).append(names)
    tree = {"GatewayError": "Exception"}
    grew = True
    while grew:
        grew = False
        for name, defs in bases.items():
            parent = next((b for b in defs[0] if b in tree), None)
            if name not in tree and parent is not None:
                assert len(defs) == 1, f"two classes named {name}: the drawing could not tell"
                tree[name] = parent
                grew = True
    return tree


def _drawn_tree() -> dict[str, str]:
    """The tree drawn in gateway/errors.py's docstring: class -> parent."""
    doc = (ROOT / "gateway/errors.py").read_text(encoding="utf-8").split('"""')[1]
    drawn = {"GatewayError": "Exception"}
    parents = ["GatewayError"]
    for line in doc.splitlines():
        m = re.match(r"^ {4}((?:[│ ] {3})*)[├└]── (\w+)", line)
        if m is None:
            continue
        depth = len(m.group(1)) // 4
        del parents[depth + 1 :]
        drawn[m.group(2)] = parents[depth]
        parents.append(m.group(2))
    return drawn


def test_every_exception_of_the_gateway_is_a_gateway_error() -> None:
    tree = _exception_classes()
    others = []
    for path in GRAPH.files.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name not in tree:
                named = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in named):
                    others.append(f"{path.relative_to(ROOT)}: {node.name}({', '.join(named)})")
    assert others == []
    assert {"KitchenError", "InvalidLine", "ConnectRefused", "CodecError"} <= tree.keys()


def test_the_tree_in_errors_docstring_is_the_real_one() -> None:
    assert _drawn_tree() == _exception_classes()


def test_the_moved_errors_keep_their_homes_and_catch_as_before() -> None:
    assert KitchenError is RecordsKitchenError
    assert issubclass(KitchenError, CommandRejected)
    assert issubclass(InvalidLine, CommandRejected)
    assert issubclass(ConnectRefused, TransportError)
    assert issubclass(CodecError, GatewayError)
    assert issubclass(CodecError, ValueError)  # callers that catch ValueError still do
    refused = ConnectRefused(0x87, "Not authorized")
    assert (refused.code, refused.reason, refused.transient) == (0x87, "Not authorized", False)


# --- the script on a package made up for it --------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_script_counts_deferred_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "gateway/__init__.py": "",
            "gateway/a.py": "from gateway import b\n",
            "gateway/b.py": "def f():\n    from gateway.c import x\n",
            "gateway/c.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from gateway.a import y\n"
                "else:\n    import gateway.d\n"
            ),
            "gateway/d.py": "from . import sub\nfrom .sub.e import z\nimport paho.mqtt.client\n",
            "gateway/sub/__init__.py": "from .. import a\n",
            "gateway/sub/e.py": "",
        },
    )
    graph = ig.build(root)
    assert graph.edges() == {
        "gateway": set(),
        "gateway.a": {"gateway.b"},
        "gateway.b": {"gateway.c"},
        "gateway.c": {"gateway.d"},
        "gateway.d": {"gateway.sub", "gateway.sub.e"},
        "gateway.sub": {"gateway.a"},
        "gateway.sub.e": set(),
    }
    (deferred,) = graph.imports["gateway.b"]
    assert deferred.deferred
    assert deferred.names == ("x",)
    assert [i.type_only for i in graph.imports["gateway.c"] if i.module.startswith("gateway")] == [
        True,
        False,
    ]
    assert list(graph.importers("paho")) == ["gateway.d"]
    knot = ["gateway.a", "gateway.b", "gateway.c", "gateway.d", "gateway.sub"]
    assert ig.cycles(graph.edges()) == [knot]
    assert ig.loop_through(knot, graph.edges()) == [*knot, "gateway.a"]


def test_the_script_exits_1_naming_each_cycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _package(
        tmp_path,
        {
            "gateway/__init__.py": "",
            "gateway/a.py": "import gateway.b\n",
            "gateway/b.py": "def f():\n    import gateway.a\n",
            "gateway/c.py": "import gateway.a\n",
        },
    )
    assert ig.main(["--root", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "a: b\nb: a*\nc: a\n" in out
    assert "4 modules, 3 edges, 1 cycle(s)" in err
    assert "cycle among 2 modules: a -> b -> a" in err
    assert ig.main(["--root", str(root), "--dot"]) == 1
    dot = capsys.readouterr().out
    assert '"b" -> "a" [style=dashed, color=red];' in dot
    assert '"c" -> "a";' in dot


def test_the_script_exits_0_without_cycles(tmp_path: Path) -> None:
    root = _package(tmp_path, {"gateway/__init__.py": "", "gateway/a.py": "import gateway\n"})
    assert ig.main(["--root", str(root)]) == 0
