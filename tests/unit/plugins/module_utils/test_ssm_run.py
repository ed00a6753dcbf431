"""The rules of ssm_run_playbook, fed with payloads shaped as SSM and EC2 return them.

Shapes and enums follow botocore's SSM model (service-2.json, 2014-11-06): Status is a
CommandInvocationStatus, StatusDetails a free string (AWS writes "DeliveryTimedOut";
its documentation writes "Delivery Timed Out"; both are read).
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from botocore.loaders import Loader
from recorded_ssm import I1, I2, I3, I4, RECAP_CHANGED, RECAP_OK, T0, command, invocation

from ansible_collections.mlops.deploy.plugins.module_utils import _ssm_run as ssm

# ------------------------------------------------------------------------ targets


def test_instance_ids_are_checked_and_deduplicated():
    assert ssm.check_instance_ids([I1, I2, I1, " " + I3]) == [I1, I2, I3]
    assert ssm.check_instance_ids(["i-0123abcd", "mi-0123456789abcdef0"]) == ["i-0123abcd", "mi-0123456789abcdef0"]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([], "instance_ids is empty"),
        (["web-1"], "not an EC2 or managed instance ID: 'web-1'"),
        (["i-123"], "'i-123'"),
        ([I1, "i-0aaaaaaaaaaaaaaaa1"], "'i-0aaaaaaaaaaaaaaaa1'"),  # 18 characters
    ],
)
def test_bad_instance_ids(ids, message):
    with pytest.raises(ssm.SsmRunError, match=message):
        ssm.check_instance_ids(ids)


@pytest.mark.parametrize(
    ("targets", "parsed", "words"),
    [
        (["tag:Name=model-server"], [("Name", ["model-server"])], "tag Name=model-server"),
        (
            ["tag:Name=model-server", "tag:env=prod,staging"],
            [("Name", ["model-server"]), ("env", ["prod", "staging"])],
            "tag Name=model-server and tag env=prod or staging",
        ),
        (["tag:aws:cloudformation:stack-name=ml"], [("aws:cloudformation:stack-name", ["ml"])], None),
    ],
)
def test_tag_targets(targets, parsed, words):
    assert ssm.parse_tag_targets(targets) == parsed
    if words:
        assert ssm.describe_tag_targets(parsed) == words
    assert ssm.ec2_filters(parsed)[-1] == {"Name": "instance-state-name", "Values": ["running"]}
    assert ssm.ec2_filters(parsed)[0] == {"Name": "tag:" + parsed[0][0], "Values": parsed[0][1]}
    assert ssm.ssm_targets(parsed)[0] == {"Key": "tag:" + parsed[0][0], "Values": parsed[0][1]}


@pytest.mark.parametrize("target", ["Name=model-server", "tag:Name", "tag:=x", "tag:Name=", "tag:Name=,"])
def test_bad_tag_targets_say_how_to_write_them(target):
    with pytest.raises(ssm.SsmRunError, match=r"write tag:<key>=<value>"):
        ssm.parse_tag_targets([target])


def test_instance_ids_from_inventory_hostvars():
    hosts = [
        {"inventory_hostname": "ip-10-0-0-1", "instance_id": I1, "tags": {"Name": "model-server"}},
        {"inventory_hostname": "ip-10-0-0-2", "instance_id": I2},
    ]
    assert ssm.instance_ids_from_hosts(hosts) == [I1, I2]


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([{"inventory_hostname": "web-1"}], "inventory host web-1 has no instance_id"),
        (["web-1"], "is the string 'web-1', not a host's variables"),
        ([], "inventory_hosts is empty"),
    ],
)
def test_bad_inventory_hosts(hosts, message):
    with pytest.raises(ssm.SsmRunError, match=message):
        ssm.instance_ids_from_hosts(hosts)


RESERVATIONS = [
    {
        "ReservationId": "r-1",
        "Instances": [
            {
                "InstanceId": I1,
                "State": {"Code": 16, "Name": "running"},
                "Tags": [{"Key": "Name", "Value": "model-server"}, {"Key": "env", "Value": "prod"}],
            },
            {"InstanceId": I2, "State": {"Code": 80, "Name": "stopped"}, "Tags": []},
        ],
    },
    {"ReservationId": "r-2", "Instances": [{"InstanceId": I3, "State": {"Code": 16, "Name": "running"}}]},
]


def test_running_instances_and_names_from_reservations():
    assert ssm.running_instance_ids(RESERVATIONS) == [I1, I3]
    assert ssm.instance_names(RESERVATIONS) == {I1: "model-server"}


# ---------------------------------------------------------------------- pre-flight

INFO = [
    {
        "InstanceId": I1,
        "PingStatus": "Online",
        "LastPingDateTime": T0,
        "AgentVersion": "3.3.1142.0",
        "IsLatestVersion": False,
        "PlatformType": "Linux",
        "PlatformName": "Debian GNU/Linux",
        "PlatformVersion": "12",
        "ResourceType": "EC2Instance",
        "IPAddress": "10.0.0.1",
        "ComputerName": "ip-10-0-0-1",
    },
    {"InstanceId": I2, "PingStatus": "ConnectionLost", "LastPingDateTime": T0 - timedelta(hours=2)},
    {"InstanceId": I3, "PingStatus": "Inactive"},
]


def test_preflight_names_each_offline_instance_and_why():
    online, offline = ssm.preflight([I1, I2, I3, I4], INFO)
    assert online == [I1]
    assert [o["instance_id"] for o in offline] == [I2, I3, I4]
    assert offline[0]["reason"] == "SSM agent lost its connection (PingStatus ConnectionLost)"
    assert offline[1]["ping_status"] == "Inactive"
    assert offline[2] == {"instance_id": I4, "ping_status": None, "reason": "not managed by SSM"}
    message = ssm.offline_message(offline, 4)
    assert message.startswith("3 of 4 target instances cannot receive commands: " + I2)
    assert "Nothing was sent" in message
    assert "skip_offline=true" in message


# ------------------------------------------------------------------------ batches

FLEET = ["i-%017x" % n for n in range(100)]


@pytest.mark.parametrize(
    ("size", "batches", "sizes"),
    [
        (100, None, [100]),
        (100, [], [100]),
        (100, [1, "25%", "100%"], [1, 25, 74]),
        (100, [1, "25%"], [1, 25, 25, 25, 24]),
        (100, ["1", " 10 %".replace(" ", "")], [1] + [10] * 9 + [9]),
        (10, [1, "25%", "100%"], [1, 2, 7]),  # 25% of 10 is 2 (rounded down, as serial)
        (3, ["10%"], [1, 1, 1]),  # at least one
        (1, [1, "25%", "100%"], [1]),
        (5, [10], [5]),
        (0, [1, "25%"], []),
    ],
)
def test_plan_batches_like_serial(size, batches, sizes):
    planned = ssm.plan_batches(FLEET[:size], batches)
    assert [len(b) for b in planned] == sizes
    assert [i for b in planned for i in b] == FLEET[:size]  # every instance once, in order


@pytest.mark.parametrize("entry", [0, "0%", "101%", "-1", "x", "25 percent", True, 2.5])
def test_bad_batch_entries(entry):
    with pytest.raises(ssm.SsmRunError, match="batches entry"):
        ssm.plan_batches(FLEET, [1, entry])


@pytest.mark.parametrize("batches", [[1, "25%", "100%"], ["10%"], [], None, ["3", 5]])
def test_check_batches_accepts(batches):
    ssm.check_batches(batches)  # refuses nothing, and the plan covers the fleet once
    planned = ssm.plan_batches(FLEET, batches)
    assert [i for batch in planned for i in batch] == FLEET


@pytest.mark.parametrize("batches", [[0], ["0%"], ["150%"], [1, "x"]])
def test_check_batches_refuses_before_anything_is_resolved(batches):
    with pytest.raises(ssm.SsmRunError, match="batches entry"):
        ssm.check_batches(batches)


def test_chunks_of_fifty():
    assert [len(c) for c in ssm.chunks(FLEET[:100] + FLEET[:20], 50)] == [50, 50, 20]


# --------------------------------------------------------------------- extra_vars


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ({}, ""),
        (None, ""),
        ({"env": "prod", "release_id": "r42"}, "env=prod release_id=r42"),
        ({"replicas": 3, "ratio": 0.5, "debug": False, "canary": True}, "replicas=3 ratio=0.5 debug=false canary=true"),
        ({"bundle_sha": "9f86d081884c7d65", "path": "/opt/models/v1.2", "tag": "v1,2=3"}, None),
    ],
)
def test_extra_vars_accepted(extra_vars, expected):
    line = ssm.format_extra_vars(extra_vars)
    if expected is not None:
        assert line == expected
    assert ssm.EXTRA_VARIABLES_ALLOWED.match(line)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/model-api:1.4.2", "carry :"),
        ("a|b", "carry |"),
        ("a;reboot", "carry ;"),
        ("a&b", "carry &"),
        ("f(x)", "carry ( )"),
        ("two words", "carry a space"),
        ("tab\there", "carry a tab"),
        ('say"hi"', 'carry "'),
        ("it's", "carry '"),
        ("$HOME", "carry $"),
        ("`id`", "carry `"),
        ("back\\slash", "carry \\"),
    ],
)
def test_extra_vars_refused_before_sending(value, shown):
    with pytest.raises(ssm.SsmRunError) as caught:
        ssm.format_extra_vars({"image": value})
    message = str(caught.value)
    assert message.startswith("extra_vars.image cannot " + shown + " through AWS-ApplyAnsiblePlaybooks' ExtraVariables")
    assert "(value %s;" % value in message
    assert "release bundle" in message


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        ({"my-var": "x"}, "only letters, digits and _"),
        ({"x": ["a", "b"]}, "extra_vars.x is a list: ExtraVariables carries only simple"),
        ({"x": {"a": 1}}, "extra_vars.x is a dict"),
        ({"x": None}, "extra_vars.x has no value"),
        ({"x": ""}, "extra_vars.x is empty"),
    ],
)
def test_extra_vars_other_refusals(extra_vars, message):
    with pytest.raises(ssm.SsmRunError, match=message):
        ssm.format_extra_vars(extra_vars)


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        # What AWS's own allowedPattern says about whole ExtraVariables strings.
        ("", True),
        ("SSM=True", True),
        ("color=red flavor=cherry", True),
        ("msg='hello world'", True),  # quoted: newer document versions only
        ("image=repo:tag", False),
        ("a=b;c", False),
        ("a=(b)", False),
        ("a=b  c", False),
        ("=b", False),
    ],
)
def test_aws_extra_variables_pattern(line, accepted):
    assert bool(ssm.EXTRA_VARIABLES_ALLOWED.match(line)) is accepted


# ----------------------------------------------------------------- source and file


@pytest.mark.parametrize(
    ("url", "region", "expected"),
    [
        (
            "s3://acme-releases/releases/prod/r42.zip",
            "eu-west-1",
            "https://acme-releases.s3.eu-west-1.amazonaws.com/releases/prod/r42.zip",
        ),
        (
            "s3://acme/playbooks/my play.yml",
            "us-east-1",
            "https://acme.s3.us-east-1.amazonaws.com/playbooks/my%20play.yml",
        ),
        (
            "https://acme.s3.eu-west-1.amazonaws.com/p/deploy.yml",
            None,
            "https://acme.s3.eu-west-1.amazonaws.com/p/deploy.yml",
        ),
    ],
)
def test_s3_https_url(url, region, expected):
    assert ssm.s3_https_url(url, region) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket-only", "give s3://<bucket>/<key>"),
        ("http://acme.s3.amazonaws.com/x.yml", "give s3://<bucket>/<key>"),
        ("/tmp/deploy.yml", "give s3://<bucket>/<key>"),
    ],
)
def test_bad_playbook_urls(url, message):
    with pytest.raises(ssm.SsmRunError, match=message):
        ssm.s3_https_url(url, "eu-west-1")


def test_s3_url_needs_a_region():
    with pytest.raises(ssm.SsmRunError, match="no region is set"):
        ssm.s3_https_url("s3://a/b.yml", None)


@pytest.mark.parametrize(
    ("url", "given", "expected"),
    [
        ("https://a.s3.eu-west-1.amazonaws.com/p/deploy.yml", None, "deploy.yml"),
        ("https://a.s3.eu-west-1.amazonaws.com/p/site.yaml", None, "site.yaml"),
        ("https://a.s3.eu-west-1.amazonaws.com/r/r42.zip", "deploy.yml", "deploy.yml"),
        ("https://a.s3.eu-west-1.amazonaws.com/r/r42.zip", "playbooks/deploy-v2.yml", "playbooks/deploy-v2.yml"),
    ],
)
def test_playbook_file(url, given, expected):
    assert ssm.playbook_file_for(url, given) == expected


@pytest.mark.parametrize(
    ("url", "given", "message"),
    [
        ("https://a.s3.eu-west-1.amazonaws.com/r/r42.zip", None, "set playbook_file"),
        ("https://a.s3.eu-west-1.amazonaws.com/r/r42.zip", "deploy.json", "ending in .yml or .yaml"),
        ("https://a.s3.eu-west-1.amazonaws.com/r/r42.zip", "my deploy.yml", "relative path of letters"),
    ],
)
def test_bad_playbook_file(url, given, message):
    with pytest.raises(ssm.SsmRunError, match=message):
        ssm.playbook_file_for(url, given)


def test_ansible_parameters_as_the_document_takes_them():
    params = ssm.ansible_parameters(
        "s3://acme-releases/releases/prod/r42.zip",
        "eu-west-1",
        playbook_file="deploy.yml",
        extra_vars={"env": "prod"},
        verbose=2,
        execution_timeout=900,
        check=True,
    )
    assert params == {
        "SourceType": ["S3"],
        "SourceInfo": ['{"path": "https://acme-releases.s3.eu-west-1.amazonaws.com/releases/prod/r42.zip"}'],
        "InstallDependencies": ["False"],
        "PlaybookFile": ["deploy.yml"],
        "ExtraVariables": ["env=prod"],
        "Check": ["True"],
        "Verbose": ["-vv"],
        "TimeoutSeconds": ["900"],
    }
    assert json.loads(params["SourceInfo"][0])["path"].startswith("https://acme-releases.s3.eu-west-1.")
    plain = ssm.ansible_parameters("s3://a/p/site.yml", "eu-west-1")
    assert plain["ExtraVariables"] == ["SSM=True"]  # never an empty -e ""
    assert plain["Check"] == ["False"]
    assert "TimeoutSeconds" not in plain


def test_raw_parameters():
    assert ssm.raw_parameters({"commands": ["uptime", "df -h"], "executionTimeout": 120, "flag": True}) == {
        "commands": ["uptime", "df -h"],
        "executionTimeout": ["120"],
        "flag": ["true"],
    }


@pytest.mark.parametrize(
    ("concurrency", "errors", "ok"),
    [
        ("50", "0", True),
        ("10%", "5%", True),
        ("100%", "100%", True),
        ("0", "0", False),
        ("50", "-1", False),
        ("ten", "0", False),
        ("101%", "0", False),
    ],
)
def test_rollout_limits(concurrency, errors, ok):
    if ok:
        ssm.check_rollout_limits(concurrency, errors)
    else:
        with pytest.raises(ssm.SsmRunError, match="give a count"):
            ssm.check_rollout_limits(concurrency, errors)


# ---------------------------------------------------------------- status folding


@pytest.mark.parametrize(
    ("status", "details", "outcome"),
    [
        ("Pending", "Pending", None),
        ("InProgress", "InProgress", None),
        ("InProgress", "In Progress", None),
        ("Delayed", "Delayed", None),
        ("Cancelling", "Cancelling", None),
        ("Success", "Success", "success"),
        ("Success", "", "success"),
        ("Failed", "Failed", "failed"),
        ("TimedOut", "ExecutionTimedOut", "execution_timed_out"),
        ("TimedOut", "Execution Timed Out", "execution_timed_out"),
        ("TimedOut", "DeliveryTimedOut", "delivery_timed_out"),
        ("TimedOut", "Delivery Timed Out", "delivery_timed_out"),
        ("TimedOut", "", "timed_out"),
        ("Cancelled", "Cancelled", "cancelled"),
        ("Failed", "Undeliverable", "undeliverable"),
        ("Cancelled", "Terminated", "terminated"),
        ("Failed", "Terminated", "terminated"),
        ("Failed", "AccessDenied", "access_denied"),
        ("Failed", "InvalidPlatform", "invalid_platform"),
        ("Failed", "Something New", "failed"),
        # A Success whose details disagree is not a success.
        ("Success", "Undeliverable", "undeliverable"),
        ("Success", "Whatever", "failed"),
    ],
)
def test_invocation_outcome(status, details, outcome):
    assert ssm.invocation_outcome(status, details) == outcome


def ssm_model_enum(shape: str) -> list[str]:
    """An enum of SSM's API model as botocore ships it (botocore/data/ssm/*/service-2.json)."""
    return Loader().load_service_model("ssm", "service-2")["shapes"][shape]["enum"]


