"""Real stand-ins the ecr_login / compose_deploy tests and the benchmark share.

- ``RegistryClient``: a docker client configuration of its own (never the machine's
  ~/.docker/config.json, which other people use), logged in to the sandbox registry with
  the token moto's ECR hands out; builds the tiny model-API images and pushes them.
- ``ImdsServer``: an HTTP instance metadata service speaking IMDSv2 (token first).
- ``DenyingEcr``: an HTTP endpoint that answers every ECR call with AccessDenied, as AWS
  does for an identity without ``ecr:GetAuthorizationToken``.

Everything created carries the label ``io.mlops-deploy.test=compose-deploy-<run>`` or a
``mlops-test`` name, and ``cleanup_*`` removes only that.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE_SOURCE = HERE / "model_api"
# Per test run: two checkouts testing at once on one engine and one registry never see,
# prune or remove each other's images.
RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = f"io.mlops-deploy.test=compose-deploy-{RUN_ID}"
REPOSITORY = f"mlops-test/model-api-{RUN_ID}"
VARIANTS = {
    # name: (MODEL_VERSION, HEALTHY)
    "v1": ("v1", "1"),
    "v2": ("v2", "1"),
    "broken": ("v3-broken", "0"),
    "sidecar": ("sidecar", "1"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(argv, env=None, input_text=None, timeout=300, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        argv, env=env, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def plugin_dirs() -> list[Path]:
    home = Path.home() / ".docker" / "cli-plugins"
    return [home, Path("/usr/local/lib/docker/cli-plugins"), Path("/usr/libexec/docker/cli-plugins")]


def make_docker_config(directory: Path) -> Path:
    """An empty docker client configuration dir that still finds the compose plugin."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in plugin_dirs():
        if (source / "docker-compose").exists():
            link = directory / "cli-plugins"
            if not link.exists():
                link.symlink_to(source)
            break
    return directory


def ensure_repository(ecr_client, name: str) -> None:
    """Create an ECR repository in moto (what makes the image URI exist), if it is not there."""
    try:
        ecr_client.create_repository(repositoryName=name)
    except ecr_client.exceptions.RepositoryAlreadyExistsException:
        return


def ecr_credentials(ecr_client) -> dict:
    """moto's GetAuthorizationToken, decoded: {"registry", "user", "password", "token"}."""
    data = ecr_client.get_authorization_token()["authorizationData"][0]
    user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = data["proxyEndpoint"].split("://", 1)[1]
    return {"registry": registry, "user": user, "password": password, "token": data["authorizationToken"]}


