"""moto in server mode: every AWS service the sandbox needs, over HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from importlib.metadata import version
from pathlib import Path

from .config import Config
from .process import Daemon, SandboxError, free_port, http_ok, sandbox_pids, stop_pid, wait_until

MARKER = "mlops_sandbox.moto_main"
# What the server runs besides moto itself: a running server older than these is restarted.
CODE = (
    "moto_main.py",
    "moto_ecs.py",
    "moto_efs.py",
    "moto_record.py",
    "arns.py",
    "calls.py",
    "config.py",
    "listen.py",
    "moto_ecs_tasks.py",
    "ecs_relay.py",
    "moto_events.py",
    "containers.py",
)


# AWS managed policies loaded (provision.yml attaches AmazonSSMManagedInstanceCore); costs
# moto ~1.7 s more at start-up (6.5 s -> 8.1 s here; bench/bench_moto_startup.py).
ENV = {"MOTO_ALLOW_NONEXISTENT_REGION": "false", "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}


def code_digest() -> str:
    sha = hashlib.sha256(version("moto").encode())
    sha.update(repr(sorted(ENV.items())).encode())
    for name in CODE:
        sha.update((Path(__file__).parent / name).read_bytes())
    return sha.hexdigest()[:16]


class MotoServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.daemon = Daemon("moto", config.state_dir, config.log_dir)

    @property
    def health_url(self) -> str:
        return f"{self.config.moto_url}/moto-api/"

    def healthy(self) -> bool:
        return http_ok(self.health_url)

    @property
    def stamp(self) -> Path:
        return self.config.state_dir / "moto.code"

    def up(self) -> str:
        restarted = ""
        if self.daemon.pid() and self.healthy():
            with contextlib.suppress(OSError):
                if self.stamp.read_text().strip() == code_digest():
                    return f"moto already up on :{self.config.moto_port} (pid {self.daemon.pid()})"
            # Its state goes with it; the SSM service and the fleet notice and start over.
            restarted = " (restarted: the sandbox's moto code changed)"
        self.daemon.stop()
        free_port(self.config.moto_port, MARKER)
        pid = self.daemon.start(
            [
                sys.executable,
                "-m",
                MARKER,
                "--sandbox",
                self.config.name,
                "-p",
                str(self.config.moto_port),
            ],
            env=ENV,
        )
        wait_until(self.healthy, 60, f"moto server (pid {pid}) on :{self.config.moto_port}", self.daemon.log_tail)
        self.stamp.write_text(code_digest() + "\n")
        return f"moto up on :{self.config.moto_port} (pid {pid}, log {self.daemon.logfile}){restarted}"

    def down(self) -> str:
        stopped = self.daemon.stop()
        # A server of this sandbox started from another checkout (another pid file).
        for pid in sandbox_pids(MARKER, self.config.name):
            stop_pid(pid)
            stopped = True
        # Someone else's process on the port is not ours to stop; up() says so.
        with contextlib.suppress(SandboxError):
            free_port(self.config.moto_port, MARKER)
        return "moto stopped" if stopped else "moto was not running"

    def status(self) -> str:
        pid = self.daemon.pid()
        if pid and self.healthy():
            return f"moto: up on :{self.config.moto_port} (pid {pid})"
        return "moto: down"
