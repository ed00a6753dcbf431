"""The CI templates run for real: gitlab-ci-local (shell executor) runs ci/gitlab-ci.yml,
and the GitHub workflow's deploy steps run as its `run:` lines, against the sandbox's
three accounts (dev, staging, prod) and its shared registry (moto's default account).

What the fixtures set up is what an organisation has before its first pipeline: per
environment account, one model server, the release bucket (its policy letting the next
environment's deploy role read the releases: ci/iam/release-bucket-policy.json.j2), the
log group, GitLab's and GitHub's OIDC providers and the CI deploy role (trust and
permissions: the provision role's own roles/provision/templates/iam/ci-deployer-trust.yml.j2
and ci-deployer.yml.j2, rendered with that account's provision_* values -- the one CI
deployer trust and policy, proven here and by test_release_flow); in the registry account,
the repository (its policy letting the three accounts pull: ci/iam/repository-policy.json.j2)
and the role CI pushes with (the same trust template, trusting the default branch;
permissions ci/iam/ci-registry-policy.json.j2). What playbooks/provision.yml will make. The project is a
throw-away git repository holding the model (demo/titanic), the local-dev/-staging/-prod
inventories and the two templates, as a user's repository would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import jinja2
import pytest
import yaml

from mlops_sandbox import envfile
from mlops_sandbox.client import Sandbox

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GITLAB_CI_LOCAL = ROOT / ".build" / "ci-tools" / "node_modules" / ".bin" / "gitlab-ci-local"
ENVS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
PROMOTED_FROM = {"staging": "dev", "prod": "staging"}
GITLAB_HOST = "gitlab.example.com"
GITLAB_PROJECT = "ml/titanic"
GITHUB_REPOSITORY = "acme/titanic"
REPOSITORY = "titanic-api"
ROLE = "mlops-ci-deployer"
REGISTRY_ROLE = "mlops-ci-registry"
# The refs each role trusts (GitLab's `sub` claim: project_path:...:ref_type:...:ref:...).
TRUSTED_REFS = {"dev": ("branch", "main"), "staging": ("tag", "staging-*"), "prod": ("tag", "v*")}


PROVISION_IAM = ROOT / "roles" / "provision" / "templates" / "iam"


def render(name: str, **values) -> str:
    template = (ROOT / "ci" / "iam" / name).read_text()
    return json.dumps(json.loads(jinja2.Template(template, undefined=jinja2.StrictUndefined).render(**values)))


def render_provision(name: str, **values) -> dict:
    """roles/provision/templates/iam/<name>.yml.j2 with these provision_* values."""
    template = jinja2.Template((PROVISION_IAM / f"{name}.yml.j2").read_text(), undefined=jinja2.StrictUndefined)
    return yaml.safe_load(template.render(**values))


def render_deployer(**values) -> dict:
    """roles/provision/templates/iam/ci-deployer.yml.j2 with these provision_* values."""
    return render_provision("ci-deployer", **values)


def deployer_trust(env: str, account: str, gitlab_ref: tuple[str, str], github_subject: str) -> dict:
    """The CI role's trust as provision.yml writes it (ci-deployer-trust.yml.j2) for this
    project: GitLab jobs of ``gitlab_ref`` (ref_type, ref), GitHub jobs of ``github_subject``."""
    return render_provision(
        "ci-deployer-trust",
        provision_env=env,
        provision_account_id=account,
        provision_ci_github={"repository": GITHUB_REPOSITORY, "subjects": [github_subject]},
        provision_ci_gitlab={
            "project_path": GITLAB_PROJECT, "host": GITLAB_HOST, "ref_type": gitlab_ref[0], "ref": gitlab_ref[1],
        },
    )  # fmt: skip


def deployer_policy(env: str, region: str, registry_account: str) -> dict:
    """The CI deployer policy of ``env``'s account: the provision role's template with the
    provision_* values playbooks/provision.yml would give it for inventories/local-<env>."""
    source = PROMOTED_FROM.get(env)
    return render_deployer(
        provision_env=env,
        provision_account_id=ENVS[env],
        provision_region=region,
        provision_bucket=f"mlops-releases-{env}",
        provision_log_group=f"/mlops/deploy/{env}",
        provision_registry_account_id=registry_account,
        provision_repositories=[REPOSITORY],
        provision_promoted_from={"env": source, "bucket": f"mlops-releases-{source}"} if source else {},
        provision_ci_pushes_images=registry_account == ENVS[env],
    )


def id_token(issuer: str, subject: str, **claims) -> str:
    """A JWT shaped as GitLab's or GitHub's ID token (gitlab-ci-local mints none, and moto's
    STS does not check signatures: the sandbox trusts the claims as written)."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    body = {"iss": f"https://{issuer}", "sub": subject, "aud": "sts.amazonaws.com", "iat": now, "exp": now + 3600}
    return ".".join([part({"alg": "RS256", "typ": "JWT", "kid": "sandbox"}), part({**body, **claims}), "c2lnbmF0dXJl"])


