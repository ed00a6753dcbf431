"""The steps of a compose deploy (``_compose_deploy.Deployment``, ``_compose_strategy``),
each fed with what docker compose 2.40 and the Docker engine answered during the capture
(tests/unit/fixtures/compose): a real ComposeCli whose commands answer with captured
output, and an engine that answers with captured documents."""

from __future__ import annotations

import pytest
from compose_recorded import (
    REPO,
    RecordedCompose,
    RecordedEngine,
    digest_ref,
    image_id,
    snapshot,
)
from fake_clock import FakeClock

from ansible_collections.mlops.deploy.plugins.module_utils._compose_cli import ComposeCli
from ansible_collections.mlops.deploy.plugins.module_utils._compose_deploy import Deployment
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_strategy import (
    STRATEGIES,
    Recreate,
    Strategy,
    strategy_for,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import DeployOptions, Health
from ansible_collections.mlops.deploy.plugins.modules.compose_deploy import argument_spec

CAPTURE = f"{REPO}:capture"
V1 = f"{REPO}:v1"


def digest(tag: str) -> str:
    return digest_ref(tag).partition("@")[2]


def options(**changes) -> DeployOptions:
    """The options of a task that sets only ``changes`` (the module's own defaults)."""
    params = {name: spec.get("default") for name, spec in argument_spec().items()}
    params.update(changes)
    return DeployOptions.from_params(params)


def deployment(engine: RecordedEngine, compose: RecordedCompose, check_mode=False, **changes) -> Deployment:
    cli = ComposeCli(compose, ["/r/compose.yml"], project="mlops-test-capture")
    clock = FakeClock()
    return Deployment(cli, engine, options(**changes), check_mode=check_mode, clock=clock, sleep=clock.sleep)


# --------------------------------------------------------------------------- load


def test_load_reads_the_project_and_its_targets():
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), RecordedCompose())
    project = deploy.load()
    assert (project.name, project.targets) == ("mlops-test-capture", ["api", "worker"])
    assert project.refs == {"api": CAPTURE, "worker": V1}
    assert project.expected == {"api": 1, "worker": 1}
    assert sorted(project.hashes) == ["api", "worker"]


def test_load_refuses_services_the_file_does_not_define():
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), RecordedCompose(), services=["api", "db"])
    with pytest.raises(DeployError, match="service\\(s\\) db not in the compose file; it defines: api, worker"):
        deploy.load()


def test_previous_digests_are_those_of_the_running_images():
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), RecordedCompose())
    assert deploy.previous_digests(snapshot("inspect_v1_healthy"), ["api", "worker"]) == {
        "api": digest("v1"),
        "worker": digest("v1"),
    }


# --------------------------------------------------------------------------- pull


def test_pull_fetches_the_images_whose_registry_digest_is_new_and_says_so():
    engine = RecordedEngine(["inspect_v1_healthy"], capture="v1", registry={CAPTURE: digest("v2"), V1: digest("v1")})
    compose = RecordedCompose(pull="pull_new_digest")
    deploy = deployment(engine, compose)
    real_call = deploy.compose.call

    def pull_then_retag(argv):
        result = real_call(argv)
        engine.docs = RecordedEngine([], capture="v2").docs  # what the pull did on the engine
        return result

    deploy.compose.call = pull_then_retag
    images = deploy.pull({"api": CAPTURE, "worker": V1})
    # Only the image whose registry digest is not local is pulled; the engine is asked again after.
    assert compose.commands() == [["pull", "--ignore-buildable", "api"]]
    assert deploy.commands == [compose.argvs[-1]]
    assert images["api"]["id"] == image_id("v2")
    assert deploy.actions["pulled"] == [{"service": "api", "image": CAPTURE, "from": digest("v1"), "to": digest("v2")}]


def test_a_failed_pull_stops_the_deploy_naming_the_service():
    engine = RecordedEngine(["inspect_v1_healthy"], registry={V1: digest("v1")})
    deploy = deployment(engine, RecordedCompose(pull="pull_missing"))
    with pytest.raises(DeployError) as err:
        deploy.pull({"api": f"{REPO}:never-pushed", "worker": V1})
    assert err.value.msg.startswith("pull failed, nothing was restarted: api: manifest for ")
    assert err.value.result["rc"] == 1
    assert err.value.result["cmd"][-2:] == ["--ignore-buildable", "api"]


