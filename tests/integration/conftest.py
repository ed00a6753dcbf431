"""Integration tests: real ansible-playbook runs against the sandbox over HTTP.

Nothing here mocks boto3 or docker. The sandbox must be up (`make sandbox-up`, which
`make integration` and `make test` do first); its client settings come from
.sandbox/env.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from mlops_sandbox import envfile

ROOT = Path(__file__).resolve().parents[2]
TARGETS = Path(__file__).resolve().parent / "targets"
BIN = Path(sys.executable).parent


def sandbox_env() -> dict[str, str]:
    path = ROOT / ".sandbox" / "env"
    if not path.exists():
        pytest.fail(f"{path} is missing: the sandbox is not up (run `make sandbox-up`)", pytrace=False)
    return envfile.read(path)


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    return sandbox_env()


@pytest.fixture(scope="session")
def aws(aws_env):
    """boto3 clients on the sandbox: aws("logs")."""
    session = boto3.session.Session(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name=aws_env["AWS_REGION"],
    )

    def client(service: str):
        endpoint = aws_env.get(f"AWS_ENDPOINT_URL_{service.upper()}", aws_env["AWS_ENDPOINT_URL"])
        return session.client(service, endpoint_url=endpoint)

    return client


class Playbook:
    """Runs ansible-playbook with the sandbox's settings and this checkout's collection."""

    def __init__(self, env: dict[str, str]):
        self.env = {
            **os.environ,
            **env,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONUNBUFFERED": "1",
            # The venv's tools first, whichever way pytest was started.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def command(self, playbook: str | Path, extra_vars: dict | None = None, *args: str) -> list[str]:
        path = Path(playbook)
        if not path.is_absolute():
            path = TARGETS / path
        cmd = [str(BIN / "ansible-playbook"), str(path), *args]
        for key, value in (extra_vars or {}).items():
            cmd += ["-e", f"{key}={value}" if isinstance(value, str) else f'{{"{key}": {_json(value)}}}']
        return cmd

    def run(self, playbook, extra_vars=None, *args, timeout=900) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(playbook, extra_vars, *args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, playbook, extra_vars=None, *args) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(playbook, extra_vars, *args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _json(value) -> str:
    import json

    return json.dumps(value)


@pytest.fixture(scope="session")
def playbook(aws_env) -> Playbook:
    return Playbook(aws_env)


def assert_play_ok(result: subprocess.CompletedProcess) -> None:
    """The play ended with rc 0 and no failed host; show its output otherwise."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ansible-playbook exited {result.returncode}:\n{output[-6000:]}"
    assert "failed=0" in output, output[-6000:]
    assert "Traceback (most recent call last)" not in output, output[-6000:]
