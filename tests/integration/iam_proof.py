"""The IAM proof: every call an identity made is allowed by its shipped policy (action
and resource ARN), and every action its policy allows was used.

``IDENTITIES`` is the table of the release flow (test_release_flow.py test_10): an identity,
the role provision.yml makes for it (its inline policy is the shipped file, rendered), the
AWS managed policies it also has (allowed, but not ours to trim), and the flow that
exercises it; a call no row's policy allows fails. ``TRAINING`` holds the identities of a
training task started by the push trigger (test_train.py proves them, and the CI deployer's
push of the training image with ``disallowed``); the bastion is proven by test_provision.py
(its sync program as its role); the three accounts' CI roles by tests/ci/test_pipelines.py
test_8 with ``disallowed``. ``ci_deployer`` signs in as the CI deployer of environment local.
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from dataclasses import dataclass

import boto3
import parliament
from cloudsplaining.command.scan_policy_file import scan_policy
from cloudsplaining.shared.exclusions import DEFAULT_EXCLUSIONS_CONFIG

from mlops_sandbox import iam_actions, iam_eval


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # the role provision.yml makes (inventories/local)
    policy_file: str  # the shipped file its inline policy is rendered from
    flow: str  # the test that runs as it
    managed: tuple[str, ...] = ()


IDENTITIES = (
    Identity("ci-deployer", "mlops-local-ci-deployer", "ci-deployer.yml.j2",
             "tests/integration/test_release_flow.py (build, push, deploy, rollback)"),
    Identity("instance", "mlops-local-instance", "instance.yml.j2",
             "tests/integration/test_release_flow.py (SSM runs deploy.yml on each instance)",
             ("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",)),
)  # fmt: skip

# A push of the training image runs a task through EventBridge: the events role runs it (and
# passes the two roles), ECS pulls and ships logs as the execution role, the job's own calls
# are the task role's. The roles and their policies: the provision role (provision.yml, which
# train_resources.yml imports).
TRAINING = (
    Identity("training events", "mlops-train-events-local", "roles/provision/templates/iam/events.yml.j2",
             "tests/integration/test_train.py (the push trigger's RunTask)"),
    Identity("training execution", "mlops-train-execution-local",
             "roles/provision/templates/iam/training-execution.yml.j2",
             "tests/integration/test_train.py (ECS pulls the image, ships the logs)"),
    Identity("training task", "mlops-train-task-local", "roles/provision/templates/iam/training-task.yml.j2",
             "tests/integration/test_train.py (the job writes its model)"),
)  # fmt: skip


# What the linters get wrong about these policies, each with its reason (nothing else is
# let through): parliament's action data lists S3 access points as a required resource of
# s3:GetObjectAttributes (AWS's reference: object or access point), and
# ecr:GetAuthorizationToken takes no resource but "*" (it returns the caller's own registry
# password: that is its job, cloudsplaining calls it credentials exposure).
PARLIAMENT_QUIRKS = {("RESOURCE_MISMATCH", "s3:GetObjectAttributes", "arn:*:s3:*:*:accesspoint/*")}
CLOUDSPLAINING_EXCLUDED = ["ecr:GetAuthorizationToken"]


def lint(identity: Identity, documents: list[dict]) -> list[str]:
    """parliament's and cloudsplaining's findings on ``documents`` (offline), one line each."""
    problems = []
    for doc in documents:
        for finding in parliament.analyze_policy_string(json.dumps(doc)).findings:
            details = finding.detail if isinstance(finding.detail, list) else [finding.detail]
            for detail in details:
                key = (finding.issue, *(detail.values() if isinstance(detail, dict) else [detail]))
                if key not in PARLIAMENT_QUIRKS:
                    problems.append(f"{identity.name}: parliament {finding.issue} {detail} in {identity.policy_file}")
        exclusions = copy.deepcopy(DEFAULT_EXCLUSIONS_CONFIG)
        exclusions["exclude-actions"] = CLOUDSPLAINING_EXCLUDED
        for risk, result in scan_policy(doc, exclusions).items():
            if isinstance(result, dict) and result.get("findings"):
                found = result["findings"]
                problems.append(f"{identity.name}: cloudsplaining {risk} {found} in {identity.policy_file}")
    return problems


def attached(iam, identity: Identity) -> tuple[list[dict], list[dict]]:
    """(the role's inline policies -- ours --, its managed policies' documents) as attached in IAM."""
    ours = []
    for name in iam.list_role_policies(RoleName=identity.role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=identity.role, PolicyName=name)["PolicyDocument"]
        ours.append(json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc)
    managed = []
    for item in iam.list_attached_role_policies(RoleName=identity.role)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=item["PolicyArn"])["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=item["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        managed.append(json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc)
    return ours, managed


def policy_actions(documents: list[dict]) -> set[str]:
    found = set()
    for doc in documents:
        for statement in doc.get("Statement", []):
            actions = statement.get("Action", [])
            found |= {iam_actions.canonical(a) for a in ([actions] if isinstance(actions, str) else actions)}
    return found


def disallowed(
    entries: list[dict], identity: Identity, ours: list[dict], managed: list[dict]
) -> tuple[list[str], set[str]]:
    """(the calls no policy of the identity allows, one line each; the actions of ``ours`` they used)."""
    problems = []
    used: set[str] = set()
    for entry in entries:
        if entry["status"] >= 500:
            continue
        try:
            needs = iam_actions.required(entry)
        except iam_actions.Unmapped as exc:
            problems.append(f"{identity.name}: {exc}")
            continue
        for need in needs:
            context = dict(need.context)
            if iam_eval.allows(ours, need.action, need.resource, context):
                used.add(need.action)
            elif not iam_eval.allows(managed, need.action, need.resource, context):
                problems.append(
                    f"{identity.name}: {entry['source']} {entry['service']} {entry['operation']} needs "
                    f"{need.action} on {need.resource}: not allowed by {identity.policy_file}"
                )
    return sorted(set(problems)), used


def prove(entries: list[dict], identity: Identity, ours: list[dict], managed: list[dict]) -> list[str]:
    """What is wrong, one line each (empty: proven). ``entries``: the identity's calls."""
    problems, used = disallowed(entries, identity, ours, managed)
    for action in sorted(policy_actions(ours)):
        if action == "*" or action.endswith(":*"):
            problems.append(f"{identity.name}: {identity.policy_file} allows {action}: name the actions")
        elif action not in used:
            problems.append(f"{identity.name}: {identity.policy_file} allows {action}, which no call used")
    return sorted(set(problems))


