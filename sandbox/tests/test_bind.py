"""Who can reach the sandbox (issue 18): moto, the SSM service and the registry listen on
loopback and the gateways of the Docker bridges its instances and the host's engine use,
nothing else; a gateway answers only its own network (and the machine); the ``/_sandbox``
control plane answers loopback alone."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from mlops_sandbox import listen, registry
from mlops_sandbox.config import Config
from mlops_sandbox.containers import Bridge
from mlops_sandbox.process import SandboxError, sandbox_pids

from .conftest import free_cidr, run_on, wait_for

CONFIG = Config()
PROBE_LABEL = "io.mlops-deploy.sandbox-probe"


# -- what the machine shows (read here with ss and the docker CLI, not with the code under test) --


def listening() -> list[tuple[str, int, set[int]]]:
    """(address, port, pids) of every listening TCP socket, from ``ss -ltnpH``."""
    assert shutil.which("ss"), "ss (iproute2) is needed to read the listening sockets"
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        address, _sep, port = words[3].rpartition(":")
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        found.append((address.strip("[]"), int(port), pids))
    return found


def addresses_of(pids: set[int]) -> dict[int, set[str]]:
    """port -> the addresses that ``pids`` listen on."""
    found: dict[int, set[str]] = {}
    for address, port, owners in listening():
        if owners & pids:
            found.setdefault(port, set()).add(address)
    return found


def docker_json(*args: str) -> list[dict]:
    return json.loads(subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout)


def default_gateway() -> str:
    gateway = registry.bridge_gateway_ip()
    assert ipaddress.ip_address(gateway) in ipaddress.ip_network(
        docker_json("network", "inspect", "bridge")[0]["IPAM"]["Config"][0]["Subnet"]
    )
    return gateway


def sandbox_gateways(name: str) -> set[str]:
    ids = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label=io.mlops-deploy.sandbox={name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not ids:
        return set()
    return {
        c["Gateway"]
        for info in docker_json("network", "inspect", *ids)
        for c in info["IPAM"]["Config"]
        if c.get("Gateway")
    }


def host_addresses() -> set[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return {str(ipaddress.ip_interface(line.split()[3]).ip) for line in out.splitlines()}


def ports(config: Config) -> dict[str, int]:
    found = {"moto": config.moto_port, "ssm": config.ssm_port}
    if config.registry_enabled:
        found["registry"] = config.registry_port
    return found


def http_status(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - test URLs
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- the running sandbox ------------------------------------------------------------------------


needs_default_bind = pytest.mark.skipif(
    bool(CONFIG.bind), reason="MLOPS_SANDBOX_BIND widens the listeners on purpose (its own test below)"
)


@needs_default_bind
def test_the_sandbox_listens_on_loopback_and_its_bridges_only(sandbox_env):
    name = CONFIG.name
    moto, ssm = sandbox_pids("mlops_sandbox.moto_main", name), sandbox_pids("mlops_sandbox.ssm", name)
    assert len(moto) == 1, moto
    assert len(ssm) == 1, ssm
    ours = set(moto + ssm)
    wanted = {"127.0.0.1", default_gateway(), *sandbox_gateways(name)}
    # The default fleet runs on the sandbox's own network: its gateway is one of them.
    assert len(wanted) >= 3, wanted
    expected = {CONFIG.moto_port: wanted, CONFIG.ssm_port: wanted}
    if CONFIG.registry_enabled:
        registry_pid = int((CONFIG.state_dir / "registry.pid").read_text())
        relay = sandbox_pids("mlops_sandbox.relay", name)
        assert len(relay) == 1, relay
        assert addresses_of({registry_pid}) == {CONFIG.registry_port: {"127.0.0.1"}}
        assert addresses_of(set(relay)) == {CONFIG.registry_port: wanted - {"127.0.0.1"}}
        ours |= {registry_pid, *relay}
        expected[CONFIG.registry_port] = wanted
    assert addresses_of(ours) == expected
    # And nobody else holds those ports (an older registry on every address, say).
    for address, port, owners in listening():
        if port in expected:
            assert owners <= ours, f"{address}:{port} is held by pid(s) {owners}, not the sandbox's"


PROBE = r"""
import json, socket, sys, concurrent.futures
targets = json.loads(sys.argv[1])
gateway = next(int(l.split()[2], 16) for l in open("/proc/net/route") if l.split()[1] == "00000000")
gateway = socket.inet_ntoa(gateway.to_bytes(4, "little"))