def test_every_invocation_status_of_the_model_is_either_running_or_an_outcome():
    statuses = ssm_model_enum("CommandInvocationStatus")
    assert "Delayed" in statuses  # the model is the one read, not an empty list
    running = [s for s in statuses if s in ssm.RUNNING_STATUSES]
    terminal = [s for s in statuses if s in ssm.STATUS_OUTCOMES]
    assert sorted(running + terminal) == sorted(statuses)  # each one, and only once
    assert [ssm.invocation_outcome(s) for s in running] == [None] * len(running)
    assert all(ssm.invocation_outcome(s) == ssm.STATUS_OUTCOMES[s] for s in terminal)


def test_the_terminal_command_statuses_are_the_models_less_the_running_ones():
    statuses = ssm_model_enum("CommandStatus")
    assert sorted(ssm.COMMAND_TERMINAL) == sorted(s for s in statuses if s not in ssm.RUNNING_STATUSES)


def test_fold_success_on_all():
    fold = ssm.fold_statuses([I1, I2], [invocation(I2, "Success"), invocation(I1, "Success")])
    assert fold["done"]
    assert fold["ok"]
    assert list(fold["instances"]) == [I1, I2]  # targets' order
    assert fold["counts"] == {"Success": 2}


def test_fold_running_and_counts_for_progress():
    fold = ssm.fold_statuses(
        [I1, I2, I3, I4],
        [invocation(I1, "Success"), invocation(I2, "InProgress"), invocation(I3, "Delayed")],
    )
    assert not fold["done"]
    assert not fold["ok"]
    assert fold["counts"] == {"Success": 1, "InProgress": 1, "Delayed": 1, "Pending": 1}
    assert fold["instances"][I4]["outcome"] is None  # no invocation yet, the command still runs
    assert ssm.status_phrase(fold["counts"]) == "1 Success, 1 InProgress, 1 Delayed, 1 Pending"


