"""Bring-up, idempotence, leftovers and teardown of a throw-away sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

from mlops_sandbox.process import listening_pids, pid_alive, wait_until

from .conftest import BIN


def _pid(cli) -> int:
    return int((cli.state_dir / "moto.pid").read_text())


def test_up_is_usable_by_the_aws_cli_and_idempotent(sandbox_cli):
    first = sandbox_cli("up")
    assert first.returncode == 0, first.stderr
    assert f"moto up on :{sandbox_cli.port}" in first.stdout
    pid = _pid(sandbox_cli)
    assert listening_pids(sandbox_cli.port) == {pid}

    # A real client none of us wrote, configured only by the exports in the env file.
    env = {**os.environ, **sandbox_cli.exports()}
    env.pop("AWS_PROFILE", None)
    who = subprocess.run(
        [str(BIN / "aws"), "sts", "get-caller-identity", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Account"] == "123456789012"

    again = sandbox_cli("up")
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert _pid(sandbox_cli) == pid


def test_up_clears_a_leftover_server_whose_state_was_lost(sandbox_cli):
    assert sandbox_cli("up").returncode == 0
    old = _pid(sandbox_cli)
    # A clean clone elsewhere has no pid file; the old server still holds the port.
    (sandbox_cli.state_dir / "moto.pid").unlink()
    result = sandbox_cli("up")
    assert result.returncode == 0, result.stderr
    new = _pid(sandbox_cli)
    assert new != old
    assert not pid_alive(old)
    assert listening_pids(sandbox_cli.port) == {new}


def test_up_refuses_to_kill_a_foreign_process_on_its_port(sandbox_cli):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sandbox_cli.env["MLOPS_SANDBOX_MOTO_PORT"] = str(port)
    foreign = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: foreign.pid in listening_pids(port), 30, "http.server listening")
        result = sandbox_cli("up")
        assert result.returncode == 1
        assert f"port {port} is in use by pid {foreign.pid}" in result.stderr
        assert "not part of the sandbox" in result.stderr
        assert "Traceback" not in result.stderr
        assert foreign.poll() is None  # still running: not ours to stop
        assert not sandbox_cli.env_file.exists()
    finally:
        foreign.send_signal(signal.SIGTERM)
        foreign.wait(timeout=10)


def test_down_leaves_nothing_behind(sandbox_cli):
    assert sandbox_cli("up").returncode == 0
    pid = _pid(sandbox_cli)
    result = sandbox_cli("down")
    assert result.returncode == 0, result.stderr
    assert "moto stopped" in result.stdout
    assert "SSM service stopped" in result.stdout
    assert not pid_alive(pid)
    assert listening_pids(sandbox_cli.port) == set()
    assert not sandbox_cli.env_file.exists()
    # And down again is fine.
    assert sandbox_cli("down").returncode == 0


def _docker_objects(name: str) -> dict[str, list[str]]:
    label = f"label=io.mlops-deploy.sandbox={name}"

    def ids(*args: str) -> list[str]:
        return subprocess.run(
            ["docker", *args, "--filter", label], capture_output=True, text=True, check=True
        ).stdout.split()

    return {
        "containers": ids("ps", "-aq"),
        "volumes": ids("volume", "ls", "-q"),
        "networks": ids("network", "ls", "-q"),
    }


def test_bring_up_from_nothing_then_teardown_leaves_nothing(sandbox_cli):
    """A fleet of one full instance from nothing but the network an older version left
    (on Docker's default range, not the VPC's), used by a real client; then nothing is
    left, even with the pid files gone (as for a sandbox started from another checkout)."""
    from mlops_sandbox.process import sandbox_pids

    sandbox_cli.env["MLOPS_SANDBOX_INSTANCES"] = "1"
    assert _docker_objects(sandbox_cli.name) == {"containers": [], "volumes": [], "networks": []}
    network = f"mlops-sandbox-{sandbox_cli.name}"
    label = f"io.mlops-deploy.sandbox={sandbox_cli.name}"
    subprocess.run(["docker", "network", "create", "--label", label, network], capture_output=True, check=True)
    # The registry component's CA, where it writes it: full instances must trust it.
    ca = sandbox_cli.state_dir / "registry" / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text("-----BEGIN CERTIFICATE-----\nsandbox-test\n-----END CERTIFICATE-----\n")
    up = sandbox_cli("up", timeout=900)
    assert up.returncode == 0, up.stderr
    assert "1 full instance(s) Name=model-server env=local online" in up.stdout
    objects = _docker_objects(sandbox_cli.name)
    assert (len(objects["containers"]), len(objects["volumes"]), len(objects["networks"])) == (1, 1, 1)
    subnet = subprocess.run(
        ["docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", network],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert subnet == sandbox_cli.env["MLOPS_SANDBOX_CIDR"]
    ecr_host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    # The CA is trusted under the registry's address: its name, with the port unless 443.
    registry_port = sandbox_cli.env.get("MLOPS_SANDBOX_REGISTRY_PORT", "443")
    certs_name = ecr_host if registry_port == "443" else f"{ecr_host}:{registry_port}"
    inside = subprocess.run(
        [
            "docker",
            "exec",
            objects["containers"][0],
            "sh",
            "-c",
            f"cat /etc/docker/certs.d/{certs_name}/ca.crt; getent hosts {ecr_host}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert inside.startswith(ca.read_text())
    assert inside.rstrip().endswith(ecr_host)

    env = {**os.environ, **sandbox_cli.exports()}
    env.pop("AWS_PROFILE", None)
    info = subprocess.run(
        [str(BIN / "aws"), "ssm", "describe-instance-information", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert info.returncode == 0, info.stderr
    assert [i["PingStatus"] for i in json.loads(info.stdout)["InstanceInformationList"]] == ["Online"]

    daemons = sandbox_pids("mlops_sandbox.ssm", sandbox_cli.name) + sandbox_pids(
        "mlops_sandbox.moto_main", sandbox_cli.name
    )
    assert len(daemons) == 2
    for pidfile in sandbox_cli.state_dir.glob("*.pid"):
        pidfile.unlink()
    down = sandbox_cli("down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert "removed 1 container(s), 1 volume(s), 1 network(s)" in down.stdout
    assert _docker_objects(sandbox_cli.name) == {"containers": [], "volumes": [], "networks": []}
    assert not any(pid_alive(pid) for pid in daemons)
    assert sandbox_pids("mlops_sandbox.ssm", sandbox_cli.name) == []
    assert listening_pids(sandbox_cli.port) == set()
    assert listening_pids(sandbox_cli.ssm_port) == set()
    assert not sandbox_cli.env_file.exists()
