"""The training flow end to end in the sandbox, with the playbooks a user runs
(inventories/local): train_resources.yml, train.yml -e image_tag=..., train_trigger.yml
(its quartet), then a push of a new training image that starts a training task through
EventBridge, its output in CloudWatch, and train.yml -e task_arn=... recording the digest.
"""

from __future__ import annotations

import json
import time

import pytest

from mlops_sandbox.client import Sandbox

from .conftest import ROOT, assert_play_ok
from .deploy_support import RegistryClient, ecr_credentials, ensure_repository, run
from .iam_proof import IDENTITIES, TRAINING, attached, ci_deployer, client_as, disallowed, lint, prove

INVENTORY = ROOT / "inventories" / "local"
PLAYBOOKS = ROOT / "playbooks"
RECORD = "/mlops/local/training/titanic"
CLUSTER = "mlops-training-local"
LOG_GROUP = "/mlops/train/local"
LABEL = "io.mlops-deploy.test=train"


def play(playbook, name, *args, **extra):
    result = playbook.run(PLAYBOOKS / name, extra or None, "-i", str(INVENTORY), *args)
    assert_play_ok(result)
    return result


def recap(result) -> dict:
    line = next(line for line in result.stdout.splitlines() if line.startswith("localhost"))
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


@pytest.fixture(scope="module")
def registry(aws, aws_env, resources, tmp_path_factory):
    """The registry as CI pushes to it: signed in as the CI deployer (its role made by
    train_resources.yml through provision.yml), whose calls test_ci_deployer_... proves."""
    ensure_repository(aws("ecr"), "titanic-train")  # train_resources.yml made it: no call of CI's
    began = time.time()
    creds = ci_deployer(aws)
    client = RegistryClient(tmp_path_factory.mktemp("docker"), ecr_credentials(client_as(creds, aws_env, "ecr")))
    client.login()
    client.ci_began = began
    yield client
    # The images this module built (by their label; other people's stay).
    ours = run(["docker", "image", "ls", "-q", "--filter", f"label={LABEL}"]).stdout.split()
    if ours:
        run(["docker", "image", "rm", "-f", *sorted(set(ours))], check=False)


def build_training_image(registry, tag: str, marker: str) -> str:
    """The demo's training image, with a marker making its digest new; pushed as ``tag``."""
    uri = registry.uri(tag, "titanic-train")
    registry.docker(
        "build", "--quiet", "--label", LABEL, "--label", f"io.mlops-deploy.marker={marker}", "-f",
        str(ROOT / "demo" / "titanic" / "Dockerfile.train"), "-t", uri, str(ROOT / "demo" / "titanic"),
    )  # fmt: skip
    return registry.push(uri, tag, "titanic-train")


def targets(events) -> list:
    """The trigger rule's targets; none while the rule does not exist (a new sandbox)."""
    try:
        return events.list_targets_by_rule(Rule="titanic-train-on-push")["Targets"]
    except events.exceptions.ResourceNotFoundException:
        return []


def record(aws) -> dict:
    return json.loads(aws("ssm").get_parameter(Name=RECORD)["Parameter"]["Value"])


@pytest.fixture(scope="module")
def resources(playbook):
    play(playbook, "train_resources.yml")
    again = play(playbook, "train_resources.yml")
    assert recap(again)["changed"] == 0, again.stdout[-3000:]


def test_train_yml_trains_the_image_pinned_by_digest_and_records_the_run(playbook, resources, registry, aws):
    tag = f"it-{int(time.time())}"
    digest = build_training_image(registry, tag, tag)
    result = play(playbook, "train.yml", "-e", f"image_tag={tag}", "-e", "train_by=integration-test")
    assert "[train] epoch    0/600" in result.stdout
    assert f"-> s3://mlops-releases-local/models/titanic/titanic-{digest[7:19]}.json" in result.stdout
    got = record(aws)
    assert got["result"] == "success"
    assert got["deployed_by"] == "integration-test"
    assert got["digests"]["train"] == f"{registry.registry}/titanic-train@{digest}"
    assert got["extra"]["exit_code"] == 0
    assert got["extra"]["trigger"] == "train.yml"
    assert got["extra"]["image_tag"] == tag
    task = aws("ecs").describe_tasks(cluster=CLUSTER, tasks=[got["extra"]["task_arn"]])["tasks"][0]
    assert task["containers"][0]["image"].endswith(f"titanic-train@{digest}")  # pinned, not the tag
    model = aws("s3").get_object(Bucket="mlops-releases-local", Key=f"models/titanic/titanic-{digest[7:19]}.json")
    assert json.loads(model["Body"].read())["version"] == f"titanic-{digest[7:19]}"


