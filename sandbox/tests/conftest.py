"""The sandbox's own tests.

Lifecycle tests run a throw-away sandbox under another name and ports, so the sandbox
the other layers use is never disturbed. The other tests drive the running sandbox
(`make sandbox-up`) through its exports, with the real AWS CLI where a user would, and
create the instances they need (removed afterwards)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mlops_sandbox import envfile

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cidr() -> str:
    """A 10.150-199.0.0/16 range that no Docker network on the engine overlaps."""
    ids = subprocess.run(["docker", "network", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    used = []
    if ids:
        out = subprocess.run(
            ["docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        used = [ipaddress.ip_network(s) for s in out.split() if "." in s]
    for second in range(150, 200):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no free 10.150-199.0.0/16 range for a throw-away sandbox")


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
            # The registry is machine-wide (port 443): a throw-away sandbox runs it only
            # when a test asks, on a port and host name of its own.
            "MLOPS_SANDBOX_REGISTRY": "0",
            # A range no Docker network uses (the running sandbox's name hashes into
            # 10.200-249; a random name could land on the same one).
            "MLOPS_SANDBOX_CIDR": free_cidr(),
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
        return envfile.read(self.env_file)


@pytest.fixture
def sandbox_cli(tmp_path):
    cli = SandboxCli(tmp_path)
    yield cli
    cli("down")


# -- the running sandbox (`make sandbox-up`; the sandbox-test layer brings it up first) ------------


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """The exports of the running sandbox, as any client would source them."""
    from mlops_sandbox.config import Config

    path = Config().env_file
    if not path.is_absolute():
        path = ROOT / path
    if not path.exists():
        pytest.fail(f"the sandbox is not up ({path} missing): run `make sandbox-up`")
    exports = envfile.read(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(exports)
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


class Aws:
    """The real AWS CLI (awscli v1 from .venv), configured only by the sandbox's exports."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "aws"), *args, "--output", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __call__(self, *args: str, timeout: float = 120):
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}"
        return json.loads(result.stdout) if result.stdout.strip() else None

    def fails(self, *args: str) -> str:
        """Run a call that must fail; returns its stderr."""
        result = self.run(*args)
        assert result.returncode != 0, f"aws {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr


@pytest.fixture(scope="session")
def aws(sandbox_env) -> Aws:
    return Aws(sandbox_env)


@pytest.fixture(scope="session")
def control(sandbox_env):
    from mlops_sandbox.client import Sandbox

    return Sandbox(sandbox_env["MLOPS_SANDBOX_CONTROL_URL"])


def boto_client(sandbox_env: dict[str, str], service: str, attempts: int = 5, credentials: dict | None = None):
    """A boto3 client of the sandbox; ``attempts`` counts the first try (1: no retry);
    ``credentials`` (STS ``Credentials``) instead of the sandbox's default key."""
    import boto3
    from botocore.config import Config as BotoConfig

    endpoint = sandbox_env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or sandbox_env["AWS_ENDPOINT_URL"]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=sandbox_env["AWS_REGION"],
        aws_access_key_id=(credentials or {}).get("AccessKeyId", sandbox_env["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=(credentials or {}).get("SecretAccessKey", sandbox_env["AWS_SECRET_ACCESS_KEY"]),
        aws_session_token=(credentials or {}).get("SessionToken"),
        config=BotoConfig(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


@pytest.fixture(scope="session")
def ssm(sandbox_env):
    return boto_client(sandbox_env, "ssm")


@pytest.fixture(scope="session")
def s3_bucket(sandbox_env) -> str:
    """A bucket in moto for playbooks and bundles."""
    name = f"sandbox-tests-{uuid.uuid4().hex[:8]}"
    boto_client(sandbox_env, "s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": sandbox_env["AWS_REGION"]}
    )
    return name


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what}: not reached within {timeout:.0f}s (last seen: {last!r})")


TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


def wait_command(ssm, command_id: str, timeout: float = 120) -> dict:
    """The command once every invocation ended (ListCommands says so)."""

    def done():
        command = ssm.list_commands(CommandId=command_id)["Commands"][0]
        return command if command["Status"] in TERMINAL else None

    return wait_for(done, timeout, f"command {command_id} to end")


def run_on(ssm, iid: str, commands: list[str], timeout: float = 120) -> str:
    """AWS-RunShellScript on one instance; its stdout once it succeeded."""
    command_id = ssm.send_command(
        InstanceIds=[iid], DocumentName="AWS-RunShellScript", Parameters={"commands": commands}
    )["Command"]["CommandId"]
    wait_command(ssm, command_id, timeout=timeout)
    got = ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
    assert got["Status"] == "Success", got["StandardErrorContent"]
    return got["StandardOutputContent"]


def invocations(ssm, command_id: str, details: bool = True) -> dict[str, dict]:
    pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id, Details=details)
    return {inv["InstanceId"]: inv for page in pages for inv in page["CommandInvocations"]}


@pytest.fixture(scope="session")
def model_servers(ssm) -> list[str]:
    """The default fleet `make sandbox-up` started: full instances Name=model-server, env=local."""
    from mlops_sandbox.config import Config

    config = Config()
    found = ssm.describe_instance_information(
        Filters=[{"Key": "tag:Name", "Values": [config.instance_name]}, {"Key": "PingStatus", "Values": ["Online"]}]
    )["InstanceInformationList"]
    ids = sorted(i["InstanceId"] for i in found)
    assert len(ids) >= 1, "no Online model-server instance: is the sandbox up with its fleet?"
    return ids


# Seconds of agent silence before ConnectionLost in tests that wait for it (AWS's 600 s,
# the sandbox's default, is more than the suite can afford).
FAST_CONNECTION_LOST = 10.0


@pytest.fixture(scope="module")
def fast_connection_lost(control):
    """ConnectionLost after FAST_CONNECTION_LOST s of silence for this module, AWS's timing back afterwards."""
    with control.timing(connection_lost_after=FAST_CONNECTION_LOST) as settings:
        yield settings
