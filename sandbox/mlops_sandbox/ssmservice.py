"""The SSM Run Command service as a sandbox component (a daemon like the moto server)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

from .config import Config
from .process import Daemon, SandboxError, free_port, http_ok, sandbox_pids, stop_pid, wait_until

MARKER = "mlops_sandbox.ssm"
PACKAGE = Path(__file__).resolve().parent


def code_digest() -> str:
    """Digest of the sandbox's Python code: a running service older than its code is restarted."""
    sha = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        sha.update(path.relative_to(PACKAGE).as_posix().encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


class SsmService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.daemon = Daemon("ssm", config.state_dir, config.log_dir)

    @property
    def health_url(self) -> str:
        return f"{self.config.control_url}/health"

    def healthy(self) -> bool:
        return http_ok(self.health_url)

    def running_health(self) -> dict:
        try:
            with urllib.request.urlopen(self.health_url, timeout=5) as resp:  # noqa: S310 - local URL
                return json.loads(resp.read())
        except (OSError, ValueError):
            return {}

    def stale(self) -> str | None:
        """Why the running service must be restarted: its code changed, or moto was restarted
        under it (its instances are gone from EC2; a fresh start reconciles its registry)."""
        health = self.running_health()
        if health.get("code") != code_digest():
            return "its code changed"
        if health.get("moto_pid") != Daemon("moto", self.config.state_dir, self.config.log_dir).pid():
            return "moto was restarted"
        return None

    def _leftovers(self) -> list[int]:
        """Services of this sandbox started from anywhere (found by command line, not pid file)."""
        return sandbox_pids(MARKER, self.config.name)

    def up(self) -> str:
        restarted = ""
        if self.daemon.pid() and self.healthy():
            reason = self.stale()
            if reason is None:
                return f"SSM service already up on :{self.config.ssm_port} (pid {self.daemon.pid()})"
            restarted = f" (restarted: {reason})"
        self.daemon.stop()
        for pid in self._leftovers():
            stop_pid(pid)
        free_port(self.config.ssm_port, MARKER)
        pid = self.daemon.start([sys.executable, "-m", MARKER, "--sandbox", self.config.name])
        wait_until(self.healthy, 60, f"SSM service (pid {pid}) on :{self.config.ssm_port}", self.daemon.log_tail)
        return f"SSM service up on :{self.config.ssm_port} (pid {pid}, log {self.daemon.logfile}){restarted}"

    def down(self) -> str:
        stopped = self.daemon.stop()
        for pid in self._leftovers():
            stop_pid(pid)
            stopped = True
        with contextlib.suppress(SandboxError):
            free_port(self.config.ssm_port, MARKER)
        return "SSM service stopped" if stopped else "SSM service was not running"

    def status(self) -> str:
        pid = self.daemon.pid()
        if pid and self.healthy():
            return f"ssm: up on :{self.config.ssm_port} (pid {pid})"
        return "ssm: down"