def test_a_command_success_never_hides_an_instance_that_did_not_run():
    """The command is over (say ListCommands says Success, max_errors allowing it); one
    targeted instance has no invocation and one never left Pending: both are failures."""
    fold = ssm.fold_statuses(
        [I1, I2, I3],
        [invocation(I1, "Success"), invocation(I2, "Pending")],
        commands_done=True,
    )
    assert fold["done"]
    assert not fold["ok"]
    assert fold["instances"][I2]["outcome"] == ssm.NO_INVOCATION
    assert fold["instances"][I3]["outcome"] == ssm.NO_INVOCATION
    assert fold["counts"] == {"Success": 1, "Pending": 1, "NoInvocation": 1}


@pytest.mark.parametrize(
    ("status", "details"),
    [
        ("Failed", "Undeliverable"),
        ("TimedOut", "DeliveryTimedOut"),
        ("Cancelled", "Cancelled"),
        ("Cancelled", "Terminated"),
        ("TimedOut", "ExecutionTimedOut"),
        ("Failed", "Failed"),
    ],
)
def test_fold_failures(status, details):
    fold = ssm.fold_statuses([I1, I2], [invocation(I1, "Success"), invocation(I2, status, details)], True)
    assert fold["done"]
    assert not fold["ok"]
    assert ssm.summarize(list(fold["instances"].values()))["success"] == 1


