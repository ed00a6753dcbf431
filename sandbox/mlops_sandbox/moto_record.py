"""The call log's moto source: a WSGI middleware around moto's app (see ``calls.py``).

For each request it works out what AWS would: the service (the SigV4 scope's signing
name, or the action of an unsigned STS call), the operation (``X-Amz-Target``, the
query protocol's ``Action``, or the REST route matched against botocore's model of the
service: method, URI template, query literals), the parameters and from them the
resources (``arns.py``), and the caller: the access key of the request resolved to an
IAM user or an STS session through moto's own IAM and STS backends. Every key moto issues
(AssumeRole, AssumeRoleWithWebIdentity, GetSessionToken, CreateAccessKey...) and every key
it resolves goes in the identity table, so the SSM service and the registry, which see
only keys, are resolved when the log is read.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import re
import threading
import urllib.parse
from typing import Any

from . import arns, calls

# SigV4 signing name -> botocore service name, where they differ.
BOTOCORE_NAMES = {"elasticfilesystem": "efs", "monitoring": "cloudwatch", "email": "ses", "states": "stepfunctions"}
UNSIGNED_STS = ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML")
ISSUES_KEYS = {
    ("sts", "AssumeRole"),
    ("sts", "AssumeRoleWithWebIdentity"),
    ("sts", "AssumeRoleWithSAML"),
    ("sts", "GetSessionToken"),
    ("sts", "GetFederationToken"),
    ("iam", "CreateAccessKey"),
}
_ACCESS_KEY_XML = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
_CODE_XML = re.compile(rb"<Code>([^<]+)</Code>")


# -- REST routes from botocore's models ---------------------------------------------------


@functools.lru_cache(maxsize=64)
def _model(service: str):
    import botocore.session

    name = BOTOCORE_NAMES.get(service, service)
    try:
        return botocore.session.get_session().get_service_model(name)
    except Exception:  # noqa: BLE001 - an unknown service is just not matched
        return None


@functools.lru_cache(maxsize=64)
def _routes(service: str) -> list[tuple[str, re.Pattern, list[str], tuple[tuple[str, str], ...], int, str]]:
    """(method, path regex, path param names, query literals, literal length, operation) per operation."""
    model = _model(service)
    if model is None or model.protocol not in ("rest-xml", "rest-json"):
        return []
    out = []
    for name in model.operation_names:
        op = model.operation_model(name)
        http = op.http
        template, _sep, query = http.get("requestUri", "/").partition("?")
        names: list[str] = []
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", template):
            if piece.startswith("{"):
                greedy = piece.endswith("+}")
                names.append(piece.strip("{}+"))
                pattern += "(.+)" if greedy else "([^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        literals = tuple(urllib.parse.parse_qsl(query, keep_blank_values=True))
        out.append((http["method"], re.compile(pattern + "/?$"), names, literals, literal, name))
    return out


def match_rest(service: str, method: str, path: str, query: dict, headers: dict) -> tuple[str, dict] | None:
    """(operation, path parameters) of a REST request, the most specific route winning."""
    best = None
    for route_method, regex, names, literals, literal, name in _routes(service):
        if route_method != method:
            continue
        found = regex.match(path)
        if not found:
            continue
        if not all(k in query and (not v or query[k] == v) for k, v in literals):
            continue
        copy = "Copy" in name
        if copy != ("x-amz-copy-source" in headers):
            continue
        score = (len(literals), literal)
        if best is None or score > best[0]:
            values = {n: urllib.parse.unquote(v) for n, v in zip(names, found.groups(), strict=True)}
            best = (score, name, values)
    return (best[1], best[2]) if best else None


# -- parameters --------------------------------------------------------------------------


def _form(body: bytes, query: str) -> dict[str, Any]:
    """Query-protocol parameters; ``X.N`` members gathered as a list under ``X`` and ``Xs``."""
    params: dict[str, Any] = {}
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if body:
        pairs += urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    for key, value in pairs:
        base, sep, index = key.rpartition(".")
        if sep and index.isdigit() and "." not in base:
            params.setdefault(base, [])
            if isinstance(params[base], list):
                params[base].append(value)
            params.setdefault(base + "s", params[base])
        else:
            params[key] = value
    return params


def json_object(body: bytes) -> dict:
    """A JSON object body as a dict; {} for anything else."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe(environ: dict, body: bytes) -> dict | None:
    """service, operation, region, access key, parameters of a request; None for moto's own API."""
    path = environ.get("PATH_INFO", "") or "/"
    if path.startswith("/moto-api"):
        return None
    method = environ.get("REQUEST_METHOD", "GET")
    query_string = environ.get("QUERY_STRING", "")
    query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
    scope = calls.scope_of(environ.get("HTTP_AUTHORIZATION")) or calls.scope_of(query.get("X-Amz-Credential"))
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    content_type = environ.get("CONTENT_TYPE", "")
    service = scope.service.lower() if scope else None
    operation = None
    params: dict[str, Any] = {}
    if target:
        operation = target.rpartition(".")[2]
        params = json_object(body)
    elif content_type.startswith("application/x-www-form-urlencoded") or "Action" in query:
        params = _form(body if content_type.startswith("application/x-www-form-urlencoded") else b"", query_string)
        operation = params.get("Action")
        if service is None and operation in UNSIGNED_STS:
            service = "sts"
    if service is None:
        return None
    if operation is None:
        headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        host = (environ.get("HTTP_HOST") or "").split(":")[0]
        route_path = path
        if service == "s3" and "." in host and not re.match(r"^[\d.]+$", host) and not host.startswith("s3."):
            route_path = f"/{host.split('.')[0]}{path}"  # virtual-hosted style
        matched = match_rest(service, method, route_path, query, headers)
        if matched is None:
            operation = f"{method} {path}"
        else:
            operation, params = matched[0], {**query, **matched[1]}
            if "x-amz-copy-source" in headers:
                params["CopySource"] = headers["x-amz-copy-source"]
            if content_type.startswith("application/json"):
                params = {**json_object(body), **params}
    return {
        "service": service,
        "operation": operation,
        "region": scope.region if scope else None,
        "access_key": scope.access_key if scope else None,
        "params": params,
    }


