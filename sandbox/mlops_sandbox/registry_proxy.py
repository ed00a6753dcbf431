"""The registry's front door: TLS, ECR's credentials per identity, and the call log.

``python -m mlops_sandbox.registry_proxy --sandbox NAME`` (started by ``registry.py``)
listens where clients reach the ECR stand-in (the registry port, TLS with the registry's
certificate; on ``127.0.0.1``, the relay (``relay.py``) passing the bridges' gateways on to
it byte for byte), checks each request's credentials and passes it on to Debian's
``docker-registry``, which listens on a Unix socket of the sandbox only. Plain HTTP on the
TLS port gets docker-registry's own plain ``400`` (it says to use HTTPS), not a silent close.

Credentials: ``docker login`` with user ``AWS`` and the password from the sandbox's
GetAuthorizationToken: ``<account>-auth-token`` for a key the sandbox cannot tie to an
identity, ``<account>-auth-token.<access key id>`` for a key it can (``moto_record.py``
issues those), so each pull and push is the caller's, as an ECR token is. Anything else
is ``401 Unauthorized`` with the Basic challenge docker expects.

Each authenticated request goes to the call log (``calls.py``, source ``registry``) as
the ECR action it stands for on AWS: manifests GET/HEAD ``BatchGetImage``, PUT
``PutImage``, DELETE ``BatchDeleteImage``; blobs GET ``GetDownloadUrlForLayer``, HEAD
``BatchCheckLayerAvailability``; uploads POST ``InitiateLayerUpload``, PATCH
``UploadLayerPart``, PUT ``CompleteLayerUpload``; ``tags/list`` ``ListImages``;
``_catalog`` ``DescribeRepositories``. The ``GET /v2/`` handshake is no ECR action.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import logging
import re
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import arns, calls
from .config import Config, for_daemon
from .relay import registry_address

log = logging.getLogger("mlops_sandbox.registry_proxy")
USER = "AWS"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}
CHUNK = 256 * 1024
ROUTES = (
    (re.compile(r"^/v2/(?P<repo>.+)/manifests/[^/]+$"),
     {"GET": "BatchGetImage", "HEAD": "BatchGetImage", "PUT": "PutImage", "DELETE": "BatchDeleteImage"}),
    (re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/?$"), {"POST": "InitiateLayerUpload"}),
    (re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/[^/]+$"),
     {"PATCH": "UploadLayerPart", "PUT": "CompleteLayerUpload", "GET": "UploadLayerPart"}),
    (re.compile(r"^/v2/(?P<repo>.+)/blobs/sha256:[0-9a-f]+$"),
     {"GET": "GetDownloadUrlForLayer", "HEAD": "BatchCheckLayerAvailability"}),
    (re.compile(r"^/v2/(?P<repo>.+)/tags/list$"), {"GET": "ListImages"}),
    (re.compile(r"^/v2/_catalog$"), {"GET": "DescribeRepositories"}),
)  # fmt: skip


def forwarded_headers(items) -> dict[str, str]:
    """The request's headers to pass on: hop-by-hop ones and the credentials dropped, and a
    header sent several times joined into one (``a, b``, as HTTP allows for lists). Docker
    sends one ``Accept`` line per manifest type it takes: keeping only one of them made
    docker-registry answer with a schema1 rewrite, whose digest then named no manifest."""
    headers: dict[str, str] = {}
    names: dict[str, str] = {}  # lower-case name -> the name as first sent
    for name, value in items:
        key = name.lower()
        if key in HOP_HEADERS or key == "authorization":
            continue
        if key in names:
            headers[names[key]] += ", " + value
        else:
            names[key] = name
            headers[name] = value
    return headers


def ecr_operation(method: str, path: str) -> tuple[str, str | None] | None:
    """(ECR action, repository) a registry request stands for; None for the handshake."""
    for pattern, by_method in ROUTES:
        found = pattern.match(path)
        if found and method in by_method:
            return by_method[method], found.groupdict().get("repo")
    return None


def password_for(account: str, access_key: str | None) -> str:
    """The ECR password the sandbox hands out to the owner of ``access_key``."""
    base = f"{account}-auth-token"
    return f"{base}.{access_key}" if access_key else base


def credentials_of(authorization: str | None, account: str) -> tuple[bool, str | None]:
    """(accepted, access key) of a request's ``Authorization: Basic ...``."""
    if not authorization or not authorization.startswith("Basic "):
        return False, None
    try:
        user, _sep, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False, None
    base = f"{account}-auth-token"
    if user != USER:
        return False, None
    if secret == base:
        return True, None
    if secret.startswith(base + ".") and re.fullmatch(r"[A-Z0-9]{8,128}", secret[len(base) + 1 :]):
        return True, secret[len(base) + 1 :]
    return False, None


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 300) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        # "@name": an abstract socket (Linux), as docker-registry's Go listener takes it.
        self.sock.connect("\0" + self.socket_path[1:] if self.socket_path.startswith("@") else self.socket_path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "mlops-sandbox-ecr"
    config: Config
    backend: str

    def log_message(self, fmt: str, *args) -> None:
        return

    def _deny(self) -> None:
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}\n'
        self.send_response(401)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("WWW-Authenticate", 'Basic realm="mlops-sandbox-ecr"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        """The request body as an iterator of pieces (None when there is none)."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._dechunk()
        if length and int(length) > 0:
            return self._exactly(int(length))
        return None

    def _exactly(self, length: int):
        left = length
        while left:
            piece = self.rfile.read(min(CHUNK, left))
            if not piece:
                raise ConnectionError("the client closed the connection mid-body")
            left -= len(piece)
            yield piece

    def _dechunk(self):
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield from self._exactly(size)
            self.rfile.readline()

    def _handle(self) -> None:
        accepted, access_key = credentials_of(self.headers.get("Authorization"), self.config.account_id)
        path = self.path.split("?", 1)[0]
        if not accepted:
            if self.headers.get("Authorization") and path.rstrip("/") != "/v2":
                self._record(path, access_key, 401, "UNAUTHORIZED")
            self._deny()
            return
        headers = forwarded_headers(self.headers.items())
        headers["X-Forwarded-Proto"] = "https"
        body = self._body()
        if body is not None and "Content-Length" not in headers:
            headers["Transfer-Encoding"] = "chunked"
        conn = UnixConnection(self.backend)
        try:
            conn.request(
                self.command,
                self.path,
                body=body,
                headers=headers,
                encode_chunked=body is not None and "Content-Length" not in headers,
            )
            resp = conn.getresponse()
            self.send_response(resp.status)
            passed = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS]
            length = resp.getheader("Content-Length")
            if self.command == "HEAD" or resp.status in (204, 304):
                for key, value in passed:
                    self.send_header(key, value)
                self.end_headers()
            elif length is not None:
                for key, value in passed:
                    self.send_header(key, value)
                self.end_headers()
                while piece := resp.read(CHUNK):
                    self.wfile.write(piece)
            else:
                data = resp.read()
                for key, value in passed:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            status = resp.status
        except OSError as exc:
            log.warning("%s %s: the registry did not answer: %s", self.command, path, exc)
            self.close_connection = True
            status = 502
            with contextlib.suppress(OSError):
                self.send_error(502, "the sandbox registry did not answer")
        finally:
            conn.close()
        self._record(path, access_key, status, None if status < 400 else _registry_error(status))

    def _record(self, path: str, access_key: str | None, status: int, error: str | None) -> None:
        found = ecr_operation(self.command, path)
        if found is None:
            return
        operation, repo = found
        cfg = self.config
        resources = [arns.ecr_repository_arn(repo, cfg.region, cfg.account_id)] if repo else []
        try:
            calls.record(
                cfg, source="registry", service="ecr", operation=operation, access_key=access_key,
                account=cfg.account_id, region=cfg.region, resources=resources, status=status, error=error,
            )  # fmt: skip
        except OSError:
            log.exception("cannot record %s in the call log", operation)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815


