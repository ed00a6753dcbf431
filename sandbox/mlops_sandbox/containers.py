"""The Docker engine through its CLI: the sandbox's network, instance containers, clean-up.

The CLI, not the SDK, because Docker-in-Docker needs ``--security-opt systempaths=unconfined``,
which only the CLI turns into the engine's settings. Everything created carries the
sandbox label, so ``down`` finds it again whoever created it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Config
from .process import SandboxError

INSTANCE_LABEL = "io.mlops-deploy.instance-id"
KIND_LABEL = "io.mlops-deploy.kind"
# Docker-in-Docker on this engine (cgroup v1, no CAP_SYS_RESOURCE; see DESIGN.md).
DIND_OPTIONS = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
)
# Run-time state only, as a host's /run: empty at each boot.
RUN_TMPFS = "--tmpfs=/run:rw,exec,nosuid,nodev,mode=755"
# What systemd as PID 1 needs besides (see DESIGN.md): /run/lock a tmpfs of its own too.
# The images that boot systemd say so themselves (CMD /lib/systemd/systemd, STOPSIGNAL
# SIGRTMIN+3, container=docker).
SYSTEMD_OPTIONS = (RUN_TMPFS, "--tmpfs=/run/lock:rw,nosuid,nodev,noexec")


def docker(*args: str, check: bool = True, timeout: float = 300, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(  # noqa: S603 - fixed program, arguments built here
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            check=False,
        )
    except FileNotFoundError:
        raise SandboxError("the docker CLI is not installed; run `make setup` (tools/docker-engine.sh)") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"`docker {' '.join(args[:3])} ...` did not finish within {timeout:.0f}s") from None
    if check and result.returncode != 0:
        raise SandboxError(
            f"`docker {' '.join(args[:4])} ...` failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def engine_answers() -> bool:
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=20)
    except SandboxError:
        return False
    return True


def ensure_network(config: Config) -> str:
    """The sandbox's bridge network on the VPC's CIDR; returns its gateway address (the
    host, seen from instances), the last address of the range, which moto (assigning
    from the start of the subnet) does not hand out."""
    subnet = ipaddress.ip_network(config.vpc_cidr)
    gateway = network_gateway(config)
    if gateway and ipaddress.ip_address(gateway) in subnet:
        return gateway
    if gateway:
        # Left by an earlier sandbox of this name on another range (an older version, or
        # another MLOPS_SANDBOX_CIDR): its instances cannot match this VPC's addresses.
        # Its containers (this sandbox's, by label) go with it; anything else attached
        # makes `network rm` fail with Docker's message naming it.
        remove(docker("ps", "-aq", f"--filter=label={config.label}", f"--filter=network={config.network}").split())
        docker("network", "rm", config.network)
    try:
        docker(
            "network", "create", "--driver", "bridge", "--label", config.label,
            f"--subnet={subnet}", f"--gateway={subnet.broadcast_address - 1}", config.network,
        )  # fmt: skip
    except SandboxError as exc:
        if "overlaps" not in str(exc):
            raise
        raise SandboxError(
            f"{exc}: another Docker network uses {subnet}; give this sandbox another range "
            "with MLOPS_SANDBOX_CIDR (e.g. MLOPS_SANDBOX_CIDR=10.190.0.0/16)"
        ) from None
    gateway = network_gateway(config)
    if not gateway:
        raise SandboxError(f"network {config.network} has no gateway address; remove it (`make sandbox-down`)")
    return gateway


@dataclass(frozen=True)
class Bridge:
    """A Docker bridge network as the host sees it: its gateway is an address of the host."""

    name: str
    gateway: str
    subnet: str


def _bridge(info: dict) -> Bridge | None:
    """The gateway and subnet of ``docker network inspect`` output (IPv4), if it names both."""
    for entry in (info.get("IPAM") or {}).get("Config") or []:
        subnet, gateway = entry.get("Subnet") or "", entry.get("Gateway") or ""
        if subnet and gateway and "." in subnet:
            return Bridge(info.get("Name", ""), gateway, subnet)
    return None


def default_bridge() -> Bridge:
    """Docker's default bridge (docker0): its gateway reaches the host from the host itself
    and from every container on it (molecule's, ``docker build``'s)."""
    out = docker("network", "inspect", "bridge", timeout=30, check=False)
    try:
        info = json.loads(out)[0]
    except (ValueError, IndexError):
        raise SandboxError("cannot inspect Docker's bridge network; is the engine running?") from None
    found = _bridge(info)
    if found:
        return found
    # The default bridge often lists only its subnet: the gateway is the bridge's address.
    iface = (info.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", iface], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        for word in out.split():
            if "/" in word:
                with contextlib.suppress(ValueError):
                    address = ipaddress.ip_interface(word)
                    return Bridge(info.get("Name", "bridge"), str(address.ip), str(address.network))
    raise SandboxError(f"cannot find the address of Docker's bridge ({iface}); is the engine running?")


def sandbox_bridges(config: Config) -> list[Bridge]:
    """The bridge networks labelled for this sandbox (its VPC network, and any other it makes)."""
    ids = labelled("network", config)
    if not ids:
        return []
    try:
        infos = json.loads(docker("network", "inspect", *ids, check=False) or "[]")
    except ValueError:
        return []
    return [b for b in (_bridge(info) for info in infos) if b]


def network_gateway(config: Config) -> str | None:
    out = docker("network", "inspect", config.network, check=False)
    try:
        info = json.loads(out)[0]
    except (ValueError, IndexError):
        return None
    for entry in info.get("IPAM", {}).get("Config") or []:
        if entry.get("Gateway"):
            return entry["Gateway"]
    return None


def labelled(kind: str, config: Config, extra: Sequence[str] = ()) -> list[str]:
    """IDs of containers / networks / volumes of this sandbox (``kind`` = ps | network | volume)."""
    filters = [f"--filter=label={config.label}", *(f"--filter=label={x}" for x in extra)]
    if kind == "ps":
        out = docker("ps", "-aq", *filters, check=False)
    else:
        out = docker(kind, "ls", "-q", *filters, check=False)
    return out.split()


def containers(config: Config) -> list[dict]:
    """Instance containers of this sandbox: name, instance id, kind, running, image."""
    ids = labelled("ps", config)
    if not ids:
        return []
    out = docker("inspect", *ids, check=False)
    try:
        infos = json.loads(out or "[]")
    except ValueError:
        return []
    found = []
    for info in infos:
        labels = info.get("Config", {}).get("Labels") or {}
        found.append(
            {
                "name": info.get("Name", "").lstrip("/"),
                "instance_id": labels.get(INSTANCE_LABEL),
                "kind": labels.get(KIND_LABEL),
                "running": bool(info.get("State", {}).get("Running")),
                "image": info.get("Config", {}).get("Image"),
            }
        )
    return found


def remove(names: Sequence[str]) -> None:
    if names:
        docker("rm", "-f", "-v", *names, check=False, timeout=600)


def cleanup(config: Config) -> dict[str, int]:
    """Remove every container, volume and network labelled for this sandbox."""
    removed = {"containers": 0, "volumes": 0, "networks": 0}
    ids = labelled("ps", config)
    if ids:
        docker("rm", "-f", "-v", *ids, check=False, timeout=600)
        removed["containers"] = len(ids)
    volumes = labelled("volume", config)
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
        removed["volumes"] = len(volumes)
    networks = labelled("network", config)
    if networks:
        docker("network", "rm", *networks, check=False)
        removed["networks"] = len(networks)
    left = labelled("ps", config) + labelled("volume", config) + labelled("network", config)
    if left:
        raise SandboxError(f"could not remove Docker objects of sandbox {config.name}: {' '.join(left)}")
    return removed