ECS_PASSES_ROLES = {("ecs", "RunTask"), ("ecs", "RegisterTaskDefinition")}
LISTS_OBJECTS = {("s3", "ListObjectsV2"), ("s3", "ListObjects"), ("s3", "ListObjectVersions")}


def _ecs_passed_roles(call: dict, answer: bytes, account: str | None) -> list[str]:
    """The roles an ECS call hands to ECS (AWS authorizes ``iam:PassRole`` on each): a task
    definition's task and execution roles, at registration and at each RunTask of it, and
    the roles of RunTask's overrides."""
    params = call["params"]
    roles = [params.get("taskRoleArn"), params.get("executionRoleArn")]
    if call["operation"] == "RunTask":
        from moto.ecs.models import ecs_backends

        overrides = params.get("overrides") or {}
        roles += [overrides.get("taskRoleArn"), overrides.get("executionRoleArn")]
        for task in json_object(answer).get("tasks") or []:
            with contextlib.suppress(Exception):  # a definition gone since: its roles are unknown
                found = ecs_backends[account][call["region"]].describe_task_definition(task["taskDefinitionArn"])
                roles += [found.task_role_arn, found.execution_role_arn]
    return sorted({r for r in roles if r})


# -- identities --------------------------------------------------------------------------


def principal_of(access_key: str | None) -> tuple[str | None, str | None]:
    """(principal ARN, account) of a key, from moto's IAM users and STS sessions."""
    if not access_key:
        return None, None
    from moto.iam.models import get_account_id_from, iam_backends
    from moto.sts.models import sts_backends

    account = get_account_id_from(access_key)
    role = sts_backends[account]["global"].get_assumed_role_from_access_key(access_key)
    if role is not None:
        return role.arn, account
    user = iam_backends[account]["aws"].get_user_from_access_key_id(access_key)
    if user is not None:
        return user.arn, account
    return None, account