def test_fold_after_a_forced_end_tells_unfinished_from_never_ran():
    fold = ssm.fold_statuses(
        [I1, I2, I3],
        [invocation(I1, "InProgress"), invocation(I2, "Cancelling"), invocation(I3, "Pending")],
        commands_done=True,
    )
    outcomes = {i: s["outcome"] for i, s in fold["instances"].items()}
    assert outcomes == {I1: "unfinished", I2: "unfinished", I3: "no_invocation"}
    assert fold["done"]
    assert not fold["ok"]


def test_fold_keeps_instances_ssm_added_by_tag():
    fold = ssm.fold_statuses([I1], [invocation(I1, "Success"), invocation(I2, "Success")], True)
    assert fold["instances"][I2]["unexpected"] is True
    assert "unexpected" not in fold["instances"][I1]
    assert fold["ok"]


def test_command_counters():
    commands = [command("c1", "InProgress", 50, 20, errors=2), command("c2", "Success", 30, 30, delivery_timed_out=1)]
    counters = ssm.command_counts(commands)
    assert counters == {"target": 80, "completed": 50, "errors": 2, "delivery_timed_out": 1}
    assert ssm.counters_phrase(counters) == "50 completed (3 Failed or Timed Out), 30 Pending or InProgress"
    assert not ssm.commands_terminal(commands, ["c1", "c2"])
    assert ssm.commands_terminal(commands, ["c2"])
    assert not ssm.commands_terminal(commands, ["c3"])  # an unknown command is not over


