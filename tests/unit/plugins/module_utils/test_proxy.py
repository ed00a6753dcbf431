"""Pure parts of the blue/green proxy driver, fed with what HAProxy 2.6 answered
(tests/unit/fixtures/haproxy), and its socket clients against a real UNIX socket."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _proxy as p

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "haproxy"


def stat(name: str) -> list[dict]:
    return p.parse_stat((FIXTURES / f"{name}.csv").read_text())


STATE = {
    "project": "titanic",
    "port": 8080,
    "colours": {"blue": 18080, "green": 28080},
    "live": "green",
    "health_path": "/health",
}


def test_endpoint_file_names_the_live_colour_and_reads_back():
    text = p.render_endpoint(STATE)
    assert p.read_endpoint(text) == STATE
    lines = text.splitlines()
    assert "frontend ep_titanic" in lines
    assert "    bind :8080" in lines
    assert "    option httpchk GET /health" in lines
    assert "    server blue 127.0.0.1:18080 check disabled" in lines
    assert "    server green 127.0.0.1:28080 check" in lines


def test_endpoint_file_without_a_live_colour_disables_both():
    text = p.render_endpoint(dict(STATE, live=None))
    assert [line for line in text.splitlines() if line.strip().startswith("server")] == [
        "    server blue 127.0.0.1:18080 check disabled",
        "    server green 127.0.0.1:28080 check disabled",
    ]


@pytest.mark.parametrize(
    "text",
    ["", "frontend x\n", "# mlops.deploy state: {not json\n", '# mlops.deploy state: ["a"]\n'],
    ids=["empty", "another file", "broken JSON", "not an object"],
)
def test_other_files_have_no_state(text):
    assert p.read_endpoint(text) is None


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("show_stat_green_maint", {"blue": ("UP", True, 0), "green": ("MAINT", False, 0)}),
        ("show_stat_green_ready", {"blue": ("UP", True, 0), "green": ("UP", True, 0)}),
        ("show_stat_blue_up_green_drain", {"blue": ("UP", True, 0), "green": ("DRAIN", True, 0)}),
        ("show_stat_blue_draining_one_in_flight", {"blue": ("DRAIN", True, 1), "green": ("UP 1/2", True, 0)}),
        ("show_stat_blue_down", {"blue": ("DOWN", False, 0), "green": ("MAINT", False, 0)}),
    ],
)
def test_servers_of_a_backend_as_haproxy_reports_them(fixture, expected):
    found = p.servers_of(stat(fixture), "be_exp")
    assert {name: (s["status"], s["up"], s["in_flight"]) for name, s in found.items()} == expected


def test_down_server_says_why():
    assert p.servers_of(stat("show_stat_blue_down"), "be_exp")["blue"]["check"] == "Layer4 connection problem"


def test_proxies_and_foreign_backends():
    rows = stat("show_stat_green_maint")
    assert p.proxies_of(rows) == {"mlops-proxy-health", "ep_exp", "be_exp"}
    assert p.servers_of(rows, "be_other") == {}


def test_an_answer_that_is_not_the_csv_is_an_error():
    with pytest.raises(p.ProxyError, match="did not answer show stat"):
        p.parse_stat("Unknown command.\n")


def test_default_colour_ports_do_not_collide_for_neighbouring_endpoints():
    a, b = p.default_colour_ports(8080), p.default_colour_ports(8081)
    assert a == {"blue": 18080, "green": 28080}
    assert not set(a.values()) & set(b.values())
    assert p.default_colour_ports(50000) is None


@pytest.mark.parametrize("path", ["/health", "/v1/ready?full=1"])
def test_health_paths_accepted(path):
    assert p.check_health_path(path) == path


@pytest.mark.parametrize("path", ["", "health", "/he alth", "/x\n"])
def test_health_paths_refused(path):
    with pytest.raises(p.ProxyError, match="health_path must be"):
        p.check_health_path(path)


# --------------------------------------------------------------------------- sockets


class FakeHaproxy:
    """A UNIX socket that answers each command with the next recorded answer (and keeps the commands)."""

    def __init__(self, path: Path, answers: dict):
        self.path = str(path)
        self.answers = {k: list(v) for k, v in answers.items()}
        self.received = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            with conn:
                line = conn.recv(4096).decode().strip()
                self.received.append(line)
                queue = self.answers.get(line.split(" state ")[0] if " state " in line else line, [""])
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                conn.sendall(answer.encode())

    def close(self):
        self.sock.close()


@pytest.fixture
def sockdir(tmp_path):
    short = Path("/tmp") / f"mlops-test-proxy-{os.getpid()}-{tmp_path.name[-6:]}"
    short.mkdir()
    yield short
    for child in short.iterdir():
        child.unlink()
    short.rmdir()


def test_switch_waits_up_then_drained(sockdir):
    recorded = {
        name: (FIXTURES / f"{name}.csv").read_text()
        for name in ("show_stat_green_maint", "show_stat_green_ready", "show_stat_blue_draining_one_in_flight")
    }
    fake = FakeHaproxy(
        sockdir / "admin.sock",
        {
            "show stat": [
                recorded["show_stat_green_maint"],
                recorded["show_stat_green_ready"],
                recorded["show_stat_blue_draining_one_in_flight"],
                recorded["show_stat_blue_draining_one_in_flight"],
                recorded["show_stat_green_maint"].replace("be_exp,green", "be_exp,x"),  # blue idle again
            ],
        },
    )
    clock = iter(range(1000))
    api = p.RuntimeApi(fake.path, clock=lambda: next(clock) * 0.1, sleep=lambda _s: None)
    try:
        api.set_state("be_exp", "green", "ready")
        assert api.wait_up("be_exp", "green", timeout=5) == (True, "UP")
        drained, in_flight, _waited = api.wait_drained("be_exp", "blue", timeout=5)
        assert (drained, in_flight) == (True, 0)
        assert api.commands == ["set server be_exp/green state ready"]
        assert fake.received.count("show stat") == 5
    finally:
        fake.close()


def test_drain_timeout_reports_what_is_still_in_flight(sockdir):
    fake = FakeHaproxy(
        sockdir / "admin.sock",
        {"show stat": [(FIXTURES / "show_stat_blue_draining_one_in_flight.csv").read_text()]},
    )
    clock = iter(range(1000))
    api = p.RuntimeApi(fake.path, clock=lambda: next(clock) * 0.5, sleep=lambda _s: None)
    try:
        assert api.wait_drained("be_exp", "blue", timeout=2)[:2] == (False, 1)
    finally:
        fake.close()


def test_refused_command_says_haproxys_words(sockdir):
    fake = FakeHaproxy(sockdir / "admin.sock", {"set server be_exp/nope": ["No such server.\n"]})
    try:
        with pytest.raises(p.ProxyError, match=r"refused `set server be_exp/nope state ready`: No such server\."):
            p.RuntimeApi(fake.path).set_state("be_exp", "nope", "ready")
    finally:
        fake.close()


def test_missing_socket_says_how_to_start_the_proxy(sockdir):
    with pytest.raises(p.ProxyError, match="is the proxy running.*ec2_host.*mlops-proxy ensure"):
        p.RuntimeApi(str(sockdir / "nothing.sock")).stat()


def test_port_in_use():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert p.port_in_use(port, "127.0.0.1")
    assert not p.port_in_use(port, "127.0.0.1")
