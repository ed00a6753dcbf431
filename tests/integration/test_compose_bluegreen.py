"""compose_deploy with strategy blue_green in a sandbox instance (a ``full`` one: its own
Docker engine and the ec2_host role's reverse proxy), through real ansible-playbook runs
over the docker connection, images from the sandbox registry (the ECR stand-in).

One endpoint goes through the life of a release, in order: first deploy (v1, on blue),
the same release again (touches nothing), check mode, v2 under constant load with a long
request in flight (switch to green, no failed request, the long request completes on
blue), a release whose health fails (never gets traffic, v2 keeps serving), a rollback to
v1 while v2 runs and back (each a switch, nothing recreated), a reboot (the live colour
comes back), then bad input (nothing changed). The requests go from this machine to the
instance's address over the sandbox network, as a client's would.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from mlops_sandbox.client import Sandbox

from .conftest import Playbook
from .deploy_support import (
    REPOSITORY,
    InstancePlays,
    RegistryClient,
    cleanup_images,
    ecr_credentials,
    ensure_repository,
)
from .loadgen import ConstantLoad, summarize

PORT = 8093
PROJECT = "bg-model"
COMPOSE = """\
name: {project}
services:
  api:
    image: {image}
    ports: ["{port}:8080"]
    environment:
      LOAD_SECONDS: "2"
    healthcheck:
      {healthcheck}
