"""ecr_login against moto's ECR and the sandbox registry, through real ansible-playbook runs.

The registry is the sandbox's docker-registry behind the ECR host name, whose password is
the one moto's token carries; the metadata service is a real HTTP IMDSv2 stand-in
started here. Each test has a docker config directory of its own.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess

import pytest

from .conftest import Playbook, assert_play_ok
from .deploy_support import (
    TEST_LABEL,
    DenyingEcr,
    ImdsServer,
    RegistryClient,
    ecr_credentials,
    ensure_repository,
    make_docker_config,
)


@pytest.fixture(scope="module")
def creds(aws):
    credentials = ecr_credentials(aws("ecr"))
    if credentials["registry"] != "123456789012.dkr.ecr.eu-west-1.amazonaws.com":
        pytest.fail(f"unexpected ECR proxy endpoint {credentials['registry']}", pytrace=False)
    return credentials


@pytest.fixture(scope="module")
def probe_image(aws, creds, tmp_path_factory):
    """A tiny image in the sandbox registry, to prove the stored credentials pull."""
    ensure_repository(aws("ecr"), "mlops-test/login-probe")
    client = RegistryClient(tmp_path_factory.mktemp("probe-docker"), creds)
    client.login()
    ref = client.uri("1", "mlops-test/login-probe")
    subprocess.run(
        ["docker", "import", "--change", f"LABEL {TEST_LABEL}", "-", ref],
        input=b"",
        capture_output=True,
        check=True,
        env=client.env,
    )
    client.docker("push", ref)
    yield ref
    subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True, check=False)


def _forms(creds) -> list[str]:
    pair = f"{creds['user']}:{creds['password']}".encode()
    return [
        creds["password"],
        creds["token"],
        base64.b64encode(pair).decode(),
        base64.b64encode(creds["password"].encode()).decode(),
    ]


def test_login_from_instance_metadata_idempotent_and_silent(playbook, creds, probe_image, tmp_path):
    """The quartet with region and account from IMDSv2, run with -vvv: the token and its
    base64 forms appear nowhere in the whole output, the stored credentials pull."""
    config_dir = make_docker_config(tmp_path / "docker")
    with ImdsServer("eu-west-1", "123456789012") as imds:
        result = playbook.run(
            "ecr_login/login.yml",
            {
                "imds_url": imds.url,
                "docker_config": str(config_dir),
                "registry": creds["registry"],
                "probe_image": probe_image,
            },
            "-vvv",
        )
        assert_play_ok(result)
        # Token first, every time; never a metadata read without one.
        assert imds.httpd.token_requests >= 4
        assert imds.httpd.unauthorized == 0
    output = result.stdout + result.stderr
    assert "AnsiballZ_ecr_login.py" in output  # really -vvv
    assert "invocation:" in output
    for form in _forms(creds):
        assert form not in output, "a form of the ECR token appears in the -vvv output"
    stored = json.loads((config_dir / "config.json").read_text())
    assert stored["auths"][creds["registry"]]["auth"] == creds["token"]
    assert stat.S_IMODE(os.stat(config_dir / "config.json").st_mode) == 0o600


def test_rejected_credentials_are_replaced_and_other_settings_kept(playbook, creds, tmp_path):
    config_dir = make_docker_config(tmp_path / "docker")
    wrong = base64.b64encode(b"AWS:an-expired-token").decode()
    before = {
        "auths": {
            f"https://{creds['registry']}": {"auth": wrong},
            "registry.example.internal:5000": {"auth": base64.b64encode(b"u:p").decode()},
        },
        "HttpHeaders": {"User-Agent": "mlops-test"},
        "credHelpers": {"other.example": "ecr-login"},
    }
    (config_dir / "config.json").write_text(json.dumps(before))
    result = playbook.run(
        "ecr_login/existing.yml",
        {
            "docker_config": str(config_dir),
            "registry": creds["registry"],
            "expect_state": "replaced",
            "expect_store": "file",
            "expect_changed": True,
        },
    )
    assert_play_ok(result)
    after = json.loads((config_dir / "config.json").read_text())
    # One entry for the registry (the old https:// spelling replaced), the rest untouched.
    assert after["auths"] == {
        creds["registry"]: {"auth": creds["token"]},
        "registry.example.internal:5000": before["auths"]["registry.example.internal:5000"],
    }
    assert after["HttpHeaders"] == before["HttpHeaders"]
    assert after["credHelpers"] == before["credHelpers"]


@pytest.mark.parametrize("registry_known", [False, True])
def test_ecr_login_credential_helper_means_nothing_to_do(playbook, creds, tmp_path, registry_known):
    """Unknown account: the token is asked for, then the helper found in charge. Known
    account: ECR is not even asked (its endpoint here refuses every call)."""
    config_dir = make_docker_config(tmp_path / "docker")
    path = config_dir / "config.json"
    path.write_text(json.dumps({"credHelpers": {creds["registry"]: "ecr-login"}}))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    extra = {}
    with DenyingEcr() as denying:
        if registry_known:
            extra = {"registry_ids": ["123456789012"], "ecr_endpoint": denying.url}
        result = playbook.run(
            "ecr_login/existing.yml",
            {
                "docker_config": str(config_dir),
                "registry": creds["registry"],
                "expect_state": "helper",
                "expect_store": "ecr-login",
                "expect_changed": False,
                **extra,
            },
        )
    assert_play_ok(result)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


HELPER = """#!{python}
# A file-backed docker credential helper speaking docker's protocol (get/store/erase/list).
import json, sys
STORE = {store!r}
try:
    data = json.load(open(STORE))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
