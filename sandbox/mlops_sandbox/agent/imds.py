"""Instance metadata service (IMDSv2 only) at 169.254.169.254:80 inside a sandbox instance.

Tokens come from ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
(1..21600); every GET needs a live token in ``X-aws-ec2-metadata-token`` or gets 401, as
on an instance with ``HttpTokens=required``. It serves the instance identity, placement,
and the credentials of the instance profile's role -- an STS session of that role named
after the instance, as EC2's, obtained from the SSM service's control plane
(``POST /_agent/credentials``, EC2's side of it) -- so boto3 and the AWS CLI on the
instance find credentials the way they do on EC2, and every call they sign is the
instance role's in the sandbox's call log. Standard library only.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDRESS = "169.254.169.254"
MAX_TTL = 21600


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Metadata:
    def __init__(self, env: dict[str, str]) -> None:
        self.instance_id = env["MLOPS_INSTANCE_ID"]
        self.region = env["MLOPS_REGION"]
        self.az = env.get("MLOPS_AZ", self.region + "a")
        self.account = env["MLOPS_ACCOUNT_ID"]
        self.role = env.get("MLOPS_ROLE", "")
        self.ip = env.get("MLOPS_PRIVATE_IP", "")
        self.ami = env.get("MLOPS_AMI_ID", "")
        self.instance_type = env.get("MLOPS_INSTANCE_TYPE", "t3.medium")
        self.started = datetime.now(UTC)
        self.control = env.get("MLOPS_SSM_ENDPOINT", "").rstrip("/")
        self.session: dict | None = None
        self.tokens: dict[str, float] = {}
        self.lock = threading.Lock()

    def new_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = time.monotonic()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
            self.tokens[token] = now + ttl
        return token

    def token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def hostname(self) -> str:
        return f"ip-{self.ip.replace('.', '-')}.{self.region}.compute.internal"

    def document(self) -> dict:
        return {
            "accountId": self.account,
            "architecture": "x86_64",
            "availabilityZone": self.az,
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": self.ami,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "kernelId": None,
            "pendingTime": _iso(self.started),
            "privateIp": self.ip,
            "ramdiskId": None,
            "region": self.region,
            "version": "2017-09-30",
        }

    def credentials(self) -> dict:
        now = datetime.now(UTC)
        session = self._session()
        if session is None:
            # The control plane did not answer: dummy values (moto takes any), no identity.
            session = {
                "AccessKeyId": "ASIASANDBOX" + self.instance_id[-9:].upper().replace("-", "0"),
                "SecretAccessKey": "sandbox-instance-secret",
                "Token": "sandbox-instance-session-token",
                "Expiration": _iso(now + timedelta(hours=1)),
            }
        return {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC", **session}

    def _session(self) -> dict | None:
        """The role session from the control plane, kept until 15 minutes before it expires."""
        with self.lock:
            held = self.session
            if held and datetime.strptime(held["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(
                UTC
            ) > timedelta(minutes=15):
                return held
        if not self.control:
            return None
        url = f"{self.control}/_agent/credentials"
        req = urllib.request.Request(
            url,
            data=json.dumps({"instance_id": self.instance_id}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - the sandbox's own service
                fresh = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            print(f"imds: no role credentials from {url}: {exc}", file=sys.stderr, flush=True)
            return None
        with self.lock:
            self.session = fresh
        return fresh

    def lookup(self, path: str) -> tuple[str, str] | None:
        """(content type, body) for a metadata path, None for 404."""
        tree = {
            "latest/meta-data/instance-id": self.instance_id,
            "latest/meta-data/ami-id": self.ami,
            "latest/meta-data/instance-type": self.instance_type,
            "latest/meta-data/local-ipv4": self.ip,
            "latest/meta-data/hostname": self.hostname(),
            "latest/meta-data/local-hostname": self.hostname(),
            "latest/meta-data/placement/availability-zone": self.az,
            "latest/meta-data/placement/region": self.region,
            "latest/meta-data/services/domain": "amazonaws.com",
            "latest/meta-data/services/partition": "aws",
        }
        if self.role:
            profile_arn = f"arn:aws:iam::{self.account}:instance-profile/{self.role}"
            tree["latest/meta-data/iam/info"] = json.dumps(
                {"Code": "Success", "LastUpdated": _iso(self.started), "InstanceProfileArn": profile_arn}, indent=2
            )
            tree["latest/meta-data/iam/security-credentials/"] = self.role
            tree[f"latest/meta-data/iam/security-credentials/{self.role}"] = json.dumps(self.credentials(), indent=2)
        tree["latest/dynamic/instance-identity/document"] = json.dumps(self.document(), indent=2)
        path = path.lstrip("/")
        if path in tree:
            return "text/plain", tree[path]
        # Directory listings: the next segment of every path below this one.
        prefix = path if path.endswith("/") else path + "/"
        children = sorted(
            {
                p[len(prefix) :].split("/", 1)[0] + ("/" if "/" in p[len(prefix) :] else "")
                for p in tree
                if p.startswith(prefix)
            }
        )
        if children and path:
            return "text/plain", "\n".join(c for c in children if c)
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "EC2ws"
    metadata: Metadata

    def log_message(self, fmt: str, *args) -> None:  # quiet
        return

    def _send(self, code: int, body: str = "", ctype: str = "text/plain", headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/latest/api/token":
            self._send(404, "Not Found")
            return
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TTL:
            self._send(400, "Bad Request")
            return
        token = self.metadata.new_token(ttl)
        self._send(200, token, headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def do_GET(self) -> None:  # noqa: N802
        if not self.metadata.token_ok(self.headers.get("X-aws-ec2-metadata-token")):
            self._send(401, "Unauthorized")
            return
        found = self.metadata.lookup(self.path.split("?", 1)[0])
        if found is None:
            self._send(404, "Not Found")
            return
        self._send(200, found[1], found[0])


def serve(env: dict[str, str] | None = None, address: str = ADDRESS, port: int = 80) -> ThreadingHTTPServer:
    handler = type("MetadataHandler", (Handler,), {"metadata": Metadata(dict(env or os.environ))})
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="imds", daemon=True)
    thread.start()
    return server
