# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ECR credentials into a docker config, the way ``docker login`` stores them.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``ecr_login``.

Three concerns, each testable with plain values:

- where the instance is: region and account from the instance metadata service,
  IMDSv2 only (a session token first; no IMDSv1 fallback, so a metadata hop limit set
  to keep containers out is respected), honouring botocore's variables
  ``AWS_EC2_METADATA_DISABLED``, ``AWS_EC2_METADATA_SERVICE_ENDPOINT``,
  ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE``, ``AWS_METADATA_SERVICE_TIMEOUT`` and
  ``AWS_METADATA_SERVICE_NUM_ATTEMPTS``;
- the docker client configuration: ``auths``, ``credsStore`` and ``credHelpers``
  with docker's precedence (a registry's ``credHelpers`` entry, else ``credsStore``,
  else the file itself), the ``ecr-login`` helper meaning "nothing to do";
- whether stored credentials are still accepted, asked of the registry's ``/v2/``.

The ECR token never leaves this module's values except towards the docker config or
a credential helper's stdin; messages never contain it.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

IMDS_ENDPOINT_IPV4 = "http://169.254.169.254/"
IMDS_ENDPOINT_IPV6 = "http://[fd00:ec2::254]/"
IMDS_TOKEN_PATH = "latest/api/token"
IMDS_IDENTITY_PATH = "latest/dynamic/instance-identity/document"
IMDS_TOKEN_TTL = "60"
ECR_HELPER = "ecr-login"
DOCKER_CERTS_D = "/etc/docker/certs.d"


class EcrLoginError(Exception):
    """A failure to report as it is: the message says what to fix (and never holds a secret)."""


# --------------------------------------------------------------------------- IMDS