def test_progress_line():
    line = ssm.progress_line(2, 3, 25, ssm.status_phrase({"Pending": 1, "InProgress": 6, "Success": 18}), 41.7)
    assert line == "batch 2/3 (25 instances): 18 Success, 6 InProgress, 1 Pending \u2014 41s"
    assert ssm.progress_line(1, 3, 1, "1 Pending", 0).startswith("batch 1/3 (1 instance): ")


def test_summarize():
    states = [{"outcome": "success"}, {"outcome": "failed"}, {"outcome": "not_started"}, {"outcome": None}]
    assert ssm.summarize(states) == {"total": 4, "success": 1, "failed": 1, "not_started": 1, "running": 1}


# ------------------------------------------------------------------ poll schedule


def test_poll_schedule_starts_fast_backs_off_and_caps():
    schedule = ssm.PollSchedule(floor=0.25, factor=1.5, cap=5.0)
    delays = [schedule.observe(t, 0, 3) for t in range(12)]
    assert delays[0] < 1
    assert delays == sorted(delays)
    assert delays[-1] == 5.0
    assert sum(1 for d in delays if d < 1) >= 3


def test_poll_schedule_drops_to_floor_on_the_first_news():
    schedule = ssm.PollSchedule(floor=0.25, cap=5.0)
    for t in range(10):
        schedule.observe(t, 0, 3)
    assert schedule.observe(30.0, 1, 3) == 0.25