def test_an_image_already_local_is_not_pulled():
    engine = RecordedEngine(["inspect_v1_healthy"], registry={CAPTURE: digest("v1"), V1: digest("v1")})
    compose = RecordedCompose()
    images = deployment(engine, compose).pull({"api": CAPTURE, "worker": V1})
    assert compose.commands() == []
    assert images["api"]["digest"] == digest("v1")


# --------------------------------------------------------------------------- plan (check mode)


def test_check_mode_plans_a_recreate_for_a_new_registry_digest_and_runs_nothing():
    engine = RecordedEngine(["inspect_v1_healthy"], registry={CAPTURE: digest("v2"), V1: digest("v1")})
    compose = RecordedCompose()
    result = deployment(engine, compose, check_mode=True).run()
    assert compose.commands() == []
    assert result["changed"] is True
    assert result["plan"]["api"] == {"action": "recreate", "reason": "new image in the registry (%s)" % digest("v2")}
    assert result["plan"]["worker"] == {"action": "keep", "reason": ""}
    assert result["actions"]["recreated"] == [{"service": "api", "reason": result["plan"]["api"]["reason"]}]
    assert result["diff"] == {
        "before": {"api": digest("v1"), "worker": digest("v1")},
        "after": {"api": digest("v2"), "worker": digest("v1")},
    }


# --------------------------------------------------------------------------- up


def test_an_unchanged_release_runs_no_up():
    engine = RecordedEngine(["inspect_v1_healthy"], registry={CAPTURE: digest("v1"), V1: digest("v1")})
    compose = RecordedCompose()
    result = deployment(engine, compose, prune=False).run()
    assert compose.commands() == []
    assert (result["changed"], result["up_reasons"], result["health_waited"]) == (False, [], 0.0)


def test_up_reasons_name_what_differs():
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), RecordedCompose())
    project = deploy.load()
    before = snapshot("inspect_v1_healthy")
    images = deploy.local_images(project.refs)
    assert deploy.up_reasons(project, before, images, []) == []
    assert deploy.up_reasons(project, before, images, ["old"]) == ["orphan services to remove: old"]


def test_up_recreates_the_targets_and_records_what_changed():
    engine = RecordedEngine(["inspect_v2_starting"])
    compose = RecordedCompose(up="up_recreate")
    deploy = deployment(engine, compose)
    project = deploy.load()
    before = snapshot("inspect_v1_healthy")
    up = deploy.up(project, before)
    assert up.ok
    assert compose.commands() == [["up", "--detach", "--pull", "never", "--no-build", "api", "worker"]]
    events = deploy.record_changes(before, up.after, project.targets, up.events)
    assert deploy.actions["recreated"] == [{"service": "api"}]
    assert events["recreated"] == ["mlops-test-capture-api-1"]


def test_a_failed_up_says_the_daemons_reason():
    engine = RecordedEngine(["inspect_v1_healthy"])
    deploy = deployment(engine, RecordedCompose(up="up_port_conflict"))
    up = deploy.up(deploy.load(), snapshot("inspect_v1_healthy"))
    assert not up.ok
    assert up.failure().startswith("docker compose up failed: Error response from daemon: driver failed")
    assert "address already in use" in up.failure()


# --------------------------------------------------------------------------- health and probe


def test_wait_healthy_polls_the_engine_until_healthy():
    engine = RecordedEngine(["inspect_v2_starting", "inspect_v2_starting", "inspect_v1_healthy"])
    deploy = deployment(engine, RecordedCompose())
    health = deploy.wait_healthy("mlops-test-capture", ["api", "worker"], {"api": 1, "worker": 1})
    assert health == Health("ok", [], health.waited)
    assert engine.looks == 3
    assert health.waited > 0


def test_a_health_failure_says_what_and_where():
    deploy = deployment(RecordedEngine(["inspect_broken_unhealthy"]), RecordedCompose(), health_timeout=60)
    project = deploy.load()
    health = deploy.wait_healthy(project.name, project.targets, project.expected)
    assert health.verdict == "fail"
    assert deploy.health_failure(project, health) == (
        "deploy of mlops-test-capture unhealthy: mlops-test-capture-api-1 (api) is unhealthy: its healthcheck failed"
    )
    timeout = Health("timeout", ["mlops-test-capture-api-1: starting"], 60.0)
    assert deploy.health_failure(project, timeout).startswith("deploy of mlops-test-capture not healthy within 60s")


