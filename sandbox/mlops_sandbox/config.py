"""Sandbox settings, all overridable from the environment (MLOPS_SANDBOX_*)."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MLOPS_SANDBOX_{name}", default)


@dataclass(frozen=True)
class Config:
    """Where the sandbox lives and how clients reach it.

    ``name`` namespaces everything the sandbox creates on the machine (processes,
    containers, networks, volumes), so a sandbox started from another checkout is still
    found and cleared by ``down``.
    """

    name: str = field(default_factory=lambda: _env("NAME", "mlops"))
    region: str = field(default_factory=lambda: _env("REGION", "eu-west-1"))
    account_id: str = "123456789012"  # moto's fixed account
    moto_port: int = field(default_factory=lambda: int(_env("MOTO_PORT", "4566")))
    ssm_port: int = field(default_factory=lambda: int(_env("SSM_PORT", "4567")))
    bind_host: str = field(default_factory=lambda: _env("BIND", "0.0.0.0"))
    state_root: Path = field(default_factory=lambda: Path(_env("STATE", "/var/tmp/mlops-sandbox")))
    env_file: Path = field(default_factory=lambda: Path(_env("ENV_FILE", ".sandbox/env")))
    # The ECR stand-in (registry.py). Port 443 and the /etc/hosts name are machine-wide:
    # only one sandbox on a machine runs it; the others set MLOPS_SANDBOX_REGISTRY=0.
    registry_enabled: bool = field(default_factory=lambda: _env("REGISTRY", "1") not in ("0", "false", "no"))
    registry_port: int = field(default_factory=lambda: int(_env("REGISTRY_PORT", "443")))
    # The fleet `up` starts: full instances (own Docker engine) tagged Name/env.
    instances: int = field(default_factory=lambda: int(_env("INSTANCES", "3")))
    instance_name: str = field(default_factory=lambda: _env("INSTANCE_NAME", "model-server"))
    instance_env: str = field(default_factory=lambda: _env("INSTANCE_ENV", "local"))
    # AWS's timing in the SSM service at start-up (ssm/timing.py; changed at run time with
    # `mlops-sandbox settings`): an agent silent this long is ConnectionLost (AWS: minutes,
    # 600 s; MLOPS_SANDBOX_PING_TIMEOUT is the older name), seconds added to each SSM call
    # ("0.02-0.08"), seconds a new command's invocations stay unlisted.
    ping_timeout: float = field(
        default_factory=lambda: float(_env("CONNECTION_LOST_AFTER", _env("PING_TIMEOUT", "600")))
    )
    latency: str = field(default_factory=lambda: _env("LATENCY", "0"))
    list_lag: float = field(default_factory=lambda: float(_env("LIST_LAG", "0")))
    base_image: str = field(default_factory=lambda: os.environ.get("MLOPS_BASE_IMAGE", "mlops-deploy/debian:bookworm"))

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def cache_dir(self) -> Path:
        """Shared by every sandbox on the machine: image build inputs keyed by content."""
        return self.state_root / ".cache"

    @property
    def label_key(self) -> str:
        return "io.mlops-deploy.sandbox"

    @property
    def label(self) -> str:
        """Docker label key=value put on every container, network and volume of this sandbox."""
        return f"{self.label_key}={self.name}"

    @property
    def network(self) -> str:
        return f"mlops-sandbox-{self.name}"

    @property
    def vpc_cidr(self) -> str:
        """The sandbox's VPC in moto, which is also its Docker network: an instance's
        PrivateIpAddress is its container's address, reachable from the host as a VPC
        address is from a runner inside the VPC. One /16 per sandbox name
        (10.200.0.0/16 .. 10.249.0.0/16), or MLOPS_SANDBOX_CIDR."""
        override = os.environ.get("MLOPS_SANDBOX_CIDR")
        if override:
            return override
        return f"10.{200 + zlib.crc32(self.name.encode()) % 50}.0.0/16"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def ssm_url(self) -> str:
        return f"http://127.0.0.1:{self.ssm_port}"

    @property
    def control_url(self) -> str:
        """Sandbox control endpoint (instances, faults, call counters) on the SSM service."""
        return f"{self.ssm_url}/_sandbox"

    @property
    def ecr_host(self) -> str:
        """The host name of this account's ECR registry, as GetAuthorizationToken's proxyEndpoint names it."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def registry_address(self) -> str:
        """What ``docker login`` and image names use: the host, with the port unless it is 443."""
        return self.ecr_host if self.registry_port == 443 else f"{self.ecr_host}:{self.registry_port}"

    @property
    def registry_dir(self) -> Path:
        """The registry's certificates, password file, config and storage."""
        return self.state_dir / "registry"

    @property
    def registry_ca(self) -> Path:
        """The CA that signed the registry's certificate (instances copy it into their engine)."""
        return self.registry_dir / "ca.crt"
