"""Pure parts of ecr_login: IMDS settings and documents, tokens, docker config handling,
the login decision. The metadata service used here is a real local HTTP server
(integration/deploy_support.ImdsServer); the registry's answer is a plain function."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime

import pytest
from integration.deploy_support import ImdsServer

from ansible_collections.mlops.deploy.plugins.module_utils import _ecr as e

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
# GetAuthorizationToken's answer as moto (and, in shape, AWS) gives it.
MOTO_AUTH = {
    "authorizationData": [
        {
            "authorizationToken": "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu",
            "expiresAt": datetime(2015, 1, 1, tzinfo=UTC),
            "proxyEndpoint": f"https://{HOST}",
        }
    ]
}
IDENTITY_DOCUMENT = """{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "eu-west-1b",
  "imageId" : "ami-0a7d051a1c4b54f65",
  "instanceId" : "i-0123456789abcdef0",
  "instanceType" : "g5.xlarge",
  "pendingTime" : "2026-11-20T08:12:45Z",
  "privateIp" : "10.0.12.34",
  "region" : "eu-west-1",
  "version" : "2017-09-30"
}"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------- IMDS


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"disabled": False, "endpoint": "http://169.254.169.254/", "timeout": 1.0, "attempts": 1}),
        (
            {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1338", "AWS_METADATA_SERVICE_TIMEOUT": "0.5"},
            {"disabled": False, "endpoint": "http://127.0.0.1:1338/", "timeout": 0.5, "attempts": 1},
        ),
        (
            {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "3"},
            {"disabled": False, "endpoint": "http://[fd00:ec2::254]/", "timeout": 1.0, "attempts": 3},
        ),
        ({"AWS_EC2_METADATA_DISABLED": "true"}, {"disabled": True}),
        ({"AWS_EC2_METADATA_DISABLED": "TRUE "}, {"disabled": True}),
        ({"AWS_EC2_METADATA_DISABLED": "false"}, {"disabled": False}),
    ],
)
def test_imds_settings_follow_botocores_variables(environ, expected):
    settings = e.imds_settings(environ)
    assert {k: settings[k] for k in expected} == expected


def test_imds_settings_refuse_a_timeout_that_is_not_a_number():
    with pytest.raises(e.EcrLoginError, match="must be numbers"):
        e.imds_settings({"AWS_METADATA_SERVICE_TIMEOUT": "soon"})


def test_identity_document_gives_region_and_account():
    assert e.parse_identity_document(IDENTITY_DOCUMENT) == {"region": "eu-west-1", "account_id": "123456789012"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>captive portal</html>", "is not JSON"),
        ('{"instanceId": "i-1"}', "has no region or accountId"),
        ("[]", "has no region or accountId"),
    ],
)
def test_identity_document_problems(text, message):
    with pytest.raises(e.EcrLoginError, match=message):
        e.parse_identity_document(text)


def test_imds_identity_from_a_real_imdsv2_server():
    with ImdsServer("eu-central-1", "210987654321") as imds:
        settings = e.imds_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        identity, note = e.imds_identity(settings)
        assert imds.httpd.token_requests == 1
        assert imds.httpd.unauthorized == 0
    assert identity == {"region": "eu-central-1", "account_id": "210987654321"}
    assert "IMDSv2" in note


