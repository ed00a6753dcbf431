"""The CI templates end to end against the sandbox's three accounts, in file order:

1. a default-branch pipeline (GitLab): test, build and push to the shared registry,
   deploy dev: a new release, marked promotable for its commit;
2. the GitHub workflow's deploy-dev job, its `run:` steps as the runner runs them (the
   shared script): the same commit gives the same release, nothing changes;
3. a `staging-*` tag: staging gets the release dev ran, copied from dev's bucket;
4. a `v*` tag: the prod job is manual and does nothing until started; started, prod gets
   the release staging ran, copied from staging's bucket, and pulls by digest from the
   shared registry; every account's history shows the same release id;
5. a tag matching no pattern: no pipeline, nothing deployed;
6. a broken model on the default branch: deploy dev fails, the job log holds the short
   failure block with the failing instance's CloudWatch lines, the job and the pipeline
   fail, dev stays on the release.

test_9 reads each role's trust as attached (the provision role's ci-deployer-trust.yml.j2):
it takes the tokens of the jobs that deploy it, with the audience the templates ask for,
and no other ref, project or audience.

Every AWS call these make is in the sandbox's call log, per identity; the module ends by
writing them to .build/test-logs/ci-calls.json, and test_8 proves them: each account's CI
deployer against the provision role's ci-deployer.yml.j2 as attached, the registry role
against ci/iam/ci-registry-policy.json.j2.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request

import pytest
import yaml
from integration.iam_proof import Identity, attached, disallowed, lint, policy_actions

from mlops_sandbox import calls, iam_eval
from mlops_sandbox.config import Config

from .conftest import (
    ENVS,
    GITHUB_REPOSITORY,
    GITLAB_HOST,
    GITLAB_PROJECT,
    REGISTRY_ROLE,
    ROLE,
    ROOT,
    Accounts,
    Project,
    id_token,
    render_deployer,
)

pytestmark = pytest.mark.timeout(1800)
JACK = {"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0, "Fare": 7.25, "Embarked": "S"}


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, output(result)[-10000:]


def ran_jobs(result: subprocess.CompletedProcess, outcome: str = "PASS|FAIL") -> list[str]:
    """The jobs gitlab-ci-local reports as passed or failed (``outcome``: PASS, FAIL or both)."""
    return re.findall(rf"^\s*(?:{outcome})\s+(?:\[[^\]]*\]\s+)?(\S+)", output(result), re.MULTILINE)


def instance_of(accounts: Accounts, env: str) -> dict:
    ec2 = accounts.client(ENVS[env], "ec2")
    reservations = ec2.describe_instances(
        Filters=[{"Name": "tag:env", "Values": [env]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )["Reservations"]
    found = [i for r in reservations for i in r["Instances"]]
    assert len(found) == 1, found
    return found[0]


def answer(accounts: Accounts, env: str, path: str = "/health", body: dict | None = None) -> dict:
    ip = instance_of(accounts, env)["PrivateIpAddress"]
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(f"http://{ip}:8080{path}", data=data), timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def run(project: Project, accounts: Accounts):
    """What the scenarios learn from each other, and the start of the call log they make."""
    state = {"since": time.time(), "before": {env: len(accounts.history(env)) for env in ENVS}}
    yield state
    # Every AWS call the pipelines made, per identity (the CI roles, the instances).
    config = Config()
    seen: dict[str, set[str]] = {}
    for entry in calls.read(config, since=state["since"]):
        who = entry.get("principal") or f"unknown key ({entry.get('source')})"
        seen.setdefault(who, set()).add(f"{entry['service']}:{entry['operation']}")
    out = ROOT / ".build" / "test-logs" / "ci-calls.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({who: sorted(ops) for who, ops in sorted(seen.items())}, indent=2) + "\n")


def test_1_default_branch_pipeline_deploys_dev(project, accounts, run):
    result = project.gitlab()
    assert_ok(result)
    assert sorted(ran_jobs(result)) == ["build", "deploy-dev", "test"], output(result)[-4000:]
    text = output(result)
    assert f"acting as arn:aws:sts::{ENVS['dev']}:assumed-role/mlops-ci-deployer/" in text
    assert "acting as arn:aws:sts::" + accounts.shared + ":assumed-role/mlops-ci-registry/" in text
    history = accounts.history("dev")
    assert len(history) == run["before"]["dev"] + 1
    record = history[-1]
    assert record["result"] == "success"
    commit = project.git("rev-parse", "HEAD")
    pointer = json.loads(
        accounts.client(ENVS["dev"], "s3")
        .get_object(Bucket="mlops-releases-dev", Key=f"releases/dev/commits/{commit}.json")["Body"]
        .read()
    )
    assert pointer["release_id"] == record["release_id"]
    assert answer(accounts, "dev", "/predict", JACK)["prediction"] == 0
    run.update(release=record["release_id"], digests=record["digests"], commit=commit)
    assert record["digests"]["api"].startswith(project.env["MLOPS_SANDBOX_ECR_REGISTRY"] + "/titanic-api@sha256:")


def github_job_steps(project: Project, job: str, context: dict[str, str]) -> tuple[dict[str, str], list[dict]]:
    """A job of the workflow: its env (expressions of ``context`` filled in) and its steps."""
    workflow = yaml.safe_load((project.path / ".github" / "workflows" / "mlops-deploy.yml").read_text())

    def fill(value: str) -> str:
        def one(match: re.Match) -> str:
            expression = match.group(1).strip()
            if expression not in context:
                raise AssertionError(f"the test does not know the expression {expression!r} of job {job}")
            return context[expression]

        return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))

    spec = workflow["jobs"][job]
    env = {k: fill(v) for k, v in {**workflow.get("env", {}), **spec.get("env", {})}.items()}
    return env, spec["steps"]


def test_2_github_deploy_steps_run_the_same_release(project, accounts, run):
    repo_vars = project.variables("")
    context = {
        "vars.MLOPS_ROLE_ARN_DEV": repo_vars["MLOPS_ROLE_ARN_DEV"],
        "vars.MLOPS_ROLE_ARN_REGISTRY": repo_vars["MLOPS_ROLE_ARN_REGISTRY"],
    }
    env, steps = github_job_steps(project, "deploy-dev", context)
    runs = {step.get("id"): step["run"] for step in steps if "run" in step}
    assert set(runs) == {"tools", "collection", "deploy"}
    # The runner: GitHub's variables, the OIDC token endpoint (answered by the test with a
    # token of GitHub's claims for environment dev), the repository's settings.
    token = id_token("token.actions.githubusercontent.com", "repo:acme/titanic:environment:dev", environment="dev")
    server, url = token_endpoint(token)
    try:
        step_env = {
            **project.runner_env(),
            **env,
            "MLOPS_COLLECTIONS": repo_vars["MLOPS_COLLECTIONS"],
            "ANSIBLE_COLLECTIONS_PATH": repo_vars["MLOPS_COLLECTIONS"],
            "MLOPS_INVENTORY_PATTERN": repo_vars["MLOPS_INVENTORY_PATTERN"],
            "MLOPS_REGISTRY": repo_vars["MLOPS_REGISTRY"],
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": run["commit"],
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_ACTOR": "octocat",
            "ACTIONS_ID_TOKEN_REQUEST_URL": url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runtime-token",
        }
        results = {}
        # `tools` installs requirements-ci.txt; this machine's .venv already holds them.
        for step in ("collection", "deploy"):
            results[step] = subprocess.run(
                ["bash", "-e", "-c", runs[step]], cwd=project.path, env=step_env, capture_output=True, text=True,
                timeout=1200, check=False,
            )  # fmt: skip
            assert_ok(results[step])
    finally:
        server.shutdown()
    text = output(results["deploy"])
    assert "acting as arn:aws:sts::" + ENVS["dev"] + ":assumed-role/mlops-ci-deployer/mlops-ci-dev-4242" in text
    assert "nothing changed on any of the 1 instance(s)" in text
    # The same release again: no new record (release_record keeps one per release run that changed).
    assert accounts.history("dev")[-1]["release_id"] == run["release"]
    assert f"Release {run['release']}" in text or run["release"] in text


def token_endpoint(token: str):
    """GitHub's OIDC token request endpoint, answered locally (a thread, stopped by the caller)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_GET(self):  # noqa: N802
            authorised = self.headers.get("Authorization") == "Bearer runtime-token"
            ok = authorised and "audience=sts.amazonaws.com" in self.path
            body = json.dumps({"value": token} if ok else {"message": "bad request"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/token?api-version=2.0"


def tag_pipeline(project: Project, tag: str, *args: str) -> subprocess.CompletedProcess:
    return project.gitlab(
        "--variable", f"CI_COMMIT_TAG={tag}", "--variable", f"CI_COMMIT_REF_NAME={tag}",
        "--unset-variable", "CI_COMMIT_BRANCH", *args, token_ref=("tag", tag),
    )  # fmt: skip


def test_3_staging_tag_promotes_the_release_dev_ran(project, accounts, run):
    project.git("tag", "staging-1")
    result = tag_pipeline(project, "staging-1")
    assert_ok(result)
    assert ran_jobs(result) == ["promote-staging"]
    text = output(result)
    assert "Promote release " + run["release"] in text
    assert "Build this collection" not in text  # nothing rebuilt
    record = accounts.history("staging")[-1]
    assert (record["release_id"], record["result"]) == (run["release"], "success")
    assert record["digests"] == run["digests"]
    assert answer(accounts, "staging", "/predict", JACK)["prediction"] == 0


def test_4_prod_tag_waits_for_its_manual_job_then_promotes(project, accounts, run):
    project.git("tag", "v1.0.0")
    before = len(accounts.history("prod"))
    waiting = tag_pipeline(project, "v1.0.0")
    assert_ok(waiting)
    assert ran_jobs(waiting) == []  # promote-prod is manual: nothing ran
    assert len(accounts.history("prod")) == before
    result = tag_pipeline(project, "v1.0.0", "--manual", "promote-prod")
    assert_ok(result)
    assert ran_jobs(result) == ["promote-prod"]
    assert f"acting as arn:aws:sts::{ENVS['prod']}:assumed-role/mlops-ci-deployer/" in output(result)
    ids = {env: accounts.history(env)[-1]["release_id"] for env in ENVS}
    assert ids == dict.fromkeys(ENVS, run["release"])
    prod = accounts.history("prod")[-1]
    assert prod["digests"] == run["digests"]
    # The bundle prod ran is staging's, byte for byte, in prod's own bucket.
    key = "releases/{}/" + run["release"] + ".zip"
    prod_object = accounts.client(ENVS["prod"], "s3").head_object(Bucket="mlops-releases-prod", Key=key.format("prod"))
    staging_object = accounts.client(ENVS["staging"], "s3").head_object(
        Bucket="mlops-releases-staging", Key=key.format("staging")
    )
    assert prod_object["Metadata"]["sha256"] == staging_object["Metadata"]["sha256"]
    # Pulled by digest from the shared registry: the container runs the pinned image.
    container = f"mlops-sb-{project.env['MLOPS_SANDBOX_NAME']}-{instance_of(accounts, 'prod')['InstanceId']}"
    # The endpoint's running api container, whichever colour is live (blue/green).
    image = subprocess.run(
        ["docker", "exec", container, "sh", "-c",
         "docker ps -q --filter label=com.docker.compose.service=api --filter name=titanic"
         " | xargs -r docker inspect --format '{{.Config.Image}}'"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert image == [run["digests"]["api"]], f"the running api container(s) of titanic on prod: {image}"
    image = image[0]
    assert image.startswith(f"{accounts.shared}.dkr.ecr.")


def test_5_a_tag_of_no_pattern_deploys_nothing(project, accounts, run):
    project.git("tag", "nightly-1")
    before = {env: len(accounts.history(env)) for env in ENVS}
    result = tag_pipeline(project, "nightly-1")
    assert_ok(result)
    assert ran_jobs(result) == []
    assert {env: len(accounts.history(env)) for env in ENVS} == before


def test_6_a_failing_deploy_shows_the_instances_logs_and_fails(project, accounts, run):
    model = project.path / "model" / "model" / "model.json"
    original = model.read_text()
    model.write_text('{"version": "broken"}\n')
    try:
        project.commit("a model that does not load")
        result = project.gitlab()
    finally:
        model.write_text(original)
        project.commit("the model back")
    text = output(result)
    assert result.returncode != 0, text[-6000:]
    assert ran_jobs(result, "FAIL") == ["deploy-dev"], text[-6000:]
    assert sorted(ran_jobs(result, "PASS")) == ["build", "test"], text[-6000:]
    # The short failure block (mlops.deploy.rollout_report): reason first, then the instance.
    head = r"Release r-[0-9a-f]{12} of titanic failed in dev at batch 1/\d+( \(the canary\))?: 1 of 1 instance failed\."
    assert re.search(head, text), text[-6000:]
    assert "did not load" in text  # the failing container's own line, from the instance's CloudWatch stream
    assert f" back on {run['release']}." in text  # "Rolled back: <instance> back on <release>."
    assert accounts.history("dev")[-1]["result"] == "failed"
    assert answer(accounts, "dev")["model_version"] == "titanic-logreg-1"


def test_7_the_calls_of_each_identity_are_logged(run):
    """The call log knows who made each call of the pipelines (for the IAM policies)."""
    config = Config()
    principals = {e.get("principal") for e in calls.read(config, since=run["since"])}
    for env, account in ENVS.items():
        role = f"arn:aws:sts::{account}:assumed-role/mlops-ci-deployer/"
        assert any(p and p.startswith(role) for p in principals), env
    assert any(p and ":assumed-role/mlops-ci-registry/" in p for p in principals)


def test_8_iam_proof_of_the_ci_roles(accounts, run):
    """Per account, the CI deployer's calls are all allowed by the policy it has (the provision
    role's template, rendered for that account), and the registry role's by its own. An action
    the pipelines leave unused must be one the release e2e proves used (test_release_flow
    test_10 runs the same template for inventories/local): nothing is allowed that nobody uses."""
    entries = calls.read(Config(), since=run["since"])
    # What test_10 proves used: the template rendered as for inventories/local (one account).
    e2e = policy_actions([render_deployer(
        provision_env="local", provision_account_id=accounts.shared, provision_region=accounts.region,
        provision_bucket="b", provision_log_group="g", provision_registry_account_id=accounts.shared,
        provision_repositories=["r"], provision_promoted_from={}, provision_ci_pushes_images=True,
    )])  # fmt: skip
    problems, report = [], []
    for env, account in ENVS.items():
        identity = Identity(f"ci-deployer ({env})", ROLE, f"ci-deployer.yml.j2 ({env})", "tests/ci/test_pipelines.py")
        prefix = f"arn:aws:sts::{account}:assumed-role/{ROLE}/"
        mine = [e for e in entries if (e.get("principal") or "").startswith(prefix)]
        assert mine, f"the {env} deployer made no call"
        ours, managed = attached(accounts.client(account, "iam"), identity)
        found, used = disallowed(mine, identity, ours, managed)
        unused = policy_actions(ours) - used
        problems += found + lint(identity, ours)
        problems += [f"{identity.name}: allows {a}, which neither the pipelines nor the release e2e use"
                     for a in sorted(unused - e2e)]  # fmt: skip
        report.append(f"{env}: {len(mine)} calls, {len(used)} actions used, unused here (the release e2e's): "
                      f"{', '.join(sorted(unused)) or 'none'}")  # fmt: skip
    registry = Identity("ci-registry", REGISTRY_ROLE, "ci/iam/ci-registry-policy.json.j2", "tests/ci/test_pipelines.py")
    prefix = f"arn:aws:sts::{accounts.shared}:assumed-role/{REGISTRY_ROLE}/"
    mine = [e for e in entries if (e.get("principal") or "").startswith(prefix)]
    assert mine, "the registry role made no call"
    ours, managed = attached(accounts.client(accounts.shared, "iam"), registry)
    found, used = disallowed(mine, registry, ours, managed)
    problems += found + lint(registry, ours)
    # The layer uploads happen only for layers the registry does not hold yet (a second run
    # of the layer pushes none): unused ones are printed, not failed.
    unused = ", ".join(sorted(policy_actions(ours) - used)) or "none"
    report.append(f"registry: {len(mine)} calls, unused this run: {unused}")
    print("CI IAM proof:\n  " + "\n  ".join(report))
    assert not problems, "CI IAM proof failed:\n" + "\n".join(problems)


def test_9_each_role_trusts_the_jobs_that_deploy_it_and_no_other(accounts):
    """The trust provision.yml writes takes the ID tokens the shipped templates ask for (their
    audience, the sub of the ref that deploys the environment) and refuses the others."""
    gitlab_aud = yaml.safe_load((ROOT / "ci" / "gitlab-ci.yml").read_text())[".mlops-aws"]["id_tokens"]
    gitlab_aud = gitlab_aud["MLOPS_ID_TOKEN"]["aud"]
    github_aud = re.search(r'"MLOPS_OIDC_AUDIENCE", "([^"]+)"', (ROOT / "ci" / "mlops-ci.sh").read_text()).group(1)
    github = "token.actions.githubusercontent.com"

    def gitlab_job(project: str, ref_type: str, ref: str, aud: str = gitlab_aud):
        claims = {
            f"{GITLAB_HOST}:sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
            f"{GITLAB_HOST}:aud": aud,
        }
        return GITLAB_HOST, claims

    def github_job(subject: str, aud: str = github_aud):
        return github, {f"{github}:sub": f"repo:{subject}", f"{github}:aud": aud}

    mine, other = GITLAB_PROJECT, "someone/titanic"
    repo = GITHUB_REPOSITORY
    cases = {  # account: (role, the jobs it trusts, jobs it must refuse)
        "dev": (ROLE, [gitlab_job(mine, "branch", "main"), github_job(f"{repo}:environment:dev")],
                [gitlab_job(mine, "branch", "feature-x"), gitlab_job(other, "branch", "main"),
                 gitlab_job(mine, "branch", "main", aud="https://gitlab.com"), github_job(f"{repo}:environment:prod"),
                 github_job("someone/titanic:environment:dev"), github_job(f"{repo}:ref:refs/heads/main")]),
        "staging": (ROLE, [gitlab_job(mine, "tag", "staging-3"), github_job(f"{repo}:environment:staging")],
                    [gitlab_job(mine, "branch", "main"), gitlab_job(mine, "tag", "v1.2.0"),
                     github_job(f"{repo}:environment:dev")]),
        "prod": (ROLE, [gitlab_job(mine, "tag", "v1.2.0"), github_job(f"{repo}:environment:prod")],
                 [gitlab_job(mine, "tag", "staging-3"), gitlab_job(mine, "branch", "main"),
                  gitlab_job(mine, "tag", "v1.2.0", aud="sts.example.com"), github_job(f"{repo}:environment:staging")]),
        "registry": (REGISTRY_ROLE, [gitlab_job(mine, "branch", "main"), github_job(f"{repo}:ref:refs/heads/main")],
                     [gitlab_job(mine, "tag", "v1.2.0"), github_job(f"{repo}:environment:prod")]),
    }  # fmt: skip
    wrong = []
    for env, (role, trusted, refused) in cases.items():
        account = accounts.shared if env == "registry" else ENVS[env]
        trust = accounts.client(account, "iam").get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        for jobs, expected in ((trusted, True), (refused, False)):
            for host, claims in jobs:
                provider = {"Federated": f"arn:aws:iam::{account}:oidc-provider/{host}"}
                if iam_eval.trusts(trust, provider, "sts:AssumeRoleWithWebIdentity", claims) is not expected:
                    wrong.append(f"{env} ({role}) {'refuses' if expected else 'trusts'} {claims}")
    assert not wrong, "\n".join(wrong)