def test_a_push_of_the_trigger_tag_trains_and_train_yml_records_its_digest(playbook, resources, registry, aws, aws_env):
    # The quartet, from no target (absent removes the target, not the rule: on a new
    # sandbox there is no rule yet; after an earlier run there is one without target).
    play(playbook, "train_trigger.yml", "-e", "train_trigger_state=absent")
    events = aws("events")
    assert targets(events) == []
    check = play(playbook, "train_trigger.yml", "--check")
    assert recap(check)["changed"] >= 1
    assert targets(events) == []
    first = play(playbook, "train_trigger.yml")
    check_again = play(playbook, "train_trigger.yml", "--check")
    again = play(playbook, "train_trigger.yml")
    assert recap(first)["changed"] >= 1
    assert recap(check_again)["changed"] == 0, check_again.stdout[-3000:]
    assert recap(again)["changed"] == 0, again.stdout[-3000:]
    rule = targets(events)
    assert [t["Id"] for t in rule] == ["train"]
    assert rule[0]["RoleArn"].endswith(":role/mlops-train-events-local")
    policy = aws("iam").get_role_policy(RoleName="mlops-train-events-local", PolicyName="mlops-train-events")
    statements = policy["PolicyDocument"]["Statement"]
    # Action as a string or a list (the provision role's file writes a list)
    actions = [[s["Action"]] if isinstance(s["Action"], str) else s["Action"] for s in statements]
    passes = next(s for s, named in zip(statements, actions, strict=True) if "iam:PassRole" in named)
    assert sorted(passes["Resource"]) == [
        "arn:aws:iam::123456789012:role/mlops-train-execution-local",
        "arn:aws:iam::123456789012:role/mlops-train-task-local",
    ]

    ecs = aws("ecs")
    before = set(ecs.list_tasks(cluster=CLUSTER, startedBy="events-rule/titanic-train-on-push")["taskArns"])
    pushed_at = time.time()
    marker = f"push-{int(pushed_at)}"
    digest = build_training_image(registry, "latest", marker)

    def triggered():
        arns = set(ecs.list_tasks(cluster=CLUSTER, startedBy="events-rule/titanic-train-on-push")["taskArns"]) - before
        return sorted(arns)

    deadline = time.monotonic() + 60
    while not triggered() and time.monotonic() < deadline:
        time.sleep(0.5)
    arns = triggered()
    assert len(arns) == 1, f"one training task should start for the push of latest, got {arns}"
    task_id = arns[0].rsplit("/", 1)[-1]

    # train.yml follows it (from its first line) and records it.
    result = play(playbook, "train.yml", "-e", f"task_arn={arns[0]}")
    assert f"[train] started by the push of latest ({digest})" in result.stdout
    got = record(aws)
    assert got["release_id"] == f"train-{task_id}"
    assert got["result"] == "success"
    assert got["digests"]["train"] == f"{registry.registry}/titanic-train@{digest}"
    assert got["extra"]["pushed_digest"] == digest
    assert got["extra"]["trigger"] == "push"

    # Its output is in CloudWatch, in the awslogs stream of the training container.
    events = aws("logs").get_log_events(
        logGroupName=LOG_GROUP, logStreamName=f"titanic/train/{task_id}", startFromHead=True
    )["events"]
    messages = [e["message"] for e in events]
    assert messages[0] == f"started by the push of latest ({digest})"
    assert messages[-1].startswith(f"model titanic-{digest[7:19]} -> s3://mlops-releases-local/models/titanic/")

    # Who made which call for that task, as AWS would see it: EventBridge ran it as the
    # events role; the ECS agent fetched the registry token and shipped the logs as the
    # execution role; the training job wrote its model as the task role.
    mine = [c for c in Sandbox(aws_env["MLOPS_SANDBOX_CONTROL_URL"]).call_log(since=pushed_at) if c["principal"]]
    by_role = {}
    for call in mine:
        role_session = call["principal"].split(":assumed-role/", 1)[-1]
        if role_session.endswith((task_id, "/events-titanic-train-on-push")):
            by_role.setdefault(role_session.split("/")[0], set()).add(f"{call['service']}:{call['operation']}")
    # The execution role's pull calls depend on what the engine already holds (the manifest,
    # ecr:BatchGetImage, when the image is not local yet).
    pulled = by_role.get("mlops-train-execution-local", set()) - {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert {**by_role, "mlops-train-execution-local": pulled} == {
        "mlops-train-events-local": {"ecs:RunTask"},
        "mlops-train-execution-local": {"ecr:GetAuthorizationToken", "logs:CreateLogStream", "logs:PutLogEvents"},
        "mlops-train-task-local": {"s3:PutObject"},
    }, mine
    # The IAM proof of those three identities: each call allowed by the role's policy as
    # attached (action, resource, condition keys: the cluster, the service roles are passed
    # to), every action the policy allows used, the linters silent.
    problems, counts = [], {}
    for identity in TRAINING:
        theirs = [c for c in mine if c["principal"].split(":assumed-role/", 1)[-1].startswith(identity.role + "/")]
        theirs = [c for c in theirs if c["principal"].endswith((task_id, "/events-titanic-train-on-push"))]
        counts[identity.name] = len(theirs)
        ours, managed = attached(aws("iam"), identity)
        found = prove(theirs, identity, ours, managed) + lint(identity, ours)
        # Layers are downloaded only when the engine lacks them (ours built the image).
        problems += [p for p in found if not p.endswith("allows ecr:GetDownloadUrlForLayer, which no call used")]
    print(f"training IAM proof: calls per identity {counts}")
    assert not problems, "training IAM proof failed:\n" + "\n".join(problems)


def test_the_ci_deployer_pushed_the_training_images_with_only_what_its_policy_allows(registry, aws, aws_env):
    """CI's part in training is the push of the training image (the push of the trigger tag
    starts a run): every call it made since it signed in is allowed by the CI deployer's
    policy as provision.yml attached it (test_release_flow.py test_10 proves the rest of
    its calls, and that every action the policy allows is used)."""
    (identity,) = [i for i in IDENTITIES if i.name == "ci-deployer"]
    prefix = f"arn:aws:sts::123456789012:assumed-role/{identity.role}/"
    calls = Sandbox(aws_env["MLOPS_SANDBOX_CONTROL_URL"]).call_log(since=registry.ci_began)
    theirs = [c for c in calls if (c.get("principal") or "").startswith(prefix)]
    pushed = {r for c in theirs if c["operation"] == "PutImage" for r in c["resources"]}
    assert pushed == {f"arn:aws:ecr:{aws_env['AWS_REGION']}:123456789012:repository/titanic-train"}, [
        (c["service"], c["operation"], c["resources"]) for c in theirs
    ]
    ours, managed = attached(aws("iam"), identity)
    problems, used = disallowed(theirs, identity, ours, managed)
    print(f"training push IAM proof: {len(theirs)} calls of the CI deployer, actions used {sorted(used)}")
    assert not problems, "the CI deployer's training push is not allowed:\n" + "\n".join(problems)
    assert {"ecr:GetAuthorizationToken", "ecr:InitiateLayerUpload", "ecr:PutImage"} <= used, used


def test_train_yml_says_what_to_give(playbook):
    result = playbook.run(PLAYBOOKS / "train.yml", None, "-i", str(INVENTORY))
    assert result.returncode != 0
    assert "give -e image_tag=<tag of" in result.stdout
