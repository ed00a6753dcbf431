"""Sandbox settings, all overridable from the environment (MLOPS_SANDBOX_*)."""

from __future__ import annotations

import ipaddress
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
    account_id: str = "123456789012"  # moto's default account: the demo's, and the shared registry's
    # More accounts (moto keeps resources per account; an account is picked by the caller's
    # credentials): name=id pairs, e.g. dev=111111111111. Instances can live in any of them.
    accounts_spec: str = field(
        default_factory=lambda: _env("ACCOUNTS", "dev=111111111111,staging=222222222222,prod=333333333333")
    )
    moto_port: int = field(default_factory=lambda: int(_env("MOTO_PORT", "4566")))
    ssm_port: int = field(default_factory=lambda: int(_env("SSM_PORT", "4567")))
    # Addresses the servers listen on besides loopback and the Docker bridges (listen.py):
    # empty by default; "0.0.0.0" opens them to every network the machine is on.
    bind: str = field(default_factory=lambda: _env("BIND", ""))
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
    def accounts(self) -> dict[str, str]:
        """name -> account id of the sandbox's accounts; ``default`` is moto's default account."""
        found = {"default": self.account_id}
        for pair in self.accounts_spec.split(","):
            name, sep, number = pair.strip().partition("=")
            if not pair.strip():
                continue
            if not sep or not name or not (number.isdigit() and len(number) == 12):
                raise ValueError(f"MLOPS_SANDBOX_ACCOUNTS takes name=<12 digits> pairs, got {pair.strip()!r}")
            found[name] = number
        return found

    def account(self, name_or_id: str | None) -> str:
        """The account id of a name of ``accounts`` or of an id among them (None: the default)."""
        if not name_or_id:
            return self.account_id
        known = self.accounts
        if name_or_id in known:
            return known[name_or_id]
        if name_or_id in known.values():
            return name_or_id
        raise ValueError(
            f"account {name_or_id!r} is not one of the sandbox's: "
            + ", ".join(f"{k}={v}" for k, v in known.items())
            + " (MLOPS_SANDBOX_ACCOUNTS adds more)"
        )

    def subnet_cidr(self, account: str) -> str:
        """The subnet of ``account``'s VPC, inside the sandbox's one Docker network (the VPC
        CIDR): the default account has the whole range (addresses from the bottom), the n-th
        other account of ``accounts`` the n-th /20 from the top, so that the addresses moto
        hands out in different accounts never meet."""
        ids = list(dict.fromkeys(self.accounts.values()))
        if account == self.account_id:
            return self.vpc_cidr
        network = ipaddress.ip_network(self.vpc_cidr)
        slots = list(network.subnets(new_prefix=max(network.prefixlen, 20)))
        index = ids.index(account)  # 1.. for the accounts after the default one
        if index >= len(slots) // 2:
            raise ValueError(f"the sandbox's VPC {self.vpc_cidr} has no room for account {account}")
        return str(slots[-index])

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


def for_daemon(parser, args) -> Config:
    """The settings of a sandbox daemon started as ``python -m ... --sandbox NAME``: the name
    on its command line must be the environment's (MLOPS_SANDBOX_NAME); logging set up."""
    import logging

    config = Config()
    if args.sandbox != config.name:
        parser.error(f"--sandbox {args.sandbox} does not match MLOPS_SANDBOX_NAME={config.name}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return config
