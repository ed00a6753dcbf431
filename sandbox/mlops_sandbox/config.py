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
    containers, networks), so a sandbox started from another checkout is still found
    and cleared by ``down``.
    """

    name: str = field(default_factory=lambda: _env("NAME", "mlops"))
    region: str = field(default_factory=lambda: _env("REGION", "eu-west-1"))
    account_id: str = "123456789012"  # moto's fixed account
    moto_port: int = field(default_factory=lambda: int(_env("MOTO_PORT", "4566")))
    bind_host: str = field(default_factory=lambda: _env("BIND", "0.0.0.0"))
    state_root: Path = field(default_factory=lambda: Path(_env("STATE", "/var/tmp/mlops-sandbox")))
    env_file: Path = field(default_factory=lambda: Path(_env("ENV_FILE", ".sandbox/env")))

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def label(self) -> str:
        """Docker label key=value put on every container and network of this sandbox."""
        return f"io.mlops-deploy.sandbox={self.name}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"