def imds_settings(environ: Mapping[str, str]) -> dict:
    """botocore's instance metadata settings, read from ``environ``."""
    mode = (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") or "IPv4").strip().lower()
    default = IMDS_ENDPOINT_IPV6 if mode == "ipv6" else IMDS_ENDPOINT_IPV4
    endpoint = (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or default).strip()
    if not endpoint.endswith("/"):
        endpoint += "/"
    try:
        timeout = float(environ.get("AWS_METADATA_SERVICE_TIMEOUT") or 1)
        attempts = max(1, int(environ.get("AWS_METADATA_SERVICE_NUM_ATTEMPTS") or 1))
    except ValueError:
        raise EcrLoginError(
            "AWS_METADATA_SERVICE_TIMEOUT and AWS_METADATA_SERVICE_NUM_ATTEMPTS must be numbers"
        ) from None
    return {
        "disabled": (environ.get("AWS_EC2_METADATA_DISABLED") or "").strip().lower() == "true",
        "endpoint": endpoint,
        "timeout": timeout,
        "attempts": attempts,
    }


def parse_identity_document(text: str | bytes) -> dict[str, str]:
    """Region and account from the instance identity document (JSON)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise EcrLoginError("the instance identity document from the metadata service is not JSON") from None
    region = document.get("region") if isinstance(document, dict) else None
    account = document.get("accountId") if isinstance(document, dict) else None
    if not region or not account:
        raise EcrLoginError("the instance identity document has no region or accountId")
    return {"region": str(region), "account_id": str(account)}


def _imds_opener() -> urllib.request.OpenerDirector:
    # The metadata service is link-local: never through a proxy.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def imds_identity(settings: dict, open_url: Callable | None = None) -> tuple[dict | None, str]:
    """``(identity, note)``: identity is ``{"region", "account_id"}`` or None, note says why.

    IMDSv2 only: a PUT for a session token, then the identity document with it. A
    token request that gets no answer is what a hop limit of 1 looks like from inside
    a container; that is reported, not worked around.
    """
    if settings["disabled"]:
        return None, "instance metadata disabled (AWS_EC2_METADATA_DISABLED=true)"
    open_url = open_url or _imds_opener().open
    base = settings["endpoint"]
    token = None
    last = ""
    for _attempt in range(settings["attempts"]):
        request = urllib.request.Request(
            base + IMDS_TOKEN_PATH,
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL},
        )
        try:
            with open_url(request, timeout=settings["timeout"]) as resp:
                token = resp.read().decode("ascii", "replace").strip()
            break
        except urllib.error.HTTPError as exc:
            return None, "instance metadata at %s refused an IMDSv2 token (HTTP %s)" % (base, exc.code)
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            last = "no IMDSv2 token from %s within %ss (%s)" % (base, settings["timeout"], reason)
    if not token:
        return None, (
            last + "; not on EC2, or, inside a container, the instance's metadata hop limit "
            "(HttpPutResponseHopLimit) is 1 and must be 2 or more"
        )
    request = urllib.request.Request(base + IMDS_IDENTITY_PATH, headers={"X-aws-ec2-metadata-token": token})
    try:
        with open_url(request, timeout=settings["timeout"]) as resp:
            body = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return None, "instance metadata at %s answered HTTP %s for the identity document" % (base, exc.code)
    except OSError as exc:
        return None, "instance metadata at %s did not send the identity document (%s)" % (
            base,
            getattr(exc, "reason", exc),
        )
    return parse_identity_document(body), "instance metadata (IMDSv2) at %s" % base


def resolve_location(
    region_param: str | None, registry_ids: list[str] | None, imds: Callable[[], tuple], fallback_region: str | None
) -> dict:
    """Region and account with their sources, in the documented order.

    ``imds`` is a zero-argument callable returning ``imds_identity``'s pair; it is only
    called when an argument is missing. ``fallback_region`` is a callable giving the
    region of the usual AWS configuration (profile, config file).
    """
    region, region_source = region_param, "argument" if region_param else None
    account = registry_ids[0] if registry_ids else None
    account_source = "argument" if account else None
    note = None
    if not region or not account:
        identity, note = imds()
        if identity:
            if not region:
                region, region_source = identity["region"], "instance metadata"
            if not account:
                account, account_source = identity["account_id"], "instance metadata"
    if not region:
        region = fallback_region()
        region_source = "aws configuration" if region else None
    if not region:
        raise EcrLoginError(
            "no AWS region: pass region (or set AWS_REGION), run on EC2 where the instance metadata "
            "service gives it, or set one in the AWS config profile; metadata service: %s" % note
        )
    return {
        "region": region,
        "region_source": region_source,
        "account_id": account,
        "account_source": account_source,
        "imds": note,
    }


def ecr_host(account_id: str, region: str) -> str:
    """The ECR registry host of an account in a region (China regions end in .com.cn)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return "%s.dkr.ecr.%s.%s" % (account_id, region, suffix)


# --------------------------------------------------------------------------- tokens


def decode_token(authorization_token: str) -> tuple[str, str]:
    """``(user, password)`` from ECR's base64 ``user:password`` token."""
    try:
        user, sep, secret = base64.b64decode(authorization_token).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        raise EcrLoginError("ECR returned an authorization token that is not base64 user:password") from None
    if not sep or not user or not secret:
        raise EcrLoginError("ECR returned an authorization token that is not base64 user:password")
    return user, secret


def hostname(server: str) -> str:
    """The registry host of a docker config key or proxy endpoint: ``https://h/v1/`` -> ``h``."""
    text = server.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc or text
    return text.split("/", 1)[0].lower()


def iso_time(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def authorization_entries(authorization_data: list[dict]) -> list[dict]:
    """GetAuthorizationToken's ``authorizationData`` as plain values (token still inside)."""
    entries = []
    for item in authorization_data or []:
        user, secret = decode_token(item["authorizationToken"])
        entries.append(
            {
                "registry": hostname(item["proxyEndpoint"]),
                "proxy_endpoint": item["proxyEndpoint"],
                "expires_at": iso_time(item.get("expiresAt")),
                "user": user,
                "secret": secret,
            }
        )
    if not entries:
        raise EcrLoginError("ECR returned no authorization data")
    return entries


def secret_forms(user: str, secret: str) -> dict[str, str]:
    """Every spelling of a credential that could leak: itself and its base64 forms."""
    pair = ("%s:%s" % (user, secret)).encode("utf-8")
    return {
        secret,
        base64.b64encode(pair).decode("ascii"),
        base64.b64encode(secret.encode("utf-8")).decode("ascii"),
    }


# --------------------------------------------------------------------------- docker config


def docker_config_dir(option: str | None, environ: Mapping[str, str]) -> str:
    """The docker client configuration directory, as the docker CLI finds it."""
    if option:
        return os.path.expanduser(option)
    if environ.get("DOCKER_CONFIG"):
        return environ["DOCKER_CONFIG"]
    return os.path.join(os.path.expanduser("~"), ".docker")


def load_docker_config(path: str) -> dict:
    """The parsed config.json, ``{}`` when there is none."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise EcrLoginError("cannot read the docker config %s: %s" % (path, exc.strerror)) from None
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise EcrLoginError("the docker config %s is not valid JSON (%s); fix or remove it" % (path, exc)) from None
    if not isinstance(config, dict):
        raise EcrLoginError("the docker config %s is not a JSON object; fix or remove it" % path)
    return config


def credential_route(config: dict, host: str) -> tuple[str, str | None]:
    """Where docker keeps ``host``'s credentials: ``("helper", name)`` or ``("file", None)``.

    A ``credHelpers`` entry for the registry wins over ``credsStore``, which wins
    over the ``auths`` section of the file, as in docker's ``GetCredentialsStore``.
    """
    helpers = config.get("credHelpers") or {}
    for key, name in helpers.items():
        if hostname(key) == host and name:
            return "helper", name
    if config.get("credsStore"):
        return "helper", config["credsStore"]
    return "file", None


def file_credentials(config: dict, host: str) -> tuple[str, str] | None:
    """``(user, secret)`` stored in ``auths`` for ``host`` (any key spelling), or None."""
    for key, entry in (config.get("auths") or {}).items():
        if hostname(key) != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, secret = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return (user, secret) if sep else None
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
    return None


def with_file_credentials(config: dict, host: str, user: str, secret: str) -> dict:
    """A copy of ``config`` whose ``auths`` hold ``user``/``secret`` for ``host`` (key: the bare host).

    Other spellings of the same registry's key are dropped so that only one answer exists.
    """
    new = dict(config)
    auths = {k: v for k, v in (config.get("auths") or {}).items() if hostname(k) != host}
    auths[host] = {"auth": base64.b64encode(("%s:%s" % (user, secret)).encode("utf-8")).decode("ascii")}
    new["auths"] = auths
    return new


def with_helper_marker(config: dict, host: str) -> dict:
    """What docker login leaves in ``auths`` when a helper keeps the secret: an empty entry."""
    auths = dict(config.get("auths") or {})
    if any(hostname(k) == host for k in auths):
        return config
    new = dict(config)
    auths[host] = {}
    new["auths"] = auths
    return new


def write_docker_config(path: str, config: dict) -> None:
    """Write config.json atomically, readable by its owner only (as the docker CLI does)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent="\t")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise EcrLoginError("cannot write the docker config %s: %s" % (path, exc.strerror)) from None


class CredentialHelper:
    """A ``docker-credential-<name>`` program, spoken to with docker's protocol."""

    def __init__(self, name: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
        self.name = name
        self.program = "docker-credential-%s" % name
        self._run = run

    def _call(self, action: str, payload: str) -> subprocess.CompletedProcess:
        try:
            result = self._run(
                [self.program, action], input=payload, capture_output=True, text=True, timeout=60, check=False
            )
        except FileNotFoundError:
            raise EcrLoginError(
                "the docker config names the credential helper %r but %s is not on PATH; install it or "
                "change credsStore/credHelpers" % (self.name, self.program)
            ) from None
        except subprocess.TimeoutExpired:
            raise EcrLoginError("%s %s did not answer within 60s" % (self.program, action)) from None
        return result

    def get(self, host: str) -> tuple[str, str] | None:
        result = self._call("get", host)
        if result.returncode != 0:
            if "credentials not found" in (result.stdout + result.stderr).lower():
                return None
            raise EcrLoginError("%s get failed: %s" % (self.program, (result.stderr or result.stdout).strip()))
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise EcrLoginError("%s get did not answer JSON" % self.program) from None
        if not data.get("Username") or not data.get("Secret"):
            return None
        return data["Username"], data["Secret"]

    def store(self, host: str, user: str, secret: str) -> None:
        payload = json.dumps({"ServerURL": host, "Username": user, "Secret": secret})
        result = self._call("store", payload)
        if result.returncode != 0:
            # The helper's own message; it never echoes the secret it was given.
            raise EcrLoginError("%s store failed: %s" % (self.program, (result.stderr or result.stdout).strip()))


# --------------------------------------------------------------------------- registry


def registry_ssl_context(host: str, validate_certs: bool = True, certs_d: str = DOCKER_CERTS_D) -> ssl.SSLContext:
    """TLS settings trusted the way the Docker engine trusts ``host``: system CAs plus
    ``<certs_d>/<host>/*.crt`` (how private and local registries are trusted)."""
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    directory = os.path.join(certs_d, host)
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".crt"):
                context.load_verify_locations(cafile=os.path.join(directory, name))
    return context


def registry_accepts(
    host: str, user: str, secret: str, context: ssl.SSLContext, timeout: float = 15, open_url: Callable | None = None
) -> bool:
    """Whether the registry at ``host`` accepts ``user``/``secret`` (GET /v2/ with basic auth)."""
    pair = base64.b64encode(("%s:%s" % (user, secret)).encode("utf-8")).decode("ascii")
    request = urllib.request.Request("https://%s/v2/" % host, headers={"Authorization": "Basic " + pair})
    if open_url is None:
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        open_url = opener.open
    try:
        with open_url(request, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return False
        raise EcrLoginError("registry %s answered HTTP %s on /v2/; is it a registry?" % (host, exc.code)) from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EcrLoginError(
            "registry %s is unreachable (%s); check DNS, the network path to it, and its TLS certificate "
            "(private CAs go in %s/%s/ca.crt)" % (host, reason, DOCKER_CERTS_D, host)
        ) from None


# --------------------------------------------------------------------------- login


def login_one(
    entry: dict,
    config_path: str,
    accepts: Callable[[str, str, str], bool],
    check_mode: bool,
    helper_factory: Callable[[str], CredentialHelper] = CredentialHelper,
) -> tuple[dict, dict | None]:
    """Store one registry's credentials; ``(result, new_config_or_None)``.

    ``accepts(host, user, secret)`` asks the registry. The result says ``state``:
    ``helper`` (ecr-login handles it), ``current`` (the stored credentials are the
    fresh ones), ``refreshed`` (stored ones still accepted, replaced by the fresh
    token: not a change), ``stored`` (none before) or ``replaced`` (rejected before).
    """
    host = entry["registry"]
    config = load_docker_config(config_path)
    route, helper_name = credential_route(config, host)
    base = {"registry": host, "expires_at": entry["expires_at"], "credential_store": helper_name or "file"}
    if route == "helper" and helper_name == ECR_HELPER:
        return dict(base, state="helper", changed=False), None
    helper = helper_factory(helper_name) if route == "helper" else None
    stored = helper.get(host) if helper else file_credentials(config, host)
    fresh = (entry["user"], entry["secret"])
    if stored == fresh:
        if not accepts(host, *fresh):
            raise EcrLoginError(
                "registry %s refuses the token ECR just issued (HTTP 401); does this identity have "
                "ecr:GetAuthorizationToken on that registry, and is %s really its endpoint?" % (host, host)
            )
        return dict(base, state="current", changed=False), None
    still_valid = stored is not None and accepts(host, *stored)
    if not accepts(host, *fresh):
        raise EcrLoginError(
            "registry %s refuses the token ECR just issued (HTTP 401); does this identity have "
            "ecr:GetAuthorizationToken on that registry, and is %s really its endpoint?" % (host, host)
        )
    state = "refreshed" if still_valid else ("replaced" if stored is not None else "stored")
    result = dict(base, state=state, changed=not still_valid)
    if check_mode:
        return result, None
    if helper:
        helper.store(host, *fresh)
        new_config = with_helper_marker(config, host)
        return result, (new_config if new_config is not config else None)
    return result, with_file_credentials(config, host, *fresh)


def helper_in_charge(config_dir: str, hosts: list[str]) -> dict | None:
    """When the ``ecr-login`` helper handles every one of ``hosts``, the module's result
    (nothing done, nothing asked of ECR); else None."""
    if not hosts:
        return None
    config_path = os.path.join(config_dir, "config.json")
    config = load_docker_config(config_path)
    if any(credential_route(config, host) != ("helper", ECR_HELPER) for host in hosts):
        return None
    results = [
        {"registry": h, "expires_at": None, "credential_store": ECR_HELPER, "state": "helper", "changed": False}
        for h in hosts
    ]
    return {
        "changed": False,
        "registry": hosts[0],
        "expires_at": None,
        "registries": results,
        "docker_config": config_path,
        "msg": "; ".join(
            "%s: the ecr-login credential helper is configured for it in %s; nothing stored" % (h, config_path)
            for h in hosts
        ),
    }


def login(
    entries: list[dict],
    config_dir: str,
    accepts: Callable[[str, str, str], bool],
    check_mode: bool,
    helper_factory: Callable[[str], CredentialHelper] = CredentialHelper,
) -> dict:
    """Log in to every registry in ``entries``; the module's result (without any secret)."""
    config_path = os.path.join(config_dir, "config.json")
    results = []
    for entry in entries:
        result, new_config = login_one(entry, config_path, accepts, check_mode, helper_factory)
        if new_config is not None:
            write_docker_config(config_path, new_config)
        results.append(result)
    changed = any(r["changed"] for r in results)
    first = results[0]
    messages = []
    for r in results:
        if r["state"] == "helper":
            messages.append(
                "%s: the ecr-login credential helper is configured for it in %s; nothing stored"
                % (r["registry"], config_path)
            )
        else:
            messages.append("%s: %s" % (r["registry"], _STATE_TEXT[r["state"]]))
    return {
        "changed": changed,
        "registry": first["registry"],
        "expires_at": first["expires_at"],
        "registries": results,
        "docker_config": config_path,
        "msg": "; ".join(messages),
    }


_STATE_TEXT = {
    "current": "stored credentials are current and accepted",
    "refreshed": "stored credentials were still accepted; refreshed with the new token (not a change)",
    "stored": "credentials stored",
    "replaced": "stored credentials were no longer accepted; replaced",
}