def test_probe_failure_names_the_url_the_statuses_and_the_last_answer():
    deploy = deployment(
        RecordedEngine([]), RecordedCompose(), probe_url="http://127.0.0.1:9/health", probe_status=[200, 204]
    )
    assert deploy.probe_failure("HTTP 503") == (
        "probe http://127.0.0.1:9/health did not answer 200/204 within 60s (last: HTTP 503)"
    )


# --------------------------------------------------------------------------- rollback


def test_rollback_pins_the_previous_image_and_returns_what_it_did():
    # v2 ran (healthy after its own deploy), the broken image was deployed over it and is unhealthy.
    engine = RecordedEngine(["inspect_v2_starting", "inspect_v1_healthy"], capture="broken")
    compose = RecordedCompose(up="up_recreate")
    deploy = deployment(engine, compose)
    project = deploy.load()
    outcome = deploy.rollback(project, snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy"), "boom")
    assert compose.commands() == [["up", "--detach", "--pull", "never", "--no-build", "api"]]
    assert compose.override == {"services": {"api": {"image": digest_ref("v2")}}}
    assert outcome.healthy is True
    assert outcome.msg.startswith("boom; rolled back api to %s, healthy again.\n" % digest_ref("v2"))
    assert "--- last 2 log lines of mlops-test-capture-api-1:\nTraceback" in outcome.msg
    assert outcome.result["rollback_healthy"] is True
    assert deploy.actions["rolled_back"] == [{"service": "api", "from": image_id("broken"), "to": digest_ref("v2")}]
    error = outcome.error()
    assert (error.msg, error.result) == (outcome.msg, outcome.result)


def test_rollback_removes_a_service_that_did_not_run_before():
    engine = RecordedEngine(["inspect_v1_healthy"])
    compose = RecordedCompose(rm=[None])
    deploy = deployment(engine, compose)
    before = {"worker": snapshot("inspect_v1_healthy")["worker"]}
    outcome = deploy.rollback(deploy.load(), before, snapshot("inspect_v1_healthy"), "boom")
    assert compose.commands() == [["rm", "--stop", "--force", "api"]]
    assert "removed the service(s) api, which did not run before" in outcome.msg


@pytest.mark.parametrize(
    ("rollback", "before", "message"),
    [
        (False, "inspect_v2_starting", "boom; rollback=false, the new containers were left as they are"),
        (
            True,
            "inspect_broken_unhealthy",
            "boom; nothing was changed by this deploy, so there is nothing to roll back to",
        ),
    ],
)
def test_a_rollback_not_done_says_why(rollback, before, message):
    compose = RecordedCompose()
    deploy = deployment(RecordedEngine(["inspect_broken_unhealthy"], capture="broken"), compose, rollback=rollback)
    outcome = deploy.rollback(deploy.load(), snapshot(before), snapshot("inspect_broken_unhealthy"), "boom")
    assert outcome.msg == message
    assert outcome.healthy is None
    assert compose.commands() == []
    assert set(outcome.result) == {"logs", "rollback"}


def test_a_rollback_that_fails_too_says_so_with_the_command():
    compose = RecordedCompose(up="up_port_conflict")
    deploy = deployment(RecordedEngine(["inspect_v2_starting"], capture="broken"), compose)
    outcome = deploy.rollback(
        deploy.load(), snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy"), "boom"
    )
    assert outcome.msg.startswith("boom; the rollback to api to %s failed too: Error response" % digest_ref("v2"))
    assert outcome.result["rc"] == 1
    assert deploy.actions["rolled_back"] == []


def test_a_failed_deploy_raises_the_rollbacks_outcome_with_the_whole_result():
    engine = RecordedEngine(
        ["inspect_v2_starting", "inspect_broken_unhealthy", "inspect_broken_unhealthy", "inspect_v1_healthy"],
        capture="broken",
        registry={CAPTURE: digest("broken"), V1: digest("v1")},
    )
    compose = RecordedCompose(up=["up_broken", "up_recreate"])
    with pytest.raises(DeployError) as err:
        deployment(engine, compose, prune=False).run()
    assert err.value.msg.startswith("deploy of mlops-test-capture unhealthy: mlops-test-capture-api-1 (api) is")
    assert "; rolled back api to %s, healthy again." % digest_ref("v2") in err.value.msg
    result = err.value.result
    assert result["changed"] is True
    assert result["previous_digests"]["api"] == digest("v2")
    assert [argv[argv.index("up") :][:1] for argv in result["commands"]] == [["up"], ["up"]]
    assert result["actions"]["recreated"] == [{"service": "api"}]


# --------------------------------------------------------------------------- after success


def test_orphans_are_removed_once_healthy():
    compose = RecordedCompose(up="up_remove_orphans")
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), compose)
    deploy.remove_orphans(["api"], ["worker"])
    assert compose.commands() == [["up", "--detach", "--pull", "never", "--no-build", "--remove-orphans", "api"]]
    assert deploy.actions["removed"] == [{"service": "worker", "reason": "orphan"}]