def _error_code(body: bytes) -> str | None:
    with_json = json_object(body).get("__type") if body[:1] == b"{" else None
    if with_json:
        return str(with_json).rpartition("#")[2]
    found = _CODE_XML.search(body)
    return found.group(1).decode() if found else None


# -- the middleware ------------------------------------------------------------------------


class Recorder:
    """WSGI middleware: answer through ``app``, then record the call (calls.record)."""

    def __init__(self, app, config) -> None:
        self.app = app
        self.config = config
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def _remember(self, access_key: str | None, principal: str | None, account: str | None) -> None:
        if not access_key or not principal:
            return
        with self._lock:
            if access_key in self._known:
                return
            self._known.add(access_key)
        calls.remember_identity(self.config, access_key, principal, account)

    def __call__(self, environ: dict, start_response):
        body = _read_body(environ)
        try:
            call = describe(environ, body)
        except Exception:  # noqa: BLE001 - the log must never break an answer
            call = None
        if call is None or call["access_key"] == calls.INTERNAL_ACCESS_KEY:
            return self.app(environ, start_response)
        answered: list = []

        def capture(status_line: str, headers, exc_info=None):
            answered[:] = [status_line, list(headers)]
            return lambda _data: None  # moto never writes through it

        answer = b"".join(self.app(environ, capture))
        status_line, headers = answered or ("500 INTERNAL SERVER ERROR", [])
        status = int(status_line.split()[0])
        if (call["service"], call["operation"]) == ("ecr", "GetAuthorizationToken") and status == 200:
            answer = self._token_per_identity(call["access_key"], answer)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(answer))))
        with contextlib.suppress(Exception):  # the log must never break an answer
            self._record(call, status, answer)
        start_response(status_line, headers)
        return [answer]

    def _token_per_identity(self, access_key: str | None, answer: bytes) -> bytes:
        """ECR tokens per caller, as on AWS: the registry's front (registry_proxy.py) knows
        whose pull or push it is from the password."""
        from .registry_proxy import USER, password_for

        principal, account = principal_of(access_key)
        if principal is None:
            return answer  # a key the sandbox cannot tie to anyone: moto's shared token
        data = json_object(answer)
        for item in data.get("authorizationData") or []:
            registry = str(item.get("proxyEndpoint", "")).split("//")[-1].split(".")[0]
            secret = password_for(registry if registry.isdigit() else account, access_key)
            item["authorizationToken"] = base64.b64encode(f"{USER}:{secret}".encode()).decode()
        return json.dumps(data).encode()

    def _record(self, call: dict, status: int, answer: bytes) -> None:
        principal, account = principal_of(call["access_key"])
        self._remember(call["access_key"], principal, account)
        detail = {"version_id": call["params"]["versionId"]} if call["params"].get("versionId") else None
        if (call["service"], call["operation"]) in LISTS_OBJECTS and "prefix" in call["params"]:
            detail = {"prefix": call["params"]["prefix"]}  # the s3:prefix condition key (iam_actions.py)
        if (call["service"], call["operation"]) in ISSUES_KEYS and status < 300:
            found = _ACCESS_KEY_XML.search(answer)
            if found:
                issued = found.group(1).decode()
                issued_principal, issued_account = principal_of(issued)
                self._remember(issued, issued_principal, issued_account)
                detail = {"issued_access_key": issued, "issued_principal": issued_principal}
        if (call["service"], call["operation"]) in ECS_PASSES_ROLES and status < 300:
            detail = {**(detail or {}), "passed_roles": _ecs_passed_roles(call, answer, account)}
        calls.record(
            self.config,
            source="moto",
            service=call["service"],
            operation=call["operation"],
            access_key=call["access_key"],
            principal=principal,
            account=account,
            region=call["region"],
            resources=arns.resources(call["service"], call["operation"], call["params"], call["region"], account),
            status=status,
            error=_error_code(answer) if status >= 400 else None,
            detail=detail,
        )


def _read_body(environ: dict) -> bytes:
    """The request body, put back for the app to read."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length:
        body = stream.read(length)
    elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    if body and not environ.get("CONTENT_LENGTH"):
        environ["CONTENT_LENGTH"] = str(len(body))
    return body
