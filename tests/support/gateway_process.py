"""Run the real gateway as a child process, so a test can kill -9 it and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path


class GatewayProcess:
    """``python -m gateway run`` on a site file and state dir; restartable on the same state."""

    def __init__(
        self,
        site_file: Path,
        url: str,
        state_dir: Path,
        *,
        command: Sequence[str] = ("gateway",),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``command``: the module and its leading arguments (``python -m`` runs it); ``env``:
        variables added to this process's environment."""
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.site_file = site_file
        self.url = url
        self.state_dir = state_dir
        self.log_path = state_dir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 20.0) -> None:
        """Start and wait until it logs that it is ready (connected, state loaded)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    *self.command,
                    "run",
                    "--config",
                    str(self.site_file),
                    "--mqtt-url",
                    self.url,
                    "--state-dir",
                    str(self.state_dir),
                ],
                stderr=log,
                env=self.env,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log().count("ready on") >= self.starts:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"gateway did not become ready:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """Everything the gateway wrote to stderr so far (all starts)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last words but the broker's last will."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def wait(self, timeout_s: float) -> int:
        """Wait for the process to end by itself; its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