class RegistryClient:
    """docker CLI calls with a private DOCKER_CONFIG, logged in to the sandbox registry."""

    def __init__(self, config_dir: Path, credentials: dict):
        self.config_dir = make_docker_config(config_dir)
        self.registry = credentials["registry"]
        self.credentials = credentials
        self.env = {**os.environ, "DOCKER_CONFIG": str(self.config_dir), "DOCKER_BUILDKIT": "0"}

    def docker(self, *args, input_text=None, check=True, timeout=300) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, input_text=input_text, check=check, timeout=timeout)

    def login(self) -> None:
        self.docker(
            "login", "--username", self.credentials["user"], "--password-stdin", self.registry,
            input_text=self.credentials["password"],
        )  # fmt: skip

    def uri(self, tag: str, repository: str = REPOSITORY) -> str:
        return f"{self.registry}/{repository}:{tag}"

    def build(self, variant: str, repository: str = REPOSITORY) -> str:
        """Build a model-API variant as ``<registry>/<repository>:<variant>``; its image ID."""
        version, healthy = VARIANTS[variant]
        tag = self.uri(variant, repository)
        self.docker(
            "build", "--quiet", "--build-arg", f"VERSION={version}", "--build-arg", f"HEALTHY={healthy}",
            "--label", TEST_LABEL, "--tag", tag, str(IMAGE_SOURCE),
        )  # fmt: skip
        return self.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()

    def push(self, source_tag: str, tag: str, repository: str = REPOSITORY) -> str:
        """Tag ``source_tag`` as ``tag`` and push it; the registry digest (sha256:...)."""
        target = self.uri(tag, repository)
        self.docker("tag", source_tag, target)
        out = self.docker("push", target).stdout
        for line in out.splitlines():
            if "digest: sha256:" in line:
                return line.split("digest: ", 1)[1].split()[0]
        raise AssertionError(f"no digest in the output of docker push {target}:\n{out}")

    def retag(self, source_tag: str, tag: str, repository: str = REPOSITORY) -> str:
        """Point ``tag`` at ``source_tag``'s manifest inside the registry (as ``aws ecr
        put-image`` does), leaving this engine's local tags alone; the digest."""
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        auth = base64.b64encode(f"{self.credentials['user']}:{self.credentials['password']}".encode()).decode()
        context = ssl.create_default_context(cafile=f"/etc/docker/certs.d/{self.registry}/ca.crt")
        base = f"https://{self.registry}/v2/{repository}/manifests/"
        headers = {"Authorization": f"Basic {auth}", "Accept": accept}
        with urllib.request.urlopen(urllib.request.Request(base + source_tag, headers=headers), context=context) as r:
            manifest, media_type = r.read(), r.headers["Content-Type"]
            digest = r.headers["Docker-Content-Digest"]
        put = urllib.request.Request(
            base + tag, data=manifest, method="PUT", headers={**headers, "Content-Type": media_type}
        )
        with urllib.request.urlopen(put, context=context) as r:
            assert r.status == 201, r.status
        return digest


def owned_project(prefix: str, run_id: str) -> str:
    """A project name that says which process made it: ``<prefix><pid>-<run_id>``."""
    return f"{prefix}{os.getpid()}-{run_id}"