def test_imds_identity_without_a_token_answer_names_the_hop_limit():
    with ImdsServer("eu-west-1", "123456789012", silent_token=True) as imds:
        settings = e.imds_settings(
            {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_METADATA_SERVICE_TIMEOUT": "0.2"}
        )
        identity, note = e.imds_identity(settings)
        assert imds.httpd.unauthorized == 0  # never fell back to IMDSv1
    assert identity is None
    assert "no IMDSv2 token" in note
    assert "hop limit (HttpPutResponseHopLimit) is 1 and must be 2 or more" in note


def test_imds_identity_when_disabled_asks_nothing():
    identity, note = e.imds_identity({"disabled": True}, open_url=None)
    assert identity is None
    assert "AWS_EC2_METADATA_DISABLED" in note


def test_imds_identity_when_nothing_listens():
    settings = e.imds_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"})
    identity, note = e.imds_identity(settings)
    assert identity is None
    assert "http://127.0.0.1:9/" in note


IMDS_EU = {"region": "eu-west-1", "account_id": "123"}


@pytest.mark.parametrize(
    ("region", "ids", "imds", "fallback", "expected"),
    [
        ("eu-west-3", ["111111111111"], None, None, ("eu-west-3", "argument", "111111111111", "argument")),
        (None, [], (IMDS_EU, "ok"), None, ("eu-west-1", "instance metadata", "123", "instance metadata")),
        ("us-east-2", [], (IMDS_EU, "ok"), None, ("us-east-2", "argument", "123", "instance metadata")),
        (None, [], (None, "not on EC2"), "ap-south-1", ("ap-south-1", "aws configuration", None, None)),
    ],
)  # fmt: skip
def test_resolve_location_order(region, ids, imds, fallback, expected):
    def ask_imds():
        assert imds is not None, "the metadata service must not be asked when arguments suffice"
        return imds

    location = e.resolve_location(region, ids, ask_imds, lambda: fallback)
    assert (
        location["region"],
        location["region_source"],
        location["account_id"],
        location["account_source"],
    ) == expected


def test_resolve_location_without_any_region_says_where_to_put_one():
    with pytest.raises(e.EcrLoginError) as err:
        e.resolve_location(None, [], lambda: (None, "no IMDSv2 token (hop limit ...)"), lambda: None)
    assert "no AWS region: pass region (or set AWS_REGION)" in str(err.value)
    assert "no IMDSv2 token (hop limit ...)" in str(err.value)


@pytest.mark.parametrize(
    ("account", "region", "host"),
    [
        ("123456789012", "eu-west-1", HOST),
        ("123456789012", "cn-north-1", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_ecr_host(account, region, host):
    assert e.ecr_host(account, region) == host


# --------------------------------------------------------------------------- tokens


def test_authorization_entries_from_moto_shaped_answer():
    [entry] = e.authorization_entries(MOTO_AUTH["authorizationData"])
    assert entry == {
        "registry": HOST,
        "proxy_endpoint": f"https://{HOST}",
        "expires_at": "2015-01-01T00:00:00Z",
        "user": "AWS",
        "secret": "123456789012-auth-token",
    }


@pytest.mark.parametrize("token", ["not base64 at all!", b64("no-colon"), b64(":nouser"), b64("AWS:")])
def test_bad_tokens_are_refused_without_echoing_them(token):
    with pytest.raises(e.EcrLoginError) as err:
        e.decode_token(token)
    assert token not in str(err.value)


def test_no_authorization_data_is_an_error():
    with pytest.raises(e.EcrLoginError, match="no authorization data"):
        e.authorization_entries([])


def test_secret_forms_cover_the_token_spellings():
    forms = e.secret_forms("AWS", "123456789012-auth-token")
    assert MOTO_AUTH["authorizationData"][0]["authorizationToken"] in forms
    assert "123456789012-auth-token" in forms
    assert b64("123456789012-auth-token") in forms


@pytest.mark.parametrize(
    ("key", "host"),
    [
        (HOST, HOST),
        (f"https://{HOST}", HOST),
        (f"https://{HOST}/v1/", HOST),
        ("http://registry.local:5000", "registry.local:5000"),
        ("Registry.Local:5000/", "registry.local:5000"),
    ],
)
def test_hostname(key, host):
    assert e.hostname(key) == host


# --------------------------------------------------------------------------- docker config


@pytest.mark.parametrize(
    ("config", "route"),
    [
        ({}, ("file", None)),
        ({"auths": {HOST: {}}}, ("file", None)),
        ({"credsStore": "pass"}, ("helper", "pass")),
        ({"credHelpers": {HOST: "ecr-login"}}, ("helper", "ecr-login")),
        ({"credHelpers": {f"https://{HOST}": "ecr-login"}, "credsStore": "pass"}, ("helper", "ecr-login")),
        ({"credHelpers": {"other.example": "ecr-login"}, "credsStore": "desktop"}, ("helper", "desktop")),
        ({"credHelpers": {"other.example": "ecr-login"}}, ("file", None)),
    ],
)
def test_credential_route_follows_dockers_precedence(config, route):
    assert e.credential_route(config, HOST) == route


@pytest.mark.parametrize(
    ("auths", "expected"),
    [
        ({HOST: {"auth": b64("AWS:secret")}}, ("AWS", "secret")),
        ({f"https://{HOST}": {"auth": b64("AWS:a:b")}}, ("AWS", "a:b")),
        ({HOST: {"username": "AWS", "password": "pw"}}, ("AWS", "pw")),
        ({HOST: {}}, None),
        ({"other.example": {"auth": b64("u:p")}}, None),
        ({HOST: {"auth": "%%%"}}, None),
    ],
)
def test_file_credentials(auths, expected):
    assert e.file_credentials({"auths": auths}, HOST) == expected


def test_with_file_credentials_replaces_every_spelling_and_keeps_the_rest():
    config = {
        "auths": {f"https://{HOST}": {"auth": "old"}, HOST: {"auth": "older"}, "other.example": {"auth": "x"}},
        "credHelpers": {"other.example": "ecr-login"},
    }
    new = e.with_file_credentials(config, HOST, "AWS", "fresh")
    assert new["auths"] == {"other.example": {"auth": "x"}, HOST: {"auth": b64("AWS:fresh")}}
    assert new["credHelpers"] == config["credHelpers"]
    assert config["auths"][HOST] == {"auth": "older"}  # the input is not modified


def test_with_helper_marker_adds_an_empty_entry_once():
    config = {"credsStore": "pass"}
    marked = e.with_helper_marker(config, HOST)
    assert marked == {"credsStore": "pass", "auths": {HOST: {}}}
    assert e.with_helper_marker(marked, HOST) is marked


def test_docker_config_dir(tmp_path):
    assert e.docker_config_dir(str(tmp_path), {"DOCKER_CONFIG": "/elsewhere"}) == str(tmp_path)
    assert e.docker_config_dir(None, {"DOCKER_CONFIG": "/elsewhere"}) == "/elsewhere"
    assert e.docker_config_dir(None, {}) == os.path.join(os.path.expanduser("~"), ".docker")


def test_load_docker_config(tmp_path):
    path = tmp_path / "config.json"
    assert e.load_docker_config(str(path)) == {}
    path.write_text("")
    assert e.load_docker_config(str(path)) == {}
    path.write_text('{"auths": {}}')
    assert e.load_docker_config(str(path)) == {"auths": {}}
    path.write_text("[1, 2]")
    with pytest.raises(e.EcrLoginError, match="not a JSON object"):
        e.load_docker_config(str(path))
    path.write_text("{")
    with pytest.raises(e.EcrLoginError, match="is not valid JSON .*fix or remove it"):
        e.load_docker_config(str(path))


def test_write_docker_config_is_private_and_atomic(tmp_path):
    target = tmp_path / "new" / "config.json"
    e.write_docker_config(str(target), {"auths": {HOST: {"auth": "x"}}})
    assert json.loads(target.read_text()) == {"auths": {HOST: {"auth": "x"}}}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["config.json"]  # no temporary left


# --------------------------------------------------------------------------- the login decision

NEW, OLD, EXPIRED = "tok-new-9f2", "tok-old-3c1", "tok-expired-7aa"
FRESH = {"registry": HOST, "expires_at": "2026-11-22T10:00:00Z", "user": "AWS", "secret": NEW}


def registry(accepted):
    """A registry that accepts exactly the secrets in ``accepted``; counts the questions."""
    asked = []

    def accepts(host, user, secret):
        asked.append((host, user, secret))
        return secret in accepted

    accepts.asked = asked
    return accepts


def write(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))


def read(tmp_path):
    return json.loads((tmp_path / "config.json").read_text())


@pytest.mark.parametrize(
    ("stored", "accepted", "state", "changed", "written"),
    [
        (None, {NEW}, "stored", True, NEW),
        (NEW, {NEW}, "current", False, NEW),
        (OLD, {NEW, OLD}, "refreshed", False, NEW),
        (EXPIRED, {NEW}, "replaced", True, NEW),
    ],
)
def test_login_decision(tmp_path, stored, accepted, state, changed, written):
    if stored:
        write(tmp_path, {"auths": {HOST: {"auth": b64(f"AWS:{stored}")}}})
    result = e.login([FRESH], str(tmp_path), registry(accepted), check_mode=False)
    assert result["changed"] is changed
    assert result["registries"][0]["state"] == state
    assert result["registry"] == HOST
    assert result["expires_at"] == "2026-11-22T10:00:00Z"
    assert read(tmp_path)["auths"][HOST]["auth"] == b64(f"AWS:{written}")
    assert NEW not in json.dumps(result)


def test_login_in_check_mode_writes_nothing(tmp_path):
    result = e.login([FRESH], str(tmp_path), registry({NEW}), check_mode=True)
    assert result["changed"] is True
    assert result["registries"][0]["state"] == "stored"
    assert not (tmp_path / "config.json").exists()


def test_login_refuses_to_store_a_token_the_registry_rejects(tmp_path):
    write(tmp_path, {"auths": {}})
    with pytest.raises(e.EcrLoginError, match="refuses the token ECR just issued") as err:
        e.login([FRESH], str(tmp_path), registry(set()), check_mode=False)
    assert NEW not in str(err.value)
    assert read(tmp_path) == {"auths": {}}


def test_ecr_login_helper_means_nothing_is_asked_or_written(tmp_path):
    write(tmp_path, {"credHelpers": {HOST: "ecr-login"}})
    accepts = registry({NEW})
    result = e.login([FRESH], str(tmp_path), accepts, check_mode=False)
    assert result["changed"] is False
    assert result["registries"][0]["state"] == "helper"
    assert "ecr-login credential helper is configured" in result["msg"]
    assert accepts.asked == []
    assert read(tmp_path) == {"credHelpers": {HOST: "ecr-login"}}


class MemoryHelper:
    """A credential store kept in a dict, in place of a docker-credential-* program."""

    store_data: dict = {}

    def __init__(self, name):
        self.name = name

    def get(self, host):
        return self.store_data.get(host)

    def store(self, host, user, secret):
        self.store_data[host] = (user, secret)


def test_other_helpers_get_the_secret_and_the_file_an_empty_entry(tmp_path):
    write(tmp_path, {"credsStore": "pass"})
    MemoryHelper.store_data = {}
    result = e.login([FRESH], str(tmp_path), registry({NEW}), check_mode=False, helper_factory=MemoryHelper)
    assert result["registries"][0] == {
        "registry": HOST,
        "expires_at": "2026-11-22T10:00:00Z",
        "credential_store": "pass",
        "state": "stored",
        "changed": True,
    }
    assert MemoryHelper.store_data == {HOST: ("AWS", NEW)}
    assert read(tmp_path) == {"credsStore": "pass", "auths": {HOST: {}}}
    again = e.login([FRESH], str(tmp_path), registry({NEW}), check_mode=False, helper_factory=MemoryHelper)
    assert again["changed"] is False
    assert again["registries"][0]["state"] == "current"


def test_several_registries_each_get_their_entry(tmp_path):
    other = dict(FRESH, registry="210987654321.dkr.ecr.eu-west-1.amazonaws.com", secret="tok-other-51d")
    result = e.login([FRESH, other], str(tmp_path), registry({NEW, "tok-other-51d"}), check_mode=False)
    assert [r["registry"] for r in result["registries"]] == [HOST, other["registry"]]
    assert sorted(read(tmp_path)["auths"]) == sorted([HOST, other["registry"]])
    assert result["registry"] == HOST


def test_helper_in_charge_of_every_registry_means_nothing_to_ask(tmp_path):
    other = "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    write(tmp_path, {"credHelpers": {HOST: "ecr-login", other: "ecr-login"}})
    result = e.helper_in_charge(str(tmp_path), [HOST, other])
    assert result["changed"] is False
    assert [r["state"] for r in result["registries"]] == ["helper", "helper"]
    assert "nothing stored" in result["msg"]
    write(tmp_path, {"credHelpers": {HOST: "ecr-login"}})
    assert e.helper_in_charge(str(tmp_path), [HOST, other]) is None
    assert e.helper_in_charge(str(tmp_path), []) is None