# The CI deployer of environment local signs in as a GitHub Actions job of that environment.
GITHUB_SUB = "repo:mlops-deploy/example:environment:local"


def web_identity_token(sub: str, aud: str = "sts.amazonaws.com") -> str:
    """A token shaped as GitHub's (the sandbox's STS does not check its signature)."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"iss": "https://token.actions.githubusercontent.com", "sub": sub, "aud": aud}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def ci_deployer(aws) -> dict:
    """The CI deployer's session, as a GitHub Actions job of environment local gets it; its
    trust policy (as provision.yml attached it) is evaluated on the job's claims first."""
    iam = aws("iam")
    role = iam.get_role(RoleName="mlops-local-ci-deployer")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(urllib.parse.unquote(trust)) if isinstance(trust, str) else trust
    github = {"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"}
    claims = {
        "token.actions.githubusercontent.com:sub": GITHUB_SUB,
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
    }
    assert iam_eval.trusts(trust, github, "sts:AssumeRoleWithWebIdentity", claims)
    for sub in (
        "repo:mlops-deploy/example:environment:prod",
        "repo:someone/example:environment:local",
        "repo:mlops-deploy/example:ref:refs/heads/main",
    ):
        other = {**claims, "token.actions.githubusercontent.com:sub": sub}
        assert not iam_eval.trusts(trust, github, "sts:AssumeRoleWithWebIdentity", other), sub
    answer = aws("sts").assume_role_with_web_identity(
        RoleArn=role["Arn"], RoleSessionName="github-local-1", WebIdentityToken=web_identity_token(GITHUB_SUB)
    )
    return answer["Credentials"]


def client_as(creds: dict, env: dict, service: str):
    """A boto3 client of the sandbox signed with an STS session's ``creds`` (``Credentials``)."""
    return boto3.client(
        service, endpoint_url=env.get(f"AWS_ENDPOINT_URL_{service.upper()}", env["AWS_ENDPOINT_URL"]),
        region_name=env["AWS_REGION"], aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
    )  # fmt: skip