class Accounts:
    """boto3 clients per account of the sandbox, as that account's administrator."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.region = env["AWS_REGION"]
        self.shared = env["MLOPS_SANDBOX_ACCOUNT_ID"]
        self._sessions: dict[str, boto3.session.Session] = {}

    def session(self, account: str) -> boto3.session.Session:
        if account not in self._sessions:
            base = boto3.session.Session(
                aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                region_name=self.region,
            )
            creds = base.client("sts", endpoint_url=self.env["AWS_ENDPOINT_URL"]).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/sandbox-admin", RoleSessionName="ci-tests-setup"
            )["Credentials"]
            self._sessions[account] = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=self.region,
            )
        return self._sessions[account]

    def client(self, account: str, service: str):
        endpoint = self.env.get(f"AWS_ENDPOINT_URL_{service.upper()}", self.env["AWS_ENDPOINT_URL"])
        return self.session(account).client(service, endpoint_url=endpoint)

    def history(self, env: str) -> list[dict]:
        ssm = self.client(ENVS[env], "ssm")
        try:
            pages = list(ssm.get_paginator("get_parameter_history").paginate(Name=f"/mlops/{env}/releases/titanic"))
        except ssm.exceptions.ParameterNotFound:
            return []
        return [json.loads(p["Value"]) for page in pages for p in page["Parameters"]]


def _ensure_role(iam, name: str, trust: str, policy: str | None = None) -> None:
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    if policy:
        iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=policy)


def _ensure_oidc(iam, host: str) -> None:
    try:
        iam.create_open_id_connect_provider(
            Url=f"https://{host}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["0" * 40]
        )
    except iam.exceptions.EntityAlreadyExistsException:
        return


def set_up_account(accounts: Accounts, env: str) -> None:
    """What provision.yml makes of an environment's account, as far as CI needs it."""
    account = ENVS[env]
    iam = accounts.client(account, "iam")
    for host in (GITLAB_HOST, "token.actions.githubusercontent.com"):
        _ensure_oidc(iam, host)
    trust = json.dumps(deployer_trust(env, account, TRUSTED_REFS[env], f"environment:{env}"))
    policy = json.dumps(deployer_policy(env, accounts.region, accounts.shared))
    _ensure_role(iam, ROLE, trust, policy)
    s3 = accounts.client(account, "s3")
    bucket = f"mlops-releases-{env}"
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": accounts.region})
    reader = next((later for later, earlier in PROMOTED_FROM.items() if earlier == env), None)
    if reader:  # the next environment's deploy role reads this one's releases
        s3.put_bucket_policy(
            Bucket=bucket,
            Policy=render(
                "release-bucket-policy.json.j2", bucket=bucket, env=env, reader_account=ENVS[reader], reader_role=ROLE
            ),
        )
    logs = accounts.client(account, "logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=f"/mlops/deploy/{env}")


def set_up_registry(accounts: Accounts) -> None:
    account = accounts.shared
    iam = accounts.client(account, "iam")
    for host in (GITLAB_HOST, "token.actions.githubusercontent.com"):
        _ensure_oidc(iam, host)
    trust = json.dumps(deployer_trust("registry", account, ("branch", "main"), "ref:refs/heads/main"))
    policy = render("ci-registry-policy.json.j2", account=account, region=accounts.region, repositories=[REPOSITORY])
    _ensure_role(iam, REGISTRY_ROLE, trust, policy)
    ecr = accounts.client(account, "ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=REPOSITORY)
    ecr.set_repository_policy(
        repositoryName=REPOSITORY,
        policyText=render(
            "repository-policy.json.j2", pull_accounts=list(ENVS.values()), dev_account=ENVS["dev"], deployer_role=ROLE
        ),
    )


class Project:
    """The user's repository: the model, the inventories, the two CI templates."""

    def __init__(self, path: Path, env: dict[str, str], docker_config: Path):
        self.path = path
        self.env = env
        self.docker_config = docker_config

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def variables(self, job_token: str) -> dict[str, str]:
        """The project's CI/CD variables (what Settings > CI/CD > Variables would hold)."""
        return {
            "MLOPS_COLLECTIONS": str(ROOT / ".build" / "collections"),
            "MLOPS_INVENTORY_PATTERN": "inventories/local-{env}",
            "MLOPS_REGISTRY": self.env["MLOPS_SANDBOX_ECR_REGISTRY"],
            "MLOPS_ROLE_ARN_REGISTRY": f"arn:aws:iam::{self.env['MLOPS_SANDBOX_ACCOUNT_ID']}:role/{REGISTRY_ROLE}",
            **{f"MLOPS_ROLE_ARN_{env.upper()}": f"arn:aws:iam::{acct}:role/{ROLE}" for env, acct in ENVS.items()},
            "MLOPS_ID_TOKEN": job_token,
            "MLOPS_TEST_COMMAND": "python3 model/train.py --help >/dev/null",
        }

    def gitlab(self, *args: str, token_ref: tuple[str, str] = ("branch", "main")) -> subprocess.CompletedProcess:
        """gitlab-ci-local with its shell executor; a tag pipeline is ``--variable CI_COMMIT_TAG=...``."""
        token = id_token(
            GITLAB_HOST,
            f"project_path:{GITLAB_PROJECT}:ref_type:{token_ref[0]}:ref:{token_ref[1]}",
            project_path=GITLAB_PROJECT,
            ref_type=token_ref[0],
            ref=token_ref[1],
        )
        argv = [str(GITLAB_CI_LOCAL), "--json-schema-validation=false", "--no-color", "--timestamps"]
        for key, value in self.variables(token).items():
            argv += ["--variable", f"{key}={value}"]
        return subprocess.run(
            [*argv, *args], cwd=self.path, env=self.runner_env(), capture_output=True, text=True, timeout=1500,
            check=False,
        )  # fmt: skip

    def runner_env(self) -> dict[str, str]:
        """What the runner's machine has: tools on PATH, the sandbox's endpoints, no AWS keys."""
        dropped = ("AWS_", "ANSIBLE_", "MLOPS_", "CI_", "GITHUB_")
        keep = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        endpoints = {k: v for k, v in self.env.items() if k.startswith("AWS_") and "KEY" not in k}
        return {
            **keep,
            **endpoints,
            "MLOPS_SANDBOX_ECR_REGISTRY": self.env["MLOPS_SANDBOX_ECR_REGISTRY"],
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DOCKER_CONFIG": str(self.docker_config),
            "DOCKER_BUILDKIT": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PYTHONUNBUFFERED": "1",
        }


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    path = ROOT / ".sandbox" / "env"
    if not path.exists():
        pytest.fail(f"{path} is missing: the sandbox is not up (run `make sandbox-up`)", pytrace=False)
    env = envfile.read(path)
    if "MLOPS_SANDBOX_ECR_REGISTRY" not in env:
        pytest.fail("the sandbox runs no registry (MLOPS_SANDBOX_REGISTRY=0): the pipelines push images", pytrace=False)
    return env


@pytest.fixture(scope="module")
def accounts(sandbox_env) -> Accounts:
    found = Accounts(sandbox_env)
    control = Sandbox(sandbox_env["MLOPS_SANDBOX_CONTROL_URL"])
    for env in ENVS:
        control.ensure_instances("full", 1, "model-server", env, account=env)
        set_up_account(found, env)
    set_up_registry(found)
    return found


@pytest.fixture(scope="module")
def project(sandbox_env, accounts, tmp_path_factory) -> Project:
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: run `make setup` (npm ci of ci/package-lock.json)", pytrace=False)
    path = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "demo" / "titanic", path / "model")
    for env in ENVS:
        shutil.copytree(ROOT / "inventories" / f"local-{env}", path / "inventories" / f"local-{env}")
    shutil.copy(ROOT / "ci" / "gitlab-ci.yml", path / ".gitlab-ci.yml")
    (path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "ci" / "github-workflow.yml", path / ".github" / "workflows" / "mlops-deploy.yml")
    (path / ".gitignore").write_text(".gitlab-ci-local/\n.mlops-release/\n")
    docker_config = tmp_path_factory.mktemp("docker")
    made = Project(path, sandbox_env, docker_config)
    made.git("init", "-q", "-b", "main")
    made.git("config", "user.email", "ci-tests@example.com")
    made.git("config", "user.name", "ci tests")
    made.commit("the Titanic model API and its CI")
    return made
