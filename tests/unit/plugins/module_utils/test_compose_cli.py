"""The compose CLI runner (``_compose_cli``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import pytest
from compose_recorded import compose_model, config_hashes, text

from ansible_collections.mlops.deploy.plugins.module_utils._compose_cli import (
    ComposeCli,
    compose_command,
    start_command,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import parse_hashes

# --------------------------------------------------------------- what to pull


@pytest.mark.parametrize(
    ("environ", "present", "expected"),
    [
        ({}, {"/home/u/.docker/cli-plugins/docker-compose"}, ["/home/u/.docker/cli-plugins/docker-compose"]),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/home/u/.docker/cli-plugins/docker-compose", "/etc/cfg/cli-plugins/docker-compose"},
            ["/etc/cfg/cli-plugins/docker-compose"],
        ),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/home/u/.docker/cli-plugins/docker-compose", "/usr/libexec/docker/cli-plugins/docker-compose"},
            ["/home/u/.docker/cli-plugins/docker-compose"],
        ),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/usr/libexec/docker/cli-plugins/docker-compose"},
            ["/usr/libexec/docker/cli-plugins/docker-compose"],
        ),
        ({}, set(), ["docker", "compose"]),
    ],
)
def test_compose_command_finds_the_plugin_where_docker_does(environ, present, expected):
    assert compose_command(environ, home="/home/u", is_executable=present.__contains__) == expected


# ------------------------------------------------------------ the compose CLI


def _fake_start(outputs, log):
    """``start`` for ComposeCli that answers with captured output and records the order."""

    def start(argv, env):
        key = "hash" if "--hash" in argv else "config" if "config" in argv else "version"
        log.append(("start", key))

        def wait():
            log.append(("wait", key))
            return outputs[key]

        return wait

    return start


def _captured_inspection():
    return {
        "version": (0, text("version.txt"), ""),
        "config": (0, text("config.stdout"), ""),
        "hash": (0, text("config_hash.stdout"), ""),
    }


def test_the_three_read_only_calls_run_side_by_side():
    log = []
    cli = ComposeCli(None, ["/r/compose.yml"], start=_fake_start(_captured_inspection(), log))
    cli.start_inspection()
    assert log == [("start", "version"), ("start", "config"), ("start", "hash")]
    version, model, (hashes, result) = cli.inspect()
    assert [step for step, _key in log] == ["start"] * 3 + ["wait"] * 3
    assert version == (2, 40, 3)
    assert model == compose_model()
    assert hashes == config_hashes() == parse_hashes(text("config_hash.stdout"))
    assert result["cmd"][-3:] == ["config", "--hash", "*"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": (0, "2.20.0\n", "")}, "docker compose 2.20.0 is too old"),
        ({"version": (127, "", "cannot run docker: [Errno 2] No such file")}, "docker compose v2 is not available"),
        ({"config": (15, "", "services.api must be a mapping")}, "docker compose cannot read /r/compose.yml"),
        ({"config": (0, "not json", "")}, "docker compose config did not print JSON"),
    ],
)
def test_inspection_problems_say_what_to_fix(change, message):
    cli = ComposeCli(None, ["/r/compose.yml"], start=_fake_start({**_captured_inspection(), **change}, []))
    with pytest.raises(DeployError, match=message):
        cli.inspect()


def test_hashes_compose_cannot_give_are_none_with_the_failed_call():
    outputs = {**_captured_inspection(), "hash": (1, "", "no such service")}
    _version, _model_, (hashes, result) = ComposeCli(None, ["/r/c.yml"], start=_fake_start(outputs, [])).inspect()
    assert hashes is None
    assert result["rc"] == 1
    assert result["stderr"] == "no such service"


def test_without_start_the_calls_run_one_after_the_other():
    outputs, calls = _captured_inspection(), []

    def run(argv, env):
        calls.append(argv)
        return outputs["hash" if "--hash" in argv else "config" if "config" in argv else "version"]

    version, model, (hashes, _result) = ComposeCli(run, ["/r/c.yml"], project="p").inspect()
    assert [argv[-3:] for argv in calls] == [
        ["compose", "version", "--short"],
        ["config", "--format", "json"],
        ["config", "--hash", "*"],
    ]
    assert all(argv[-7:-3] == ["-f", "/r/c.yml", "-p", "p"] for argv in calls[1:])
    assert (version, model["name"], sorted(hashes)) == ((2, 40, 3), "mlops-test-capture", ["api", "worker"])


def test_start_command_runs_a_real_process_with_the_extra_environment():
    wait = start_command(["/bin/sh", "-c", 'echo "out $EXTRA"; echo err >&2; exit 3'], {"EXTRA": "yes"})
    assert wait() == (3, "out yes\n", "err\n")


def test_start_command_reports_a_missing_program_as_a_failed_call():
    rc, out, err = start_command(["/nonexistent/docker-compose", "version"], {})()
    assert (rc, out) == (127, "")
    assert err.startswith("cannot run /nonexistent/docker-compose:")
