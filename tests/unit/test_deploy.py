"""deploy/: the systemd unit says what the README and the gateway's exit codes promise."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from gateway.cli import ENV_STATE_DIR, EXIT_CONFIG, EXIT_ERROR, build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "kitchen-gateway.service"
SYSUSERS = DEPLOY / "kitchen-gateway.sysusers.conf"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of key -> every value given, in order (systemd allows a key more than once)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"continuation lines are not used here: {line!r}"
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"a key before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    """The [Service] section of the unit."""
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(section: dict[str, list[str]], key: str) -> str:
    """The value of a key given exactly once."""
    values = section.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    """A systemd time span of the forms used here: 20, 20s, 2min."""
    for suffix, factor in (("min", 60.0), ("ms", 0.001), ("s", 1.0)):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_the_parser_keeps_repeated_keys_and_skips_comments() -> None:
    unit = parse_unit("# c\n[A]\nK=1\n; c\nK = 2\nE=\n[B]\nX=a=b\n")
    assert unit == {"A": {"K": ["1", "2"], "E": [""]}, "B": {"X": ["a=b"]}}


def test_systemd_waits_for_ready_and_watches_the_loop(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    # sd_notify messages are sent by the gateway process itself, which is the main PID.
    assert one(service, "NotifyAccess") == "main"
    watchdog = seconds(one(service, "WatchdogSec"))
    # The gateway pings at half of it; under a few seconds a slow disk or GC pause could kill it.
    assert watchdog >= 10


def test_failures_are_restarted_but_a_bad_site_file_is_not(service: dict[str, list[str]]) -> None:
    assert one(service, "Restart") == "on-failure"
    assert seconds(one(service, "RestartSec")) >= 1
    prevented = {int(code) for v in service["RestartPreventExitStatus"] for code in v.split()}
    assert EXIT_CONFIG in prevented  # the same file would fail the same way, forever
    assert EXIT_ERROR not in prevented  # the broker or the disk may come back


def test_exec_start_is_a_valid_gateway_run(service: dict[str, list[str]]) -> None:
    argv = shlex.split(one(service, "ExecStart"))
    assert PurePosixPath(argv[0]).is_absolute()
    assert PurePosixPath(argv[0]).name == "gateway"
    assert argv[1:3] == ["run", "--config"]
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert PurePosixPath(str(args.config)).is_absolute()


def test_state_lives_in_the_state_directory_and_nowhere_else(
    service: dict[str, list[str]],
) -> None:
    state = f"/var/lib/{one(service, 'StateDirectory')}"
    assert one(service, "StateDirectory") == "kitchen-gateway"
    assert f"{ENV_STATE_DIR}={state}" in service["Environment"]
    assert one(service, "ProtectSystem") == "strict"
    assert service["ReadWritePaths"] == [state]


def test_it_runs_as_its_own_unprivileged_user(service: dict[str, list[str]]) -> None:
    user = one(service, "User")
    assert user not in {"root", "0"}
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "CapabilityBoundingSet") == ""
    # The sysusers file creates that same user, with the state directory as its home.
    entries = [
        shlex.split(line)
        for line in SYSUSERS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [e[0] for e in entries] == ["u"]
    assert entries[0][1] == user
    assert entries[0][4] == f"/var/lib/{one(service, 'StateDirectory')}"


def test_it_starts_at_boot() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # The installed command is not on a development machine; everything else is checked.
    text = UNIT.read_text(encoding="utf-8")
    executable = shlex.split(one(parse_unit(text)["Service"], "ExecStart"))[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={executable}", "ExecStart=/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
