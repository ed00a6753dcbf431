"""Sandbox settings, all overridable from the environment (MLOPS_SANDBOX_*)."""

from __future__ import annotations

import os
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
    # The fleet `up` starts: full instances (own Docker engine) tagged Name/env.
    instances: int = field(default_factory=lambda: int(_env("INSTANCES", "3")))
    instance_name: str = field(default_factory=lambda: _env("INSTANCE_NAME", "model-server"))
    instance_env: str = field(default_factory=lambda: _env("INSTANCE_ENV", "local"))
    # An agent that has not polled for this long is ConnectionLost (AWS: a few minutes).
    ping_timeout: float = field(default_factory=lambda: float(_env("PING_TIMEOUT", "15")))
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
        """The registry host name ECR hands out for this account and region."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def registry_ca(self) -> Path:
        """CA certificate of the sandbox's ECR registry (written by the registry component)."""
        return self.state_dir / "registry" / "ca.crt"
