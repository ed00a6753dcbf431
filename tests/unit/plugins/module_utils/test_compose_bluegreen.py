"""Pure parts of compose_deploy's blue/green strategy: the endpoint read from the compose
model and the options (bad input names what to fix), the colour override, the health
check verdict, and whether the running proxy agrees with its file (rows as ``_proxy``
parses HAProxy's ``show stat``)."""

from __future__ import annotations

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _compose_bluegreen as bg
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import Project
from ansible_collections.mlops.deploy.plugins.module_utils._proxy import ProxyError

CHECK = {"test": ["CMD", "curl", "-fsS", "http://127.0.0.1:8080/health"], "interval": 1000000000}


def project(**services) -> Project:
    return Project("titanic", {"name": "titanic", "services": services}, sorted(services))


def api(published="8080", **more) -> dict:
    return {"image": "reg/api:1", "ports": [{"target": 8080, "published": published}], "healthcheck": CHECK, **more}


def settings(**values) -> bg.BlueGreenSettings:
    return bg.BlueGreenSettings.from_params(values)


def test_endpoint_from_the_one_publishing_service_with_default_colour_ports():
    endpoint = bg.endpoint_of(project(api=api(), worker={"image": "reg/worker:1"}), settings(), None)
    assert endpoint == bg.Endpoint(
        "titanic", "api", 8080, 8080, {"blue": 18080, "green": 28080}, "/health", None
    )  # fmt: skip


def test_endpoint_health_path_from_the_probe_url_keeps_its_query():
    endpoint = bg.endpoint_of(project(api=api()), settings(), "http://127.0.0.1:8080/ready?deep=1")
    assert endpoint.health_path == "/ready?deep=1"
    assert bg.endpoint_of(project(api=api()), settings(health_path="/h"), "http://x/ready").health_path == "/h"


@pytest.mark.parametrize(
    ("services", "options", "message"),
    [
        ({"api": api(), "ui": api(published="9090")}, {}, "services api, ui publish ports; set blue_green.service"),
        ({"api": api(published=None)}, {}, "no service publishes a port"),
        ({"api": api()}, {"service": "nope"}, "blue_green.service nope is not in the compose file"),
        ({"api": api(), "ui": api(published="9090")}, {"service": "api"}, "service(s) ui publish host ports too"),
        ({"api": api()}, {"drain_timeout": -1}, "blue_green.drain_timeout must be 0 or more seconds, not -1"),
        ({"api": api()}, {"colour_ports": [18080]}, "blue_green.colour_ports must be two different ports"),
        ({"api": api()}, {"colour_ports": [8080, 9000]}, "neither the endpoint's 8080"),
        ({"api": api()}, {"colour_ports": [9000, 70000]}, "blue_green.colour_ports must be 1 to 65535"),
        ({"api": api(published="50000")}, {}, "port 50000 leaves no room for the default colour ports"),
        ({"api": api()}, {"port": 0}, "blue_green.port must be 1 to 65535, not 0"),
    ],
)
def test_bad_endpoints_say_what_to_fix(services, options, message):
    with pytest.raises(DeployError) as raised:
        bg.endpoint_of(project(**services), settings(**options), None)
    assert message in raised.value.msg


def test_colour_override_publishes_on_loopback_only_and_restarts_at_boot():
    endpoint = bg.endpoint_of(project(api=api()), settings(), None)
    text = bg.colour_override(endpoint, "green")
    assert '    ports: !override\n      - "127.0.0.1:28080:8080"\n' in text
    assert "      io.mlops-deploy.colour: green\n" in text
    assert text.endswith("    restart: unless-stopped\n")
    kept = bg.endpoint_of(project(api=api(restart="always")), settings(), None)
    assert "restart:" not in bg.colour_override(kept, "blue")


@pytest.mark.parametrize(
    ("model", "image", "verdict"),
    [
        ({"healthcheck": CHECK}, None, True),
        ({"healthcheck": {"disable": True}}, {"Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}, False),
        ({"healthcheck": {"test": ["NONE"]}}, None, False),
        ({}, {"Config": {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}}}, True),
        ({}, {"Config": {"Healthcheck": {"Test": ["NONE"]}}}, False),
        ({}, {"Config": {}}, False),
        ({}, None, None),
    ],
)
def test_healthcheck_from_the_file_else_the_image(model, image, verdict):
    assert bg.has_healthcheck(model, image) is verdict


def test_the_proxy_agrees_only_when_live_serves_and_the_other_is_in_maintenance():
    up, maint, drain = {"status": "UP", "up": True}, {"status": "MAINT", "up": False}, {"status": "DRAIN", "up": True}
    assert bg.runtime_agrees({"blue": up, "green": maint}, "blue") is True
    assert bg.runtime_agrees({"blue": up, "green": up}, "blue") is False
    assert bg.runtime_agrees({"blue": drain, "green": maint}, "blue") is False
    assert bg.runtime_agrees({"blue": up}, "blue") is False


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class BootingProxy:
    """A runtime API that does not answer for its first ``down`` calls (a host just booted),
    or refuses (``refuse``)."""

    def __init__(self, down: int = 0, refuse: bool = False):
        self.down, self.refuse, self.calls = down, refuse, 0

    def servers(self, backend):
        self.calls += 1
        if self.refuse:
            raise ProxyError("no permission on the proxy's runtime API socket /run/mlops-proxy/admin.sock")
        if self.calls <= self.down:
            raise ProxyError("the proxy's runtime API socket does not answer (No such file or directory)", absent=True)
        return {"blue": {"status": "UP", "up": True}}


def strategy(runtime, **values):
    clock = Clock()
    found = bg.BlueGreen(None, None, None, settings(**values), "/tmp", clock=clock, sleep=clock.sleep, runtime=runtime)
    return found, clock


def test_a_proxy_not_up_yet_is_waited_for_then_used():
    endpoint = bg.endpoint_of(project(api=api()), settings(), None)
    found, clock = strategy(BootingProxy(down=5))
    assert found.proxy_servers(endpoint, None) == {"blue": {"status": "UP", "up": True}}
    assert (found.runtime.calls, clock.now, found.proxy_waited) == (6, 5.0, 5.0)


def test_a_proxy_that_never_answers_fails_after_proxy_wait_changing_nothing():
    endpoint = bg.endpoint_of(project(api=api()), settings(), None)
    found, clock = strategy(BootingProxy(down=1000), proxy_wait=30)
    with pytest.raises(DeployError) as raised:
        found.proxy_servers(endpoint, None)
    assert raised.value.msg == (
        "blue_green needs the host's proxy: the proxy's runtime API socket does not answer (No such file or "
        "directory) (waited 30s for it). Nothing was changed."
    )
    assert clock.now == 30.0


def test_a_proxy_that_refuses_fails_at_once():
    endpoint = bg.endpoint_of(project(api=api()), settings(), None)
    found, clock = strategy(BootingProxy(refuse=True))
    with pytest.raises(DeployError, match="no permission on the proxy's runtime API socket"):
        found.proxy_servers(endpoint, None)
    assert (found.runtime.calls, clock.now) == (1, 0.0)


def test_a_negative_proxy_wait_is_refused():
    with pytest.raises(DeployError, match="blue_green.proxy_wait must be 0 or more seconds, not -1"):
        bg.endpoint_of(project(api=api()), settings(proxy_wait=-1), None)