"""
HEALTHCHECK = """test: [CMD, curl, -fsS, -o, /dev/null, http://127.0.0.1:8080/health]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 60s"""
RATE = 20.0


@pytest.fixture(scope="module")
def bg(aws, aws_env):
    """Images v1, v2 and broken in the registry, one full instance, its address."""
    ecr = aws("ecr")
    ensure_repository(ecr, REPOSITORY)
    with tempfile.TemporaryDirectory(prefix="bg-pusher-") as tmp:
        pusher = RegistryClient(Path(tmp) / "docker", ecr_credentials(ecr))
        pusher.login()
        images = {}
        for variant in ("v1", "v2", "broken"):
            pusher.build(variant)
            images[variant] = pusher.uri(variant)
            pusher.push(images[variant], variant)
    sandbox = Sandbox(aws_env.get("MLOPS_SANDBOX_CONTROL_URL"))
    try:
        with sandbox.fleet("full", 1, name=f"bg-{uuid.uuid4().hex[:6]}") as found:
            host = InstancePlays(found[0]["container"], Playbook)
            # Online (its agent answers) comes before the host's proxy is up: mlops-proxy.service
            # starts after docker.service and first loads its image from the archive.
            waited = host.sh(
                "timeout 240 sh -c 'until [ -S /run/mlops-proxy/admin.sock ]; do sleep 0.5; done'", check=False
            )
            assert waited.returncode == 0, "the instance's proxy did not come up within 240 s"
            yield {"host": host, "ip": found[0]["private_ip"], "images": images}
    finally:
        cleanup_images()


def release(bg, variant, project=PROJECT, port=PORT, healthcheck=HEALTHCHECK, extra=(), blue_green=None):
    """Write the compose file of ``variant`` in the instance and deploy it blue/green."""
    path = f"/opt/bg/{project}.yml"
    text = COMPOSE.format(project=project, image=bg["images"][variant], port=port, healthcheck=healthcheck)
    bg["host"].put_file(path, text)
    args = {"src": path, "project": project, "strategy": "blue_green", "health_timeout": 120, "prune": False}
    if blue_green:
        args["blue_green"] = blue_green
    # ecr_login once: the instance's docker client keeps the token (valid 12 hours).
    done = bg["host"].deploy(args, *extra, login=not bg.get("logged_in"))
    bg["logged_in"] = True
    return done


def answer(bg, path="/predict", port=PORT, timeout=10):
    """``(status, body)`` of a GET on the endpoint, from this machine."""
    try:
        with urllib.request.urlopen(f"http://{bg['ip']}:{port}{path}", timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def containers(bg, colour=None):
    """``{name: (id, state)}`` of the endpoint's colour projects in the instance."""
    projects = [f"{PROJECT}-{c}" for c in ((colour,) if colour else ("blue", "green"))]
    found = {}
    for project in projects:
        out = (
            bg["host"]
            .sh(
                "docker ps -a --filter label=com.docker.compose.project=%s --format '{{.Names}} {{.ID}} {{.State}}'"
                % project
            )
            .stdout
        )
        for line in out.split("\n"):
            if line.strip():
                name, cid, state = line.split()
                found[name] = (cid, state)
    return found


def states(bg, colour):
    """The states of a colour's containers (``running``, ``exited``)."""
    return [found[1] for found in containers(bg, colour).values()]


def endpoint_file(bg, project=PROJECT):
    done = bg["host"].sh(f"cat /etc/mlops-proxy/conf.d/{project}.cfg", check=False)
    return done.stdout if done.returncode == 0 else None


def live_colour(bg):
    first = endpoint_file(bg).split("\n", 1)[0]
    return json.loads(first.split(": ", 1)[1])["live"]


def test_first_deploy_opens_the_endpoint_on_blue(bg):
    done = release(bg, "v1")
    result = done["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert result["blue_green"]["live"] == "blue"
    assert result["blue_green"]["colour_ports"] == {"blue": PORT + 10000, "green": PORT + 20000}
    assert answer(bg) == (200, {"status": "ok", "version": "v1", "path": "/predict"})
    assert live_colour(bg) == "blue"
    assert states(bg, "blue") == ["running"]


def test_same_release_again_touches_nothing(bg):
    before = containers(bg)
    file_before = endpoint_file(bg)
    result = release(bg, "v1")["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["blue_green"]["switch"] == []
    assert containers(bg) == before
    assert endpoint_file(bg) == file_before


def test_check_mode_says_which_colour_and_touches_nothing(bg):
    before = containers(bg)
    file_before = endpoint_file(bg)
    result = release(bg, "v2", extra=["--check"])["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert result["blue_green"]["would_switch"] == {"from": "blue", "to": "green"}
    assert containers(bg) == before
    assert endpoint_file(bg) == file_before
    assert answer(bg)[1]["version"] == "v1"


def test_release_under_load_switches_with_no_failed_request_and_drains(bg):
    slow = {}

    def long_request():
        # Sent once green runs (it then loads its model for 2 s, must be healthy and pass
        # the probe before the switch): in flight on blue across the switch.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "running" not in states(bg, "green"):
            time.sleep(0.2)
        slow["sent"] = time.monotonic()
        slow["answer"] = answer(bg, "/slow?seconds=20", timeout=90)
        slow["at"] = time.monotonic()

    with ConstantLoad(f"http://{bg['ip']}:{PORT}/predict", rate=RATE) as load:
        time.sleep(1)
        worker = threading.Thread(target=long_request)
        worker.start()
        done = release(bg, "v2", blue_green={"drain_timeout": 60})
        ended = time.monotonic()
        worker.join(90)
        time.sleep(1)
    result = done["result"]
    assert not result.get("failed"), result.get("msg")
    info = result["blue_green"]
    assert (info["previous"], info["live"], info["switched"]) == ("blue", "green", True)
    summary = summarize(load.samples)
    assert summary.failed == 0, summary.errors
    versions = [s.version for s in load.samples if s.ok]
    assert versions[0] == "v1"
    assert versions[-1] == "v2"
    # The long request was in flight on blue at the switch: it completed there, and blue
    # was stopped only after it (the drain waited for it).
    assert slow["answer"][0] == 200
    assert slow["answer"][1]["version"] == "v1"
    assert slow["at"] <= ended
    assert info["drained"] is True
    assert info["in_flight_when_stopped"] == 0
    assert info["drain_waited"] > 1.0, (info, done["seconds"], slow, ended)
    assert states(bg, "blue") == ["exited"]
    assert live_colour(bg) == "green"


def test_unhealthy_release_never_gets_traffic_and_the_live_one_keeps_serving(bg):
    green_before = containers(bg, "green")
    with ConstantLoad(f"http://{bg['ip']}:{PORT}/predict", rate=RATE) as load:
        done = release(bg, "broken")
    result = done["result"]
    assert result.get("failed") is True
    assert "never received traffic" in result["msg"]
    summary = summarize(load.samples)
    assert summary.failed == 0, summary.errors
    assert {s.version for s in load.samples if s.ok} == {"v2"}
    assert live_colour(bg) == "green"
    assert containers(bg, "green") == green_before
    assert containers(bg, "blue") == {}  # the failed colour was removed
    assert answer(bg)[1]["version"] == "v2"


def test_rollback_while_the_old_one_runs_is_a_switch_back(bg):
    result = release(bg, "v1", blue_green={"keep_old": True})["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["blue_green"]["live"] == "blue"
    assert answer(bg)[1]["version"] == "v1"
    green = containers(bg, "green")
    assert [found[1] for found in green.values()] == ["running"]  # kept: deploying v2 again is a switch
    result = release(bg, "v2", blue_green={"keep_old": True})["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["blue_green"]["switch"][-1]["to"] == "green"
    assert containers(bg, "green") == green  # nothing recreated, the same running container
    assert result["actions"]["recreated"] == []
    assert result["actions"]["created"] == []
    assert answer(bg)[1]["version"] == "v2"


def test_reboot_keeps_the_live_colour(bg):
    subprocess.run(["docker", "restart", bg["host"].container], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 120
    last = None
    while time.monotonic() < deadline:
        try:
            last = answer(bg, timeout=2)
            if last[0] == 200:
                break
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    assert isinstance(last, tuple), last
    assert last[0] == 200, last
    # Both colours run again (keep_old); the proxy sends to the one its file says.
    assert last[1]["version"] == "v2"
    assert live_colour(bg) == "green"


@pytest.mark.parametrize(
    ("case", "project", "healthcheck", "settings", "message"),
    [
        ("port taken", "bg-taken", HEALTHCHECK, {"port": 9555}, "port 9555 is in use by another program"),
        ("negative drain", "bg-drain", HEALTHCHECK, {"drain_timeout": -1}, "drain_timeout must be 0 or more"),
        ("no health check", "bg-nohealth", "disable: true", {}, "blue_green needs a healthcheck on service api"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(bg, case, project, healthcheck, settings, message):
    if case == "port taken":
        bg["host"].sh("(python3 -m http.server 9555 >/dev/null 2>&1 &) ; sleep 1")
    before = containers(bg)
    port = PORT + 1
    result = release(bg, "v1", project, port, healthcheck, blue_green=settings)["result"]
    assert result.get("failed") is True
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert endpoint_file(bg, project) is None
    leftovers = bg["host"].sh(
        f"docker ps -aq --filter label=com.docker.compose.project={project}-blue "
        f"--filter label=com.docker.compose.project={project}"
    )
    assert leftovers.stdout.strip() == ""
    assert containers(bg) == before
    assert answer(bg)[1]["version"] == "v2"