def test_poll_schedule_rate_based():
    schedule = ssm.PollSchedule(floor=0.25, cap=5.0)
    schedule.observe(10.0, 100, 1000)
    # 100 more in 4 s: 25/s, 800 left, ETA 32 s: wait the cap.
    assert schedule.observe(14.0, 200, 1000) == 5.0
    # 990 done: ETA well under a second: the floor.
    assert schedule.observe(49.6, 990, 1000) == 0.25


def spread(seed, low, high, count):
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _index in range(count)]


def simulate(ends, schedule, cost=0.02):
    """Follow invocations ending at ``ends`` (seconds) with ``schedule``; each poll sees
    how many ended. Returns (polls, delay between the last end and the poll that saw it)."""
    now, polls, total = 0.0, 0, len(ends)
    delay = schedule.floor
    while True:
        now += delay + cost
        polls += 1
        completed = sum(1 for e in ends if e <= now)
        if completed == total:
            return polls, now - max(ends)
        delay = schedule.observe(now, completed, total)


@pytest.mark.parametrize(
    ("label", "ends", "max_polls", "max_delay"),
    [
        ("1,000 spread over 10-40 s", spread(1, 10, 40, 1000), 40, 0.6),
        ("1,000 spread over 20-60 s", spread(2, 20, 60, 1000), 40, 0.6),
        ("200 spread over 5-300 s", spread(3, 5, 300, 200), 90, 1.5),
        ("3 ending together after 30 s", [30.0, 30.1, 30.3], 20, 5.5),
        ("one after 2 s", [2.0], 8, 1.0),
        ("one after 10 minutes", [600.0], 140, 5.5),
    ],
)
def test_poll_schedule_on_fleets(label, ends, max_polls, max_delay):
    polls, delay = simulate(ends, ssm.PollSchedule(floor=0.25, factor=1.5, cap=5.0))
    assert polls <= max_polls, (label, polls)
    assert 0 <= delay <= max_delay, (label, delay)


def test_bad_schedule():
    with pytest.raises(ssm.SsmRunError):
        ssm.PollSchedule(floor=0, cap=5)


# ------------------------------------------------------------------ plays' output


