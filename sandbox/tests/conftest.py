"""The sandbox's own tests. Lifecycle tests run a throw-away sandbox under another name
and port, so the sandbox the other layers use is never disturbed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxCli:
    def __init__(self, tmp_path: Path):
        self.name = f"selftest-{uuid.uuid4().hex[:6]}"
        self.port = free_tcp_port()
        self.ssm_port = free_tcp_port()
        self.env_file = tmp_path / "env"
        self.env = {
            **os.environ,
            "MLOPS_SANDBOX_NAME": self.name,
            "MLOPS_SANDBOX_MOTO_PORT": str(self.port),
            "MLOPS_SANDBOX_SSM_PORT": str(self.ssm_port),
            # Lifecycle tests start no fleet unless a test asks for one.
            "MLOPS_SANDBOX_INSTANCES": "0",
            "MLOPS_SANDBOX_ENV_FILE": str(self.env_file),
            "MLOPS_SANDBOX_STATE": str(tmp_path / "state"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.state_dir = tmp_path / "state" / self.name

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "mlops-sandbox"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def exports(self) -> dict[str, str]:
        import shlex

        values = {}
        for line in self.env_file.read_text().splitlines():
            if line.startswith("export "):
                key, _sep, value = line[len("export ") :].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
        return values


@pytest.fixture
def sandbox_cli(tmp_path):
    cli = SandboxCli(tmp_path)
    yield cli
    cli("down")
