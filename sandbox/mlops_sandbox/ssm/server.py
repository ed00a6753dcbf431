"""The SSM service's HTTP endpoint.

- ``POST /`` with ``X-Amz-Target: AmazonSSM.<Action>``: the SSM JSON protocol. Run Command
  actions are answered here; every other action (Parameter Store, documents, ...) is
  forwarded to moto as it came, so one endpoint serves all of SSM.
- ``/_agent/poll``, ``/_agent/update``: the instances' agents; ``/_agent/credentials``: their
  metadata service's instance profile session (``agent/imds.py``).
- ``/_sandbox/...``: instances, faults, timing settings, API call counters, the call log
  (``GET /_sandbox/calls/log?since=<epoch>``; see ``routes``), JSON in and out; answered to
  loopback peers only (the host's own clients), refused to everyone else before anything
  is read: the instances reach this service too, and these routes launch privileged
  containers and run commands in them.

Every SSM call is counted per action, may be throttled by the fault switch, and waits the
latency setting (``timing.py``), before it is answered or forwarded. What the service
answers itself (Run Command, the ECR image reads) goes to the sandbox's call log
(``calls.py``, source ``ssm``) with the caller's access key; what it forwards is recorded by
moto, so each call is logged once.

The caller's account is the one moto gives its access key (the identity table of
``calls.py``: an STS session of a role is in the role's account); a key nobody issued is
moto's default account. Run Command answers within that account (``api.py``).

With the registry on another port than 443 (a second sandbox on the machine), ECR's
GetAuthorizationToken names the proxy endpoint with that port, so that ``docker login``
and image names agree with where the registry listens.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .. import arns, calls
from ..listen import PeerCheck, adopt
from ..moto_record import json_object
from ..process import SandboxError
from .api import Api
from .control import BadRequest, Control
from .ecr_images import TARGET_PREFIX as ECR_TARGET_PREFIX
from .ecr_images import EcrImages
from .errors import SsmError, throttled
from .faults import Faults

log = logging.getLogger("mlops_sandbox.ssm.server")
TARGET_PREFIX = "AmazonSSM."
HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


class Service:
    """Everything a request handler needs, shared by all handler threads."""

    def __init__(
        self,
        api: Api,
        control: Control,
        faults: Faults,
        moto: tuple[str, int],
        code: str = "",
        moto_pid: int | None = None,
        ecr: EcrImages | None = None,
        config=None,
        ecr_events=None,
    ) -> None:
        self.config = config  # None: nothing recorded (unit tests of the handler)
        self.api = api
        self.ecr = ecr
        self.ecr_events = ecr_events
        self.code = code
        self.moto_pid = moto_pid
        self.control = control
        self.faults = faults
        self.moto = moto
        self.started = time.time()
        self._accounts: dict[str, str] = {}  # access key -> account, from the identity table

    def account_of(self, access_key: str | None) -> str | None:
        """The account of an access key (moto's rules); None without a config (unit tests)."""
        if self.config is None:
            return None
        if not access_key:
            return self.config.account_id
        known = self._accounts.get(access_key)
        if known is None:
            found = calls.identity_of(self.config, access_key)
            if found is None or not found.get("account"):
                return self.config.account_id  # a key moto never issued: its default account
            known = self._accounts[access_key] = found["account"]
        return known


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK of the headers: ~40 ms added to every call on keep-alive.
    disable_nagle_algorithm = True
    server_version = "Server"
    service: Service

    def log_message(self, fmt: str, *args) -> None:
        return

    # -- plumbing ------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, payload: dict | list | bytes, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        self.send_response(status)
        headers = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self) -> dict:
        raw = self._body()
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("the body must be a JSON object")
        return value

    # -- dispatch ----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlparse(self.path).path
        if path.startswith("/_agent/"):
            self._agent(path)
        elif path.startswith("/_sandbox/"):
            self._control("POST", path)
        else:
            self._ssm()

    def do_GET(self) -> None:  # noqa: N802
        path = urllib.parse.urlparse(self.path).path
        if path.startswith("/_sandbox/"):
            self._control("GET", path)
        else:
            self._reply(404, {"message": "the SSM service speaks POST (JSON protocol)"})

    def do_DELETE(self) -> None:  # noqa: N802
        self._control("DELETE", urllib.parse.urlparse(self.path).path)

    # -- SSM API ---------------------------------------------------------------------------------
    def _ssm(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        body = self._body()
        if target.startswith(ECR_TARGET_PREFIX):
            self._ecr(target[len(ECR_TARGET_PREFIX) :], body)
            return
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if not action:
            self._error(SsmError("UnknownOperationException", f"unknown operation {target!r}"))
            return
        api = self.service.api
        scope = calls.scope_of(self.headers.get("Authorization"))
        account = self.service.account_of(scope.access_key if scope else None)
        throttle = self.service.faults.call(action, account)
        # A region's round trip (the latency setting), throttled answers included.
        api.engine.timing.hold()
        if throttle:
            log.info("%s throttled", action)
            exc = throttled()
            # Answered here whatever the action (moto never sees a throttled call).
            self._record("ssm", action, json_object(body), exc.status, exc.code)
            self._error(exc)
            return
        if not api.handles(action):
            self._forward(body)
            return
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError
        except ValueError:
            self._record("ssm", action, {}, 400, "SerializationException")
            self._error(SsmError("SerializationException", "the request body is not a JSON object"))
            return
        try:
            answer = api.call(action, request, account)
        except SsmError as exc:
            log.info("%s -> %s: %s", action, exc.code, exc.message)
            self._record("ssm", action, request, exc.status, exc.code)
            self._error(exc)
            return
        except Exception:
            log.exception("%s failed", action)
            self._record("ssm", action, request, 500, "InternalServerError")
            self._error(SsmError("InternalServerError", "the sandbox's SSM service failed; see its log", 500))
            return
        self._record("ssm", action, request, 200, None)
        self._reply(200, answer)

    def _record(self, service: str, action: str, request: dict, status: int, error: str | None) -> None:
        """One entry in the call log for a call answered here (never fails the answer)."""
        config = self.service.config
        if config is None:
            return
        scope = calls.scope_of(self.headers.get("Authorization"))
        region = scope.region if scope else config.region
        account = self.service.account_of(scope.access_key if scope else None) or config.account_id
        try:
            calls.record(
                config,
                source="ssm",
                service=service,
                operation=action,
                access_key=scope.access_key if scope else None,
                region=region,
                resources=arns.resources(service, action, request, region, account),
                status=status,
                error=error,
            )
        except OSError:
            log.exception("cannot record %s in the call log", action)

    def _ecr(self, action: str, body: bytes) -> None:
        """ECR: the image read actions from the registry (ecr_images.py), the rest to moto."""
        ecr = self.service.ecr
        if ecr is not None and action == "GetAuthorizationToken":
            self._forward(body, rewrite=ecr.authorization)
            return
        if ecr is None or not ecr.handles(action):
            self._forward(body)
            return
        request: dict = {}
        try:
            request = json.loads(body or b"{}")
            request = request if isinstance(request, dict) else {}
            scope = calls.scope_of(self.headers.get("Authorization"))
            answer = ecr.call(action, request, self.service.account_of(scope.access_key if scope else None))
        except ValueError:
            self._record("ecr", action, {}, 400, "SerializationException")
            self._error(SsmError("SerializationException", "the request body is not a JSON object"))
            return
        except SsmError as exc:
            self._record("ecr", action, request, exc.status, exc.code)
            self._error(exc)
            return
        except Exception:
            log.exception("ECR %s failed", action)
            self._record("ecr", action, request, 500, "ServerException")
            self._error(SsmError("ServerException", "the sandbox's ECR stand-in failed; see its log", 500))
            return
        self._record("ecr", action, request, 200, None)
        self._reply(200, answer)

    def _error(self, exc: SsmError) -> None:
        self._reply(exc.status, exc.body(), {"x-amzn-ErrorType": exc.code})

    def _forward(self, body: bytes, rewrite=None) -> None:
        """The call passed on to moto, its answer back as it is (or, when it succeeded,
        through ``rewrite``: JSON body in, JSON body out)."""
        host, port = self.service.moto
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if rewrite is not None and resp.status == 200:
                data = json.dumps(rewrite(json.loads(data))).encode()
            passed = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS}
            self.send_response(resp.status)
            for key, value in passed.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:
            self._error(SsmError("InternalServerError", f"moto did not answer the forwarded call: {exc}", 500))
        finally:
            conn.close()

    # -- agents ------------------------------------------------------------------------------------
    def _agent(self, path: str) -> None:
        engine = self.service.api.engine
        try:
            body = self._json()
            iid = str(body.get("instance_id", ""))
            if path == "/_agent/poll":
                messages = engine.poll(iid, min(float(body.get("wait", 5)), 20.0))
                if messages is None:
                    self._reply(404, {"message": f"instance {iid} is not registered"})
                    return
                self._reply(200, {"messages": messages})
            elif path == "/_agent/update":
                self._reply(200, engine.update(iid, body))
            elif path == "/_agent/credentials":
                # EC2's side of the metadata service: the instance profile role's session
                # (agent/imds.py). An agent route: the instances reach it, /_sandbox/ is loopback's.
                self._reply(200, _imds_credentials(self.service.control.credentials(iid)))
            else:
                self._reply(404, {"message": f"no agent route {path}"})
        except (ValueError, TypeError) as exc:
            self._reply(400, {"message": str(exc)})

    # -- sandbox controls ---------------------------------------------------------------------------
    def _from_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            return False

    def _control(self, method: str, path: str) -> None:
        if not self._from_loopback():
            # Nothing of the request is read; the connection is not reused.
            log.info("control %s %s refused to %s", method, path, self.client_address[0])
            self.close_connection = True
            self._reply(
                403,
                {"error": "the sandbox's control endpoint answers on 127.0.0.1 only"},
                {"Content-Type": "application/json", "Connection": "close"},
            )
            return
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        try:
            body = self._json() if method != "GET" else {}
            answer = self._route(method, path.rstrip("/"), body, query)
        except BadRequest as exc:
            self._reply(400, {"error": str(exc)}, {"Content-Type": "application/json"})
            return
        except (ValueError, TypeError) as exc:
            self._reply(400, {"error": f"bad request: {exc}"}, {"Content-Type": "application/json"})
            return
        except SandboxError as exc:
            self._reply(500, {"error": str(exc)}, {"Content-Type": "application/json"})
            return
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"}, {"Content-Type": "application/json"})
            return
        if answer is None:
            self._reply(404, {"error": f"no route {method} {path}"}, {"Content-Type": "application/json"})
        else:
            self._reply(200, answer, {"Content-Type": "application/json"})

    def _route(self, method: str, path: str, body: dict, query: dict):
        svc = self.service
        control, faults, timing = svc.control, svc.faults, svc.api.engine.timing
        routes = {
            ("GET", "/_sandbox/health"): lambda: {
                "ok": True,
                "uptime": round(time.time() - svc.started, 1),
                "code": svc.code,
                "moto_pid": svc.moto_pid,
            },
            ("GET", "/_sandbox/instances"): lambda: {"instances": control.list(query)},
            ("POST", "/_sandbox/instances"): lambda: {"instances": control.add(body)},
            ("POST", "/_sandbox/instances/ensure"): lambda: {"instances": control.ensure(body)},
            ("POST", "/_sandbox/instances/remove"): lambda: {"removed": control.remove(body)},
            ("DELETE", "/_sandbox/instances"): lambda: {"removed": control.remove({**query, **body})},
            ("GET", "/_sandbox/faults"): faults.state,
            ("POST", "/_sandbox/faults/throttle"): lambda: {
                "throttle": _rule(
                    faults.set_throttle(
                        float(body.get("share", 0)),
                        body.get("actions"),
                        body.get("limit"),
                        body.get("seed"),
                        body.get("account"),
                    )
                )
            },
            ("POST", "/_sandbox/faults/delay"): lambda: _done(
                faults.set_delay(float(body.get("seconds", 0)), body.get("instance_ids")), faults.state()
            ),
            ("POST", "/_sandbox/faults/offline"): lambda: {"offline": control.offline(body)},
            ("POST", "/_sandbox/faults/online"): lambda: {"online": control.online(body)},
            ("POST", "/_sandbox/faults/kill"): lambda: {"killed": control.kill(body)},
            # Clearing a delay also lets go the deliveries it holds now.
            ("POST", "/_sandbox/faults/clear"): lambda: dict(
                _done(faults.clear(), faults.state()), released=svc.api.engine.release_held()
            ),
            ("GET", "/_sandbox/settings"): timing.state,
            ("POST", "/_sandbox/settings"): lambda: timing.update(body),
            ("POST", "/_sandbox/settings/reset"): timing.reset,
            # ?account=<id>: that account's calls only (the caller's, from its access key)
            ("GET", "/_sandbox/calls"): lambda: faults.counters(query.get("account")),
            # The registry's push notifications (registry.py), as ECR's events (ecr_events.py).
            ("POST", "/_sandbox/ecr/events"): lambda: (
                svc.ecr_events.handle(body) if svc.ecr_events else {"emitted": []}
            ),
            # The call log (calls.py) of every component, ?since=<epoch seconds>.
            ("GET", "/_sandbox/calls/log"): lambda: {
                "calls": calls.read(svc.config, since=float(query["since"]) if query.get("since") else None)
            },
            ("POST", "/_sandbox/calls/reset"): lambda: faults.reset_counters(body.get("account")),
            ("DELETE", "/_sandbox/calls"): lambda: faults.reset_counters(query.get("account")),
        }
        handler = routes.get((method, path))
        return handler() if handler else None


def _imds_credentials(creds: dict) -> dict:
    return {
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "Token": creds["SessionToken"],
        "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _rule(rule) -> dict | None:
    return rule.to_dict() if rule else None


def _done(_ignored, value):
    return value


class Server(PeerCheck, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def make_server(service: Service, sock: socket.socket) -> Server:
    """The service on a listening socket (listen.Listeners makes one per address)."""
    handler = type("SsmHandler", (Handler,), {"service": service})
    return adopt(Server(sock.getsockname(), handler, bind_and_activate=False), sock)