def test_prune_removes_old_images_beyond_keep_images_but_not_what_runs():
    engine = RecordedEngine(["inspect_v1_healthy"], capture="v1")
    deploy = deployment(engine, RecordedCompose(), keep_images=1)
    deploy.prune({"api": CAPTURE})
    pruned = {item["image"] for item in deploy.actions["pruned"]}
    assert image_id("v1") not in pruned  # in use
    assert pruned == {image_id("v2"), image_id("broken")}
    assert set(engine.removed) == {ref for item in deploy.actions["pruned"] for ref in item["refs"]}


def test_check_mode_prunes_nothing_but_says_what_it_would():
    engine = RecordedEngine(["inspect_v1_healthy"], capture="v1")
    deploy = deployment(engine, RecordedCompose(), check_mode=True, keep_images=1)
    deploy.prune({"api": CAPTURE})
    assert engine.removed == []
    assert {item["image"] for item in deploy.actions["pruned"]} == {image_id("v2"), image_id("broken")}


def test_the_result_describes_each_service():
    deploy = deployment(RecordedEngine(["inspect_v1_healthy"]), RecordedCompose())
    project = deploy.load()
    before = snapshot("inspect_v1_healthy")
    result = deploy.result({"previous_digests": {}}, before, project, grouped=before)
    api = next(s for s in result["services"] if s["name"] == "api")
    assert (api["image"], api["digest"], api["health"], api["state"]) == (CAPTURE, digest("v1"), "healthy", "running")
    worker = next(s for s in result["services"] if s["name"] == "worker")
    assert worker["health"] == "none"
    assert result["diff"]["after"] == {"api": digest("v1"), "worker": digest("v1")}


# --------------------------------------------------------------------------- strategies


def test_recreate_is_the_default_and_the_only_strategy_so_far():
    assert {"recreate": Recreate} == STRATEGIES
    assert isinstance(strategy_for("recreate"), Recreate)
    deploy = deployment(RecordedEngine([]), RecordedCompose())
    assert isinstance(deploy.strategy, Recreate)


def test_a_strategy_is_what_up_and_rollback_go_through():
    class Recording(Strategy):
        name = "recording"

        def __init__(self):
            self.calls = []

        def up(self, deployment, project, before):
            self.calls.append(("up", project.targets))
            return Recreate().up(deployment, project, before)

        def rollback(self, deployment, project, before, after, reason, logs):
            self.calls.append(("rollback", reason, sorted(logs)))
            return Recreate().rollback(deployment, project, before, after, reason, logs)

    engine = RecordedEngine(
        ["inspect_v2_starting", "inspect_broken_unhealthy", "inspect_broken_unhealthy", "inspect_v1_healthy"],
        capture="broken",
        registry={CAPTURE: digest("broken"), V1: digest("v1")},
    )
    strategy = Recording()
    cli = ComposeCli(RecordedCompose(up=["up_broken", "up_recreate"]), ["/r/compose.yml"], project="mlops-test-capture")
    clock = FakeClock()
    with pytest.raises(DeployError):
        Deployment(cli, engine, options(prune=False), clock=clock, sleep=clock.sleep, strategy=strategy).run()
    assert [call[0] for call in strategy.calls] == ["up", "rollback"]
    assert strategy.calls[1][2] == ["mlops-test-capture-api-1", "mlops-test-capture-worker-1"]