if action == "get":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": server, **data[server]}}))
elif action == "store":
    item = json.load(sys.stdin)
    data[item["ServerURL"]] = {{"Username": item["Username"], "Secret": item["Secret"]}}
    json.dump(data, open(STORE, "w"))
else:
    sys.exit(2)
"""


def test_other_credential_store_is_used_like_docker_login_does(creds, aws_env, tmp_path):
    """credsStore names a helper: the secret goes to it, config.json keeps an empty entry."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-mlopstest"
    helper.write_text(HELPER.format(python=subprocess.sys.executable, store=str(store)))
    helper.chmod(0o755)
    config_dir = make_docker_config(tmp_path / "docker")
    (config_dir / "config.json").write_text(json.dumps({"credsStore": "mlopstest"}))
    runner = Playbook(aws_env)
    runner.env["PATH"] = f"{bindir}{os.pathsep}{runner.env['PATH']}"
    result = runner.run(
        "ecr_login/existing.yml",
        {
            "docker_config": str(config_dir),
            "registry": creds["registry"],
            "expect_state": "stored",
            "expect_store": "mlopstest",
            "expect_changed": True,
        },
    )
    assert_play_ok(result)
    assert json.loads(store.read_text()) == {
        creds["registry"]: {"Username": creds["user"], "Secret": creds["password"]}
    }
    after = json.loads((config_dir / "config.json").read_text())
    assert after == {"credsStore": "mlopstest", "auths": {creds["registry"]: {}}}


def test_bad_inputs_fail_clearly_and_change_nothing(playbook, tmp_path):
    config_dir = make_docker_config(tmp_path / "docker")
    path = config_dir / "config.json"
    path.write_text(json.dumps({"auths": {}}))
    broken = make_docker_config(tmp_path / "broken")
    (broken / "config.json").write_text('{"auths": {')
    before = path.read_bytes()
    with ImdsServer("eu-west-1", "123456789012", silent_token=True) as silent, DenyingEcr() as denying:
        result = playbook.run(
            "ecr_login/bad_input.yml",
            {
                "docker_config": str(config_dir),
                "silent_imds_url": silent.url,
                "denying_ecr_url": denying.url,
                "broken_config": str(broken),
            },
        )
        assert silent.httpd.token_requests >= 1
    assert_play_ok(result)
    assert path.read_bytes() == before
    assert (broken / "config.json").read_text() == '{"auths": {'