def probe(target):
    host, port = target
    host = gateway if host == "GATEWAY" else host
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            data = sock.recv(64)
    except OSError as exc:
        return [host, port, type(exc).__name__]
    return [host, port, "answered" if data else "closed"]

with concurrent.futures.ThreadPoolExecutor(16) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


class Answering:
    """A throw-away TCP server on every host address that answers anyone: the control that
    proves the probe container reaches the host at all."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("0.0.0.0", 0))  # noqa: S104 - a test's own throw-away listener
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def probe_from(network: str, targets: list[tuple[str, int]]) -> list[list]:
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            f"--label={PROBE_LABEL}={CONFIG.name}",
            f"--network={network}",
            CONFIG.base_image,
            "python3",
            "-c",
            PROBE,
            json.dumps(targets),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def foreign_network():
    """A Docker network that is not the sandbox's, labelled as this test's, removed after."""
    name = f"mlops-probe-{CONFIG.name}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["docker", "network", "create", f"--label={PROBE_LABEL}={CONFIG.name}", f"--subnet={free_cidr()}", name],
        capture_output=True,
        check=True,
    )
    try:
        yield name
    finally:
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"network={name}", "--filter", f"label={PROBE_LABEL}={CONFIG.name}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if leftovers:
            subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


@needs_default_bind
def test_a_container_of_another_network_reaches_none_of_the_services(sandbox_env, foreign_network):
    """Its own gateway (where it reaches the host), and every other address of the machine
    (LAN, docker0, every bridge): refused, or closed unanswered on a gateway listener."""
    control = Answering()
    try:
        services = ports(CONFIG)
        addresses = ["GATEWAY", *sorted(host_addresses() - {"127.0.0.1"})]
        targets = [(address, port) for address in addresses for port in services.values()]
        results = probe_from(foreign_network, [*targets, ("GATEWAY", control.port)])
    finally:
        control.close()
    *probed, reached = results
    assert reached[2] == "answered", f"the probe container does not reach the host at all: {reached}"
    answered = [r for r in probed if r[2] == "answered"]
    assert answered == [], f"the sandbox answered a container of another network: {answered}"
    assert len(probed) == len(targets) >= 6


@needs_default_bind
def test_a_container_on_the_default_bridge_reaches_the_services(sandbox_env):
    """As molecule's containers do: through the default bridge's gateway."""
    gateway = default_gateway()
    results = probe_from("bridge", [(gateway, port) for port in ports(CONFIG).values()])
    assert [r[2] for r in results] == ["answered"] * len(results), results


def test_an_instance_reaches_aws_but_not_the_control_plane(ssm, model_servers, control):
    before = control.faults()
    lines = [
        "aws sts get-caller-identity --query Account --output text",
        "aws ssm describe-instance-information --query 'length(InstanceInformationList) > `0`' --output text",
        "curl -s -o /tmp/health -w '%{http_code}\\n' \"$AWS_ENDPOINT_URL_SSM/_sandbox/health\"; cat /tmp/health; echo",
        # A request that would change the sandbox, body and all: refused before it is read.
        "curl -s -o /dev/null -w '%{http_code}\\n' -X POST -d '{\"share\": 1}' "
        '"$AWS_ENDPOINT_URL_SSM/_sandbox/faults/throttle"',
    ]
    if CONFIG.registry_enabled:
        ca = f"/etc/docker/certs.d/{CONFIG.registry_address}/ca.crt"
        lines.append(f"curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert {ca} https://{CONFIG.registry_address}/v2/")
    out = run_on(ssm, model_servers[0], lines).splitlines()
    assert out[0] == CONFIG.account_id
    assert out[1] == "True"
    assert out[2] == "403"
    assert "127.0.0.1 only" in out[3]
    assert out[4] == "403"
    if CONFIG.registry_enabled:
        assert out[5] == "401"  # TLS verified, asking for moto's token
    assert control.faults() == before


def test_the_host_reaches_everything_on_loopback(sandbox_env):
    status, _body = http_status(f"http://127.0.0.1:{CONFIG.moto_port}/moto-api/")
    assert status == 200
    status, body = http_status(f"{sandbox_env['MLOPS_SANDBOX_CONTROL_URL']}/health")
    assert (status, json.loads(body)["ok"]) == (200, True)
    if CONFIG.registry_enabled:
        assert (
            registry.registry_http_status("127.0.0.1", CONFIG.registry_port, CONFIG.ecr_host, CONFIG.registry_ca) == 401
        )


@needs_default_bind
def test_the_host_reaches_the_gateways_but_the_control_plane_only_on_loopback(sandbox_env):
    """The machine's own connections to a gateway (NAT may give them its LAN address) are
    served; the control plane still refuses them."""
    gateway = default_gateway()
    status, _body = http_status(f"http://{gateway}:{CONFIG.moto_port}/moto-api/")
    assert status == 200
    status, body = http_status(f"http://{gateway}:{CONFIG.ssm_port}/_sandbox/health")
    assert status == 403, body
    if CONFIG.registry_enabled:
        assert registry.registry_http_status(gateway, CONFIG.registry_port, CONFIG.ecr_host, CONFIG.registry_ca) == 401


# -- throw-away sandboxes -----------------------------------------------------------------------


def _listeners(cli) -> dict[int, set[str]]:
    pids = set(sandbox_pids("mlops_sandbox.moto_main", cli.name) + sandbox_pids("mlops_sandbox.ssm", cli.name))
    return addresses_of(pids)


def test_listeners_follow_the_sandbox_networks_and_up_twice_keeps_them(sandbox_cli):
    up = sandbox_cli("up")
    assert up.returncode == 0, up.stderr
    both = (sandbox_cli.port, sandbox_cli.ssm_port)
    base = {"127.0.0.1", default_gateway()}
    assert _listeners(sandbox_cli) == dict.fromkeys(both, base)

    # The fleet makes the sandbox's network after the servers are up (instances add).
    cidr = ipaddress.ip_network(sandbox_cli.env["MLOPS_SANDBOX_CIDR"])
    gateway = str(cidr.broadcast_address - 1)
    network = f"mlops-sandbox-{sandbox_cli.name}"
    subprocess.run(
        [
            "docker",
            "network",
            "create",
            f"--label=io.mlops-deploy.sandbox={sandbox_cli.name}",
            f"--subnet={cidr}",
            f"--gateway={gateway}",
            network,
        ],  # fmt: skip
        capture_output=True,
        check=True,
    )
    wait_for(
        lambda: _listeners(sandbox_cli) == dict.fromkeys(both, base | {gateway}), 30, "listeners on the new gateway"
    )

    again = sandbox_cli("up")
    assert again.returncode == 0, again.stderr
    assert "moto already up" in again.stdout
    assert "SSM service already up" in again.stdout
    assert _listeners(sandbox_cli) == dict.fromkeys(both, base | {gateway})

    subprocess.run(["docker", "network", "rm", network], capture_output=True, check=True)
    wait_for(lambda: _listeners(sandbox_cli) == dict.fromkeys(both, base), 30, "the gone gateway's listeners closed")


def test_bind_widens_on_purpose_and_the_control_plane_stays_on_loopback(sandbox_cli):
    sandbox_cli.env["MLOPS_SANDBOX_BIND"] = "0.0.0.0"  # noqa: S104 - what the test is about
    up = sandbox_cli("up")
    assert up.returncode == 0, up.stderr
    assert _listeners(sandbox_cli) == {sandbox_cli.port: {"0.0.0.0"}, sandbox_cli.ssm_port: {"0.0.0.0"}}
    lan = sorted(host_addresses() - {"127.0.0.1"} - {default_gateway()})[0]
    assert http_status(f"http://{lan}:{sandbox_cli.port}/moto-api/")[0] == 200
    status, body = http_status(f"http://{lan}:{sandbox_cli.ssm_port}/_sandbox/health")
    assert status == 403, body
    assert http_status(f"http://127.0.0.1:{sandbox_cli.ssm_port}/_sandbox/health")[0] == 200


def test_a_bad_bind_setting_stops_up_before_anything_starts(sandbox_cli):
    sandbox_cli.env["MLOPS_SANDBOX_BIND"] = "127.0.0.1,my-laptop"
    up = sandbox_cli("up")
    assert up.returncode == 1
    assert "MLOPS_SANDBOX_BIND takes IPv4 addresses" in up.stderr
    assert "'my-laptop'" in up.stderr
    assert "Traceback" not in up.stderr
    assert not list(sandbox_cli.state_dir.glob("*.pid"))
    assert _listeners(sandbox_cli) == {}


# -- the plan, as values -------------------------------------------------------------------------

DOCKER0 = Bridge("bridge", "172.17.0.1", "172.17.0.0/16")
VPC = Bridge("mlops-sandbox-x", "10.200.255.254", "10.200.0.0/16")


@pytest.mark.parametrize(
    ("bridges", "bind", "expected"),
    [
        ([], "", [("127.0.0.1", "127.0.0.0/8")]),
        (
            [DOCKER0, VPC],
            "",
            [("127.0.0.1", "127.0.0.0/8"), ("172.17.0.1", "172.17.0.0/16"), ("10.200.255.254", "10.200.0.0/16")],
        ),
        # A widened address serves anyone, a bridge's gateway widened too.
        (
            [DOCKER0],
            "192.168.1.5, 172.17.0.1",
            [("127.0.0.1", "127.0.0.0/8"), ("172.17.0.1", None), ("192.168.1.5", None)],
        ),
        ([DOCKER0, VPC], "127.0.0.1,0.0.0.0", [("0.0.0.0", None)]),
    ],
)
def test_listen_plan(bridges, bind, expected):
    assert [(i.address, i.peers) for i in listen.plan(bridges, listen.widened(bind))] == expected


@pytest.mark.parametrize("bind", ["laptop", "::", "10.0.0.300", "10.0.0.0/8"])
def test_bind_takes_ipv4_addresses_only(bind):
    with pytest.raises(SandboxError, match="MLOPS_SANDBOX_BIND takes IPv4 addresses"):
        listen.widened(bind)


FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 10.62.0.0
        /16 link UNICAST
     +-- 10.62.255.254/31 1 0 0
        |-- 10.62.255.254
           /32 host LOCAL
        |-- 10.62.255.255
           /32 link BROADCAST
     |-- 192.0.2.2
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 4
     |-- 127.0.0.1
        /32 host LOCAL
"""


def test_local_addresses_from_fib_trie():
    assert listen.local_addresses(FIB_TRIE) == {"10.62.255.254", "192.0.2.2", "127.0.0.1"}


def test_peer_check_serves_its_network_and_the_machine_only():
    check = listen.PeerCheck()
    check.peers = ipaddress.ip_network("10.200.0.0/16")
    assert check.verify_request(None, ("10.200.0.7", 4000))
    assert check.verify_request(None, ("127.0.0.1", 4000))  # the machine itself
    assert not check.verify_request(None, ("10.201.0.7", 4000))
    assert not check.verify_request(None, ("203.0.113.9", 4000))
    check.peers = None
    assert check.verify_request(None, ("203.0.113.9", 4000))


def test_wait_listening_says_what_is_missing():
    with pytest.raises(SandboxError, match=r"nothing listens on 127\.0\.0\.1 port\(s\) 1"):
        listen.wait_listening("127.0.0.1", [1], timeout=0.2)
    with socket.create_server(("127.0.0.1", 0)) as sock:
        listen.wait_listening("127.0.0.1", [sock.getsockname()[1]], timeout=5)
