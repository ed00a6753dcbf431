"""The ECR stand-in: docker login with moto's token, push and pull under the ECR URI,
wrong passwords refused, and a full up/down of a second registry on a port of its own."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from mlops_sandbox import registry
from mlops_sandbox.config import Config
from mlops_sandbox.process import listen_addresses, listening_pids

from .conftest import free_tcp_port

CONFIG = Config()
needs_registry = pytest.mark.skipif(
    not CONFIG.registry_enabled, reason="MLOPS_SANDBOX_REGISTRY=0: this sandbox does not run the registry"
)
LABEL = "io.mlops-deploy.test=sandbox-registry"


def ecr_client(moto_url: str, region: str):
    return boto3.client(
        "ecr", endpoint_url=moto_url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def moto_login(moto_url: str, region: str) -> tuple[str, str, str]:
    """(registry host from proxyEndpoint, user, password) out of moto's GetAuthorizationToken."""
    data = ecr_client(moto_url, region).get_authorization_token()["authorizationData"][0]
    user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return data["proxyEndpoint"].removeprefix("https://"), user, password


def docker(args: list[str], config_dir: Path, input_text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args],
        env={**os.environ, "DOCKER_CONFIG": str(config_dir)},
        input=input_text,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tiny_image(ref: str, config_dir: Path) -> None:
    """An image of one empty layer, labelled as ours (docker import of an empty tar)."""
    result = subprocess.run(
        ["docker", "import", "--change", f"LABEL {LABEL}", "-", ref],
        input=b"",
        capture_output=True,
        env={**os.environ, "DOCKER_CONFIG": str(config_dir)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@needs_registry
def test_login_push_pull_with_motos_token(tmp_path):
    host, user, password = moto_login(CONFIG.moto_url, CONFIG.region)
    assert (host, user) == (CONFIG.ecr_host, "AWS")
    assert password == f"{CONFIG.account_id}-auth-token"
    name = f"mlops-sandbox-selftest/img-{uuid.uuid4().hex[:6]}"
    uri = ecr_client(CONFIG.moto_url, CONFIG.region).create_repository(repositoryName=name)["repository"][
        "repositoryUri"
    ]
    assert uri == f"{CONFIG.ecr_host}/{name}"
    # moto names the registry without a port; clients add it unless it is 443 (registry_address).
    ref = f"{CONFIG.registry_address}/{name}:1"
    login = docker(["login", "--username", user, "--password-stdin", CONFIG.registry_address], tmp_path, password)
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    try:
        tiny_image(ref, tmp_path)
        push = docker(["push", ref], tmp_path)
        assert push.returncode == 0, push.stderr
        assert "digest: sha256:" in push.stdout
        pushed = push.stdout.split("digest: ", 1)[1].split()[0]
        # The engine asks the registry for the digest as compose_deploy does (docker sends
        # one Accept line per manifest type; the front door must pass them all on).
        import docker as docker_sdk

        engine = docker_sdk.APIClient()
        described = engine.inspect_distribution(ref, auth_config={"username": user, "password": password})
        assert described["Descriptor"]["digest"] == pushed
        assert described["Descriptor"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert docker(["image", "rm", ref], tmp_path).returncode == 0
        pull = docker(["pull", ref], tmp_path)
        assert pull.returncode == 0, pull.stderr
        assert "Downloaded newer image" in pull.stdout
    finally:
        docker(["image", "rm", "--force", ref], tmp_path)


@needs_registry
def test_wrong_password_is_refused(tmp_path):
    login = docker(
        ["login", "--username", "AWS", "--password-stdin", CONFIG.registry_address], tmp_path, "not-the-token"
    )
    assert login.returncode != 0
    assert "401 Unauthorized" in login.stderr
    config = tmp_path / "config.json"  # docker writes it only when a login succeeds
    assert CONFIG.ecr_host not in (config.read_text() if config.exists() else "")


@needs_registry
def test_name_and_trust_are_set_up_for_host_and_instances():
    gateway = registry.bridge_gateway_ip()
    block = f"{gateway} {CONFIG.ecr_host}\n"
    assert block in Path("/etc/hosts").read_text()
    # The contract with the sandbox instances: the CA at <state_dir>/registry/ca.crt.
    assert CONFIG.registry_ca == CONFIG.state_dir / "registry" / "ca.crt"
    ca = CONFIG.registry_ca.read_bytes()
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    assert Path(f"/etc/docker/certs.d/{CONFIG.registry_address}/ca.crt").read_bytes() == ca
    # TLS through the name, verified with that CA, asking for credentials.
    assert (
        registry.registry_http_status(CONFIG.ecr_host, CONFIG.registry_port, CONFIG.ecr_host, CONFIG.registry_ca) == 401
    )


def test_hosts_block_is_added_replaced_and_removed_alone():
    base = "127.0.0.1 localhost\n10.0.0.5 other.example # someone's\n"
    once = registry.hosts_with_block(base, "a", {"h.example": "172.17.0.1"})
    twice = registry.hosts_with_block(once, "a", {"h.example": "172.18.0.1"})
    other = registry.hosts_with_block(twice, "b", {"g.example": "172.17.0.1"})
    assert twice.count("h.example") == 1
    assert "172.18.0.1 h.example" in twice
    assert registry.hosts_without_block(other, "a") == registry.hosts_with_block(base, "b", {"g.example": "172.17.0.1"})
    assert registry.hosts_without_block(registry.hosts_without_block(other, "a"), "b") == base
    assert registry.hosts_with_block("no newline at end", "a", {"h": "1.2.3.4"}).startswith(
        "no newline at end\n# BEGIN"
    )


def test_a_second_registry_on_its_own_port_comes_and_goes(sandbox_cli, tmp_path):
    """Full lifecycle without touching the machine's registry: another region (so another
    ECR host name) and a free port; up twice, log in with moto's token, down."""
    port = free_tcp_port()
    sandbox_cli.env.update(
        {
            "MLOPS_SANDBOX_REGISTRY": "1",
            "MLOPS_SANDBOX_REGISTRY_PORT": str(port),
            "MLOPS_SANDBOX_REGION": "eu-central-1",
        }
    )
    host = f"{CONFIG.account_id}.dkr.ecr.eu-central-1.amazonaws.com"
    certs_d = Path(f"/etc/docker/certs.d/{host}:{port}/ca.crt")
    up = sandbox_cli("up")
    assert up.returncode == 0, up.stderr
    assert f"registry up at https://{host}:{port}" in up.stdout
    pid = int((sandbox_cli.state_dir / "registry.pid").read_text())
    relay = int((sandbox_cli.state_dir / "registry-relay.pid").read_text())
    # The registry on loopback, its relay on the bridges (listen.py): nothing else on the port.
    assert listening_pids(port) == {pid, relay}
    assert listen_addresses(pid) == {("127.0.0.1", port)}
    assert ("0.0.0.0", port) not in listen_addresses(relay)
    assert (registry.bridge_gateway_ip(), port) in listen_addresses(relay)
    assert f"{registry.bridge_gateway_ip()} {host}" in Path("/etc/hosts").read_text()
    assert certs_d.read_bytes() == (sandbox_cli.state_dir / "registry" / "ca.crt").read_bytes()

    again = sandbox_cli("up")
    assert again.returncode == 0, again.stderr
    assert "registry already up" in again.stdout
    assert "relay already up" in again.stdout
    assert int((sandbox_cli.state_dir / "registry.pid").read_text()) == pid
    assert int((sandbox_cli.state_dir / "registry-relay.pid").read_text()) == relay

    moto_url = f"http://127.0.0.1:{sandbox_cli.port}"
    proxy, user, password = moto_login(moto_url, "eu-central-1")
    assert proxy == host
    login = docker(["login", "--username", user, "--password-stdin", f"{host}:{port}"], tmp_path, password)
    assert login.returncode == 0, login.stderr

    down = sandbox_cli("down")
    assert down.returncode == 0, down.stderr
    assert "registry stopped" in down.stdout
    assert listening_pids(port) == set()
    assert host not in Path("/etc/hosts").read_text()
    assert not certs_d.exists()
    assert not certs_d.parent.exists()


def test_headers_sent_several_times_are_passed_on_joined():
    from mlops_sandbox.registry_proxy import forwarded_headers

    sent = [
        ("Accept", "application/vnd.docker.distribution.manifest.v2+json"),
        ("Accept", "application/vnd.oci.image.index.v1+json"),
        ("Authorization", "Basic QVdTOnNlY3JldA=="),
        ("Connection", "keep-alive"),
        ("accept", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        ("User-Agent", "docker/20.10"),
    ]
    assert forwarded_headers(sent) == {
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, "
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "User-Agent": "docker/20.10",
    }