def _owner_gone(name: str, prefix: str) -> bool:
    """True when the process named in ``<prefix><pid>-...`` no longer runs (or none is named)."""
    pid = name[len(prefix) :].split("-", 1)[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def cleanup_projects(prefix: str, leftovers_only: bool = False) -> None:
    """Remove the compose projects whose name starts with ``prefix`` (ours only).

    With ``leftovers_only``, only those whose creating process is gone: what an
    interrupted earlier run left, never the projects of a run going on beside us.
    """
    out = run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project"], check=False).stdout.split()
    projects = set()
    for cid in out:
        name = run(
            ["docker", "inspect", "--format", '{{index .Config.Labels "com.docker.compose.project"}}', cid], check=False
        ).stdout.strip()
        if name.startswith(prefix) and (not leftovers_only or _owner_gone(name, prefix)):
            projects.add(name)
    for project in sorted(projects):
        run(["docker", "compose", "-p", project, "down", "--remove-orphans", "--timeout", "2"], check=False)


def cleanup_images(label: str = TEST_LABEL) -> None:
    """Remove every image carrying our test label (nobody else's)."""
    ids = set(run(["docker", "images", "-q", "--filter", f"label={label}"], check=False).stdout.split())
    if ids:
        run(["docker", "rmi", "--force", *sorted(ids)], check=False)


# --------------------------------------------------------------------------- IMDS


class _ImdsHandler(http.server.BaseHTTPRequestHandler):
    server: _ImdsHttpServer

    def do_PUT(self):  # noqa: N802
        if self.path != "/latest/api/token":
            self._send(404, b"")
            return
        if self.server.silent_token:  # what a hop limit of 1 looks like from a container
            self.server.token_requests += 1
            self.server.release.wait(10)  # no answer: the client times out
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if not ttl or not ttl.isdigit():
            self._send(400, b"missing or bad X-aws-ec2-metadata-token-ttl-seconds")
            return
        self.server.token_requests += 1
        self._send(200, self.server.token.encode())

    def do_GET(self):  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != self.server.token:
            self.server.unauthorized += 1
            self._send(401, b"")  # IMDSv2 required: no token, no answer
            return
        if self.path == "/latest/dynamic/instance-identity/document":
            doc = {
                "accountId": self.server.account_id,
                "region": self.server.region,
                "availabilityZone": self.server.region + "a",
                "instanceId": "i-0123456789abcdef0",
                "instanceType": "t3.medium",
                "architecture": "x86_64",
                "imageId": "ami-0123456789abcdef0",
                "privateIp": "10.0.0.10",
                "pendingTime": "2026-11-21T00:00:00Z",
                "version": "2017-09-30",
            }
            self._send(200, json.dumps(doc, indent=2).encode())
        elif self.path == "/latest/meta-data/placement/region":
            self._send(200, self.server.region.encode())
        else:
            self._send(404, b"")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _ImdsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class ImdsServer:
    """An IMDSv2 service on 127.0.0.1 (point AWS_EC2_METADATA_SERVICE_ENDPOINT at ``url``)."""

    def __init__(self, region: str, account_id: str, silent_token: bool = False):
        self.httpd = _ImdsHttpServer(("127.0.0.1", 0), _ImdsHandler)
        self.httpd.region = region
        self.httpd.account_id = account_id
        self.httpd.token = secrets.token_urlsafe(24)
        self.httpd.silent_token = silent_token
        self.httpd.release = threading.Event()
        self.httpd.token_requests = 0
        self.httpd.unauthorized = 0
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> ImdsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- denied ECR


class _DenyHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                "ecr:GetAuthorizationToken on resource: * because no identity-based policy allows it",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-ErrorType", "AccessDeniedException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DenyingEcr:
    """An ECR endpoint that refuses everything (give its ``url`` as endpoint_url)."""

    def __init__(self):
        self.httpd = _ImdsHttpServer(("127.0.0.1", 0), _DenyHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> DenyingEcr:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class InstancePlays:
    """Plays in one sandbox instance over the ``community.docker.docker`` connection (its
    Python, its Docker engine, ECR through its metadata service), reported by the
    ``ansible.posix.json`` callback: the compose_deploy tests of blue/green and the
    zero-downtime benchmark drive the instance's proxy this way."""

    def __init__(self, container: str, runner_class) -> None:
        self.container = container
        self.runner = runner_class(
            {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_PYTHON_INTERPRETER": "/usr/local/bin/python3"}
        )

    def sh(self, script: str, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """``sh -c script`` in the instance."""
        return run(["docker", "exec", "-i", self.container, "sh", "-c", script], input_text=input_text, check=check)

    def put_file(self, path: str, text: str) -> None:
        self.sh(f"mkdir -p {os.path.dirname(path)} && cat > {path}", input_text=text)

    def deploy(self, args: dict, *extra: str, login: bool = True) -> dict:
        """ecr_login, then compose_deploy with ``args``; ``{"result", "seconds", "rc"}`` of
        the compose_deploy task (a failed task is returned, not raised)."""
        tasks = [{"name": "Log in to ECR", "mlops.deploy.ecr_login": {}}] if login else []
        tasks.append({"name": "Deploy", "mlops.deploy.compose_deploy": args, "register": "deploy"})
        play = [{"name": "compose_deploy in the instance", "hosts": "all", "gather_facts": False, "tasks": tasks}]
        build = Path(__file__).resolve().parents[2] / ".build"
        build.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=build, delete=False) as fh:
            json.dump(play, fh)  # JSON is YAML
        try:
            result = self.runner.run(fh.name, None, "-i", f"{self.container},", "-c", "community.docker.docker", *extra)
        finally:
            os.unlink(fh.name)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"ansible-playbook did not report JSON (rc {result.returncode}):\n{result.stderr[-3000:]}"
            ) from None
        last = report["plays"][0]["tasks"][-1]
        if last["task"]["name"] != "Deploy":
            raise AssertionError(f"the play stopped at {last['task']['name']}: {last['hosts']}")
        duration = last["task"]["duration"]
        return {
            "result": last["hosts"][self.container],
            "seconds": _stamp(duration["end"]) - _stamp(duration["start"]),
            "rc": result.returncode,
        }


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