@pytest.mark.parametrize(
    ("text", "changed"),
    [
        (RECAP_OK, False),
        (RECAP_CHANGED, True),
        ("PLAY [x] ***\nTASK [y] ***\nok: [localhost]\n", None),  # cut before the recap
        ("", None),
        (
            "PLAY RECAP ***\nlocalhost : ok=1 changed=1 unreachable=0 failed=0\n"
            "PLAY RECAP ***\nlocalhost : ok=1 changed=0 unreachable=0 failed=0\n",
            False,  # the last recap counts
        ),
        (
            "\x1b[0;33mlocalhost\x1b[0m                  : \x1b[0;32mok=3   \x1b[0m \x1b[0;33mchanged=1\x1b[0m    "
            "unreachable=0    failed=0    skipped=0    rescued=0    ignored=0",
            True,  # coloured output
        ),
        # Recap lines alone, as a CloudWatch filter returns them.
        ("localhost                  : ok=5    changed=0    unreachable=0    failed=0    skipped=0", False),
    ],
)
def test_recap(text, changed):
    assert ssm.recap_changed(ssm.parse_recap(text)) is changed


def test_recap_counts():
    recap = ssm.parse_recap(RECAP_CHANGED)
    assert recap == {
        "localhost": {"ok": 7, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 1, "rescued": 0, "ignored": 0}
    }


def test_invocation_details_from_a_failed_run():
    output = (
        'PLAY [Deploy] ***\nTASK [Pull] ***\nfatal: [localhost]: FAILED! => {"msg": "pull access denied"}\n'
        "PLAY RECAP ***\nlocalhost : ok=2 changed=0 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0\n"
        "----------ERROR-------\nfailed to run commands: exit status 2"
    )
    entry = invocation(I1, "Failed", "Failed", rc=2, output=output, start=0, end=41.5)
    info = ssm.invocation_details(entry, tail_lines=3)
    assert info["response_code"] == 2
    assert info["duration"] == 41.5
    assert info["stdout_tail"][-1].startswith("localhost : ok=2")
    assert len(info["stdout_tail"]) == 3
    assert info["stderr_tail"] == ["failed to run commands: exit status 2"]
    assert ssm.recap_changed(info["recap"]) is False


def test_invocation_details_when_never_run():
    entry = invocation(I1, "Failed", "Undeliverable")
    info = ssm.invocation_details(entry, tail_lines=5)
    assert info == {
        "response_code": None,
        "duration": None,
        "stdout_tail": [],
        "stderr_tail": [],
        "recap": None,
        "step": "runShellScript",
        "truncated": False,
    }


@pytest.mark.parametrize(
    ("output", "truncated"),
    [
        ("", False),
        (None, False),
        ("x" * 1000, False),
        ("x" * 2500, True),  # SSM keeps the first 2,500 characters
        ("x" * 2477 + "\n---Output truncated---", True),
    ],
)
def test_output_truncated(output, truncated):
    assert ssm.output_truncated(output) is truncated


def test_a_cut_output_is_marked_and_the_mark_is_not_a_line():
    output = "line\n" * 600
    entry = invocation(I1, "Failed", rc=2, output=output[:2475] + "\n---Output truncated---", end=3.0)
    info = ssm.invocation_details(entry, tail_lines=2)
    assert info["truncated"]
    assert info["stdout_tail"] == ["line", "line"]
    assert info["recap"] is None


def test_invocation_details_of_a_shell_document():
    entry = invocation(I1, "Success", rc=0, output="up 3 days\n", end=1.0, plugin="aws:runShellScript")
    info = ssm.invocation_details(entry, tail_lines=5)
    assert info["stdout_tail"] == ["up 3 days"]
    assert info["response_code"] == 0


def test_seconds_between_iso_strings():
    assert ssm.seconds_between("2026-11-21T10:00:00.000Z", "2026-11-21T10:00:41.250Z") == 41.25
    assert ssm.seconds_between("", "2026-11-21T10:00:41Z") is None


def test_failure_message_names_instances_and_shows_last_lines():
    failed = [
        {
            "instance_id": I2,
            "outcome": "failed",
            "response_code": 2,
            "stdout_tail": ["TASK [Pull] ***", "fatal: [localhost]: FAILED!"],
            "stderr_tail": [],
        },
        {"instance_id": I3, "outcome": "undeliverable", "response_code": -1, "stdout_tail": [], "stderr_tail": []},
    ]
    text = ssm.failure_message(failed, 1, 3, not_started=24)
    assert text.startswith("2 instances failed in batch 1/3:")
    assert I2 + " Failed (rc=2):\n    TASK [Pull] ***\n    fatal: [localhost]: FAILED!" in text
    assert I3 + " Undeliverable" in text
    assert "(rc=-1)" not in text
    assert "24 instances in later batches never received the command" in text