def _registry_error(status: int) -> str:
    return {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND"}.get(status, f"HTTP{status}")


TLS_HANDSHAKE = b"\x16"  # the content type of a TLS record opening a handshake
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class Server(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread (a slow handshake holds no one up)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    context: ssl.SSLContext

    def finish_request(self, request, client_address) -> None:
        request.settimeout(300)
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first and first != TLS_HANDSHAKE:
                # Plain HTTP on the TLS port: said in plain HTTP, as docker-registry (Go) says it.
                request.sendall(PLAIN_HTTP_ANSWER)
                return
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def make_server(config: Config, backend: str) -> Server:
    handler = type("RegistryHandler", (Handler,), {"config": config, "backend": backend})
    # Loopback (the relay serves it on the bridges' gateways), or everywhere when widened so.
    server = Server((registry_address(config), config.registry_port), handler)
    server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.context.load_cert_chain(config.registry_dir / "server.crt", config.registry_dir / "server.key")
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sandbox.registry_proxy", description=__doc__)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--backend", required=True, help="the docker-registry's Unix socket")
    args = parser.parse_args(argv)
    config = for_daemon(parser, args)
    server = make_server(config, args.backend)
    log.info("ECR front for sandbox %s on %s:%d -> %s", config.name, *server.server_address[:2], args.backend)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
