"""The failure report: recorded results of failed releases in, the short block out.

Each fixture of tests/unit/fixtures/failure_report/ is what the release's tasks
registered in one real failed run against the sandbox (cut.py says how they are cut;
each file says how its run was made). The block is asserted as a person reads it:
the reason first, the instance-side module's message, the container's own log lines
each on a line of its own, what was rolled back, who never received it, a bound on
its length and on every line's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _failure_report as fr

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "failure_report"
# What Ansible's own failure output is made of, and none of the block may hold.
NOISE = ("^ column", "Origin: ", "PLAY RECAP", '{"changed"', "fatal: [", "[ERROR]", "TASK [")


def recorded(kind: str) -> dict:
    return json.loads((FIXTURES / f"{kind}.json").read_text())


def block(kind: str) -> list[str]:
    run = recorded(kind)
    if "rollout" in run:
        return fr.rollout_lines(run["release"], run["rollout"], run.get("rollback"), run.get("back_to"))
    if "tests" in run:
        return fr.tests_lines(run["release"], run["tests"])
    return fr.lock_lines(run["release"], run["lock"])


def assert_readable(lines: list[str], most: int) -> None:
    assert 3 <= len(lines) <= most, "\n".join(lines)
    assert max(len(line) for line in lines) <= fr.LINE_MAX, "\n".join(lines)
    for line in lines:
        assert not any(mark in line for mark in NOISE), line
        assert "\n" not in line
    assert lines[-1] == fr.FOOTER


KINDS = [
    "unhealthy",
    "three_unhealthy",
    "tampered",
    "pull_failed",
    "ecr_login_failed",
    "offline",
    "timed_out",
    "agent_lost",
    "lock_held",
    "tests_failed",
    "tests_404",
    "stress_failed",
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_recorded_failure_reads_in_a_few_short_lines(kind):
    assert_readable(block(kind), 15)


def test_unhealthy_container_gives_its_reason_and_its_own_log_lines():
    lines = block("unhealthy")
    assert (
        lines[0]
        == "Release r-e2b0d0c3a3a8 of titanic failed in local at batch 1/3 (the canary): 1 of 1 instance failed."
    )
    assert lines[1] == (
        "  i-4e03b71bdc5e0d7ea, deploy of titanic: deploy of titanic unhealthy: titanic-api-1 (api) is unhealthy: "
        "its healthcheck failed; rolled back api to titanic-api@sha256:d6effcd0ae2a…, healthy again."
    )
    assert lines[2] == "    last log lines of titanic-api-1:"
    # The container's own line, as it printed it, on a line of its own.
    assert (
        lines[3] == """      {"t": 1796287935.142, "error": "model /app/model/model.json did not load: 'features'"}"""
    )
    assert lines[-3] == "Rolled back: i-4e03b71bdc5e0d7ea back on r-5b6d44e50f7b."
    assert lines[-2] == "Never received it, unchanged: i-563cf245865face79, i-a9dc36be7a87ba065 (batches 2-3)."


def test_several_failed_instances_with_the_same_reason_are_told_once():
    lines = block("three_unhealthy")
    assert lines[0] == "Release r-3aaaea592c1e of titanic failed in local at batch 1/1: 3 of 3 instances failed."
    assert [line for line in lines if "the same as" in line] == [
        "  i-563cf245865face79, deploy of titanic: the same as i-4e03b71bdc5e0d7ea",
        "  i-a9dc36be7a87ba065, deploy of titanic: the same as i-4e03b71bdc5e0d7ea",
    ]
    assert sum("did not load" in line for line in lines) == 1
    assert lines[-2].startswith("Rolled back: i-4e03b71bdc5e0d7ea, i-563cf245865face79, i-a9dc36be7a87ba065 back on r-")


def test_a_fleet_wide_failure_is_capped_with_and_n_more():
    run = recorded("three_unhealthy")
    template = run["rollout"]["instances"][0]
    fleet = []
    for number in range(40):
        state = copy.deepcopy(template)
        state["instance_id"] = "i-%017x" % number
        fleet.append(state)
    rollout = dict(run["rollout"], instances=fleet)
    rollout["batches"] = [dict(run["rollout"]["batches"][0], instance_ids=[s["instance_id"] for s in fleet])]
    lines = fr.rollout_lines(run["release"], rollout, run["rollback"], run["back_to"])
    assert_readable(lines, 15)
    assert lines[0].endswith(": 40 of 40 instances failed.")
    more = [line for line in lines if "more failed" in line]
    assert more == [
        "  and 37 more failed the same way: %s and 29 more" % ", ".join("i-%017x" % n for n in range(3, 11))
    ]


def test_a_fleet_with_different_reasons_says_so():
    run = recorded("three_unhealthy")
    states = run["rollout"]["instances"] + copy.deepcopy(recorded("pull_failed")["rollout"]["instances"][:1])
    states[-1]["instance_id"] = "i-0000000000000000f"
    rollout = dict(run["rollout"], instances=states)
    lines = fr.rollout_lines(run["release"], rollout, run["rollback"], run["back_to"])
    assert lines[-3] == "  and 1 more failed: i-0000000000000000f"


def test_tampered_bundle_names_the_changed_file_and_that_nothing_was_rolled_back():
    lines = block("tampered")
    assert lines[1] == (
        "  i-4e03b71bdc5e0d7ea, bundle check: bundle refused: <bundle>: 1 changed (sha256 differs from the manifest): "
        "compose/titanic.yml"
    )
    assert lines[2].startswith("Not rolled back: there is no earlier successful release to go back to;")


def test_image_that_cannot_be_pulled():
    lines = block("pull_failed")
    assert lines[1] == (
        "  i-4e03b71bdc5e0d7ea, deploy of titanic: pull failed, nothing was restarted: api: manifest for "
        "titanic-api@sha256:93ee8fa39d0e… not found: manifest unknown: manifest unknown"
    )
    assert lines[2] == "Rolled back: i-4e03b71bdc5e0d7ea back on r-5b6d44e50f7b."


def test_ecr_login_failure_is_the_step_that_failed():
    lines = block("ecr_login_failed")
    assert lines[1].startswith(
        "  i-2d8fc5960bad77a87, ECR login: registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com is unreachable"
    )
    assert lines[1].endswith("…")  # the rest of the message is in the result (-v)


def test_offline_instance_at_preflight_nothing_was_sent():
    lines = block("offline")
    assert lines[0] == "Release r-5b6d44e50f7b of titanic was not sent in local:"
    assert "i-a9dc36be7a87ba065 (SSM agent lost its connection (PingStatus ConnectionLost))" in lines[1]
    assert "  Nothing was sent." in lines
    # The role's own option, not the module's.
    assert "  Set release_skip_offline=true to run on the others and report these as skipped." in lines


def test_offline_instances_listed_one_a_line_when_the_result_names_them():
    run = recorded("offline")
    rollout = dict(
        run["rollout"],
        offline=[
            {
                "instance_id": "i-a9dc36be7a87ba065",
                "ping_status": "ConnectionLost",
                "reason": "SSM agent lost its connection",
            },
            {"instance_id": "i-0b", "ping_status": None, "reason": "not managed by SSM"},
        ],
    )
    lines = fr.rollout_lines(run["release"], rollout)
    assert lines[1:4] == [
        "  2 instances cannot receive commands; nothing was sent:",
        "  i-a9dc36be7a87ba065: SSM agent lost its connection",
        "  i-0b: not managed by SSM",
    ]
    # What to do about it still follows, with the role's option.
    assert "  Set release_skip_offline=true to run on the others and report these as skipped." in lines
    assert lines[-1] == fr.FOOTER


def test_a_failed_rollout_that_skipped_offline_instances_is_still_a_failure():
    # skip_offline: the instances left out are in skipped_instances (not "skipped",
    # which Ansible reads as a skipped task and then ignores failed_when).
    run = recorded("unhealthy")
    offline = {"instance_id": "i-0off", "ping_status": "ConnectionLost", "reason": "lost", "outcome": "skipped"}
    rollout = dict(run["rollout"], skipped_instances=[offline])
    assert fr.rollout_failed(rollout)
    lines = fr.rollout_lines(run["release"], rollout, run.get("rollback"), run.get("back_to"))
    assert "Skipped (offline): i-0off." in lines
    assert not fr.rollout_failed({"changed": False, "skipped": True, "skip_reason": "Conditional result was False"})


def test_timed_out_batch_says_where_the_instance_had_got_to():
    lines = block("timed_out")
    assert lines[0] == (
        "Release r-fd242a46dfa9 of titanic timed out in local at batch 1/3 (the canary) after 25s; "
        "its command was cancelled."
    )
    assert lines[1] == (
        "  i-4e03b71bdc5e0d7ea: still Pending when the rollout's timeout (25s) ended; its command was cancelled"
    )


def test_killed_instance_and_the_rollback_that_could_not_reach_it():
    lines = block("agent_lost")
    assert lines[1].startswith("  i-4e03b71bdc5e0d7ea: still InProgress when the rollout's timeout (45s) ended")
    assert lines[2] == "Putting i-4e03b71bdc5e0d7ea back on r-5b6d44e50f7b FAILED too:"
    assert lines[3] == (
        "  1 of 1 target instances cannot receive commands: i-4e03b71bdc5e0d7ea "
        "(SSM agent lost its connection (PingStatus ConnectionLost))."
    )


def test_instance_that_lost_its_agent_is_named_with_the_followers_reason():
    """Issue 15's follower ends an instance whose agent is lost (or that stopped) as a
    failure with a ``reason``; the recorded killed canary, as that follower returns it."""
    run = recorded("agent_lost")
    rollout = copy.deepcopy(run["rollout"])
    rollout["timed_out"] = False
    canary = rollout["instances"][0]
    del canary["status_at_timeout"]
    canary.update(
        outcome="failed",
        status="Cancelled",
        reason="its SSM agent stopped answering (PingStatus ConnectionLost, EC2 state running) while the deploy ran; "
        "its invocation was cancelled",
    )
    lines = fr.rollout_lines(run["release"], rollout, run["rollback"], run["back_to"])
    assert (
        lines[0]
        == "Release r-fd242a46dfa9 of titanic failed in local at batch 1/3 (the canary): 1 of 1 instance failed."
    )
    assert lines[1] == "  i-4e03b71bdc5e0d7ea: " + canary["reason"]


def test_instance_the_host_watcher_found_lost_reads_reason_first():
    """Issue 15's host watcher marks the instance ``lost`` with a ``lost_reason``; the
    rollback skipped it (offline), the others are back: both said on one line."""
    run = recorded("agent_lost")
    rollout = copy.deepcopy(run["rollout"])
    rollout["timed_out"] = False
    canary = rollout["instances"][0]
    del canary["status_at_timeout"]
    canary.update(
        outcome="lost", status="Cancelled", lost_reason="lost its SSM agent (ConnectionLost since 2026-12-03T12:00:00Z)"
    )
    other = dict(canary, instance_id="i-0aaaaaaaaaaaaaaaa", outcome="success", lost_reason=None)
    rollout["instances"].append(other)
    rollback = {"summary": {}, "instances": [], "skipped_instances": [{"instance_id": canary["instance_id"]}]}
    lines = fr.rollout_lines(run["release"], rollout, rollback, run["back_to"])
    assert lines[1] == (
        "  i-4e03b71bdc5e0d7ea: lost its SSM agent (ConnectionLost since 2026-12-03T12:00:00Z); "
        "its invocation was cancelled"
    )
    assert (
        "Rolled back: i-0aaaaaaaaaaaaaaaa back on %s, except i-4e03b71bdc5e0d7ea, which cannot receive commands "
        "(offline)." % run["back_to"]
    ) in lines


def test_lock_held_by_another_run_names_the_holder_and_the_role_options():
    assert block("lock_held") == [
        "Release r-5b6d44e50f7b of titanic was not deployed to local: another run holds its deploy lock.",
        "  /mlops/local/deploy-lock is held by alice (run yk43qsr63czx, release r-5b6d44e50f7b) since "
        "2026-12-03T08:53:48Z (15s ago), expires at 2026-12-03T09:53:48Z.",
        "  Let that run finish, or queue behind it with release_lock_wait=<seconds>;",
        "  if it died, break the lock with release_force_unlock=true.",
        fr.FOOTER,
    ]


def test_functional_test_failure_gives_each_url_what_came_back_and_what_was_expected():
    lines = block("tests_failed")
    assert lines[0] == "The release of titanic is deployed in local, but its tests failed:"
    assert lines[1] == (
        '  titanic, functional test: 3 of 3 URLs failed (expected status 200 with JSON containing {"prediction": 1}):'
    )
    assert lines[2] == (
        "    POST http://10.67.0.6:8080/predict: the answer does not match expect_json: $.prediction is 0, expected 1"
    )
    assert len([line for line in lines if line.startswith("    POST http://")]) == 3


def test_functional_test_of_a_missing_route():
    assert "    POST http://10.67.0.6:8080/nope: answered 404, expected 200" in block("tests_404")


def test_stress_test_failure_gives_the_threshold_and_the_figures():
    assert block("stress_failed")[1] == (
        "  titanic, stress test: p95 latency 101.1 ms is over max_p95_ms 1.0 "
        "(100 requests at 10: 0 failed, p50 17.8 ms, p95 101.1 ms)"
    )


# ------------------------------------------------------- the pieces, on recorded text


def test_summary_line_as_the_json_callback_prints_it_and_as_is():
    inside = 'ok: [localhost] => {"changed": false, "msg": "MLOPS_DEPLOY_SUMMARY {\\"env\\": \\"local\\", \\"n\\": 1}"}'
    assert fr.parse_summary(inside) == {"env": "local", "n": 1}
    assert fr.parse_summary('    MLOPS_DEPLOY_SUMMARY {"env": "local", "failures": []}') == {
        "env": "local",
        "failures": [],
    }
    assert fr.parse_summary("MLOPS_DEPLOY_SUMMARY {broken") is None
    assert fr.parse_summary("TASK [Summary for the controller (one line of JSON)] ***") is None


def test_a_summary_with_failures_is_read_before_the_output():
    run = recorded("unhealthy")
    state = copy.deepcopy(run["rollout"]["instances"][0])
    state["output_lines"] = [
        'MLOPS_DEPLOY_SUMMARY {"env": "local", "release": "r-1", "endpoints": {}, "failures": [{"step": "deploy", '
        '"endpoint": "titanic", "msg": "deploy of titanic unhealthy: it is\\n--- last 1 log lines of titanic-api-1:\\n'
        'x", "logs": {"titanic-api-1": ["line one", "line two"]}}]}'
    ]
    assert fr.instance_failures(state) == [
        {
            "step": "deploy",
            "endpoint": "titanic",
            "reason": "deploy of titanic unhealthy: it is",
            "logs": [("titanic-api-1", ["line one", "line two"])],
        }
    ]


def test_compose_deploy_message_splits_into_reason_and_logs():
    msg = "deploy of a unhealthy: x; rolled back.\n--- last 2 log lines of a-1:\none\ntwo\n"
    msg += "--- last 1 log lines of b-1:\nthree"
    assert fr.split_message(msg) == (
        "deploy of a unhealthy: x; rolled back.",
        [("a-1", ["one", "two"]), ("b-1", ["three"])],
    )
    assert fr.split_message("just this") == ("just this", [])


def test_story_from_a_recorded_output_tail():
    tail = recorded("pull_failed")["rollout"]["instances"][0]["stdout_tail"]
    story = fr.story_from_output(tail)
    assert story["step"] == "deploy"
    assert story["endpoint"] == "titanic"
    assert story["msg"].startswith("pull failed, nothing was restarted: api: manifest for ")


def test_short_cuts_digests_hosts_and_length():
    ref = "123456789012.dkr.ecr.eu-west-1.amazonaws.com:5470/titanic-api@sha256:" + "ab" * 32
    assert fr.short("  to %s, ok" % ref) == "  to titanic-api@sha256:abababababab…, ok"
    assert fr.short("x" * 300) == "x" * (fr.LINE_MAX - 1) + "…"
    assert fr.id_list(["a", "b", "c"], limit=2) == "a, b and 1 more"
