"""The sandbox's SSM agent: polls the SSM service for work and runs it on this instance.

Like the real agent it learns its instance id from the instance metadata service, long-
polls for messages, acknowledges each (its first report), runs the document's plugins
in order and reports output while they run:

- ``aws:runShellScript``: the commands written to ``_script.sh`` and run with ``sh -c``
  in the step's working directory (default: the command's download directory), killed
  with its process group at the execution timeout (exit 137, Execution Timed Out) or on
  cancel (137, Cancelled);
- ``aws:downloadContent`` with SourceType S3: the object (or every object under a
  ``.../`` prefix) named by ``SourceInfo.path`` in any of S3's URL forms, fetched from the
  S3 endpoint the instance is configured with.

Standard library only (it runs on instances without any Python packages).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET  # noqa: N817, S405 - S3 listings from the sandbox's own moto
from pathlib import Path

ROOT = Path("/var/lib/amazon/ssm")
# Where the agent says who it is: the sandbox stops (SIGSTOP) and resumes it by this pid.
PID_FILE = Path("/run/mlops-agent.pid")
REPORT_EVERY = 1.0
KILLED = 137  # 128 + SIGKILL, what the agent reports for a timed-out or cancelled script


def log(msg: str) -> None:
    print(f"agent: {msg}", flush=True)


# -- HTTP ---------------------------------------------------------------------------------
def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - sandbox URLs
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return resp.status, resp.read()


def post_json(url: str, payload: dict, timeout: float = 30) -> dict:
    status, data = http(
        "POST", url, json.dumps(payload).encode(), {"Content-Type": "application/json"}, timeout=timeout
    )
    return json.loads(data or b"{}")


def metadata(path: str) -> str:
    """One IMDSv2 read (token first), as the SSM agent reads the instance's identity."""
    _s, token = http(
        "PUT", "http://169.254.169.254/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    _s, data = http(
        "GET", f"http://169.254.169.254/latest/{path}", headers={"X-aws-ec2-metadata-token": token.decode()}
    )
    return data.decode()


def instance_id() -> str:
    """From IMDSv2; the environment as a fallback."""
    for _ in range(50):
        try:
            return metadata("meta-data/instance-id").strip()
        except OSError:
            time.sleep(0.2)
    return os.environ["MLOPS_INSTANCE_ID"]


def role_credentials() -> dict:
    """The instance profile's credentials from IMDS (what the agent signs its S3 requests with)."""
    role = metadata("meta-data/iam/security-credentials/").strip().splitlines()[0]
    return json.loads(metadata(f"meta-data/iam/security-credentials/{role}"))


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_headers(method: str, url: str, region: str, creds: dict, service: str = "s3") -> dict:
    """Signature Version 4 headers for a body-less request."""
    parsed = urllib.parse.urlparse(url)
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": parsed.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    if creds.get("Token"):
        headers["x-amz-security-token"] = creds["Token"]
    query = sorted(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in query
    )
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(urllib.parse.unquote(parsed.path or "/"), safe="/-_.~"),
            canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            payload,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds["SecretAccessKey"]).encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


# -- S3 download ----------------------------------------------------------------------------
S3_HOSTS = (
    re.compile(r"^(?P<bucket>[^.]+(?:\.[^.]+)*?)\.s3[.-](?:(?P<region>[a-z0-9-]+)\.)?amazonaws\.com$"),
    re.compile(r"^(?P<bucket>[^.]+(?:\.[^.]+)*?)\.s3\.amazonaws\.com$"),
)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URL: virtual-hosted, path-style, or s3://; ValueError otherwise."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        return parsed.netloc, urllib.parse.unquote(parsed.path.lstrip("/"))
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an S3 URL: {url}")
    host = parsed.hostname
    path = urllib.parse.unquote(parsed.path.lstrip("/"))
    if re.match(r"^s3[.-]([a-z0-9-]+\.)?amazonaws\.com$", host) or host == "s3.amazonaws.com":
        bucket, _, key = path.partition("/")
        if not bucket:
            raise ValueError(f"no bucket in S3 URL: {url}")
        return bucket, key
    for pattern in S3_HOSTS:
        m = pattern.match(host)
        if m:
            return m.group("bucket"), path
    raise ValueError(f"not an S3 URL: {url}")


def s3_endpoint() -> str:
    return (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "").rstrip("/")


def s3_request(url: str, timeout: float = 300) -> bytes:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    _s, data = http("GET", url, headers=sigv4_headers("GET", url, region, role_credentials()), timeout=timeout)
    return data


def s3_get(bucket: str, key: str) -> bytes:
    return s3_request(f"{s3_endpoint()}/{bucket}/{urllib.parse.quote(key)}")


def s3_list(bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        data = s3_request(f"{s3_endpoint()}/{bucket}?{urllib.parse.urlencode(query)}")
        root = ET.fromstring(data)  # noqa: S314 - the sandbox's own moto
        ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        keys += [c.findtext(f"{ns}Key") for c in root.findall(f"{ns}Contents")]
        token = root.findtext(f"{ns}NextContinuationToken")
        if root.findtext(f"{ns}IsTruncated") != "true" or not token:
            return [k for k in keys if k and not k.endswith("/")]


def download_content(inputs: dict, dest: Path) -> tuple[int, str, str]:
    source_type = inputs.get("SourceType")
    info = inputs.get("SourceInfo") or {}
    if source_type != "S3":
        return 1, "", f"SourceType {source_type} cannot be downloaded in the sandbox (no internet); use S3\n"
    path = info.get("path", "")
    try:
        bucket, key = parse_s3_url(path)
    except ValueError as exc:
        return 1, "", f"{exc}\n"
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        if key == "" or key.endswith("/"):
            keys = s3_list(bucket, key)
            if not keys:
                return 1, "", f"No objects found under s3://{bucket}/{key}\n"
            for k in keys:
                target = dest / k[len(key) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3_get(bucket, k))
                out.append(f"Downloaded s3://{bucket}/{k} to {target}")
        else:
            target = dest / key.rsplit("/", 1)[-1]
            target.write_bytes(s3_get(bucket, key))
            out.append(f"Downloaded s3://{bucket}/{key} to {target}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        code = re.search(r"<Code>([^<]+)</Code>", detail)
        return (
            1,
            "\n".join(out),
            f"Failed to download s3://{bucket}/{key}: {exc.code} {code.group(1) if code else ''}\n",
        )
    except OSError as exc:
        return 1, "\n".join(out), f"Failed to download s3://{bucket}/{key}: {exc}\n"
    out.append(f"Content downloaded to {dest}")
    return 0, "\n".join(out) + "\n", ""


# -- running one invocation -------------------------------------------------------------------
class Invocation(threading.Thread):
    def __init__(self, agent: Agent, message: dict) -> None:
        super().__init__(name=f"run-{message['command_id']}", daemon=True)
        self.agent = agent
        self.message = message
        self.command_id = message["command_id"]
        self.cancelled = threading.Event()
        self.aborted = False
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.pending: dict[str, dict] = {}
        self.orchestration = ROOT / agent.instance_id / "document" / "orchestration" / self.command_id
        self.downloads = self.orchestration / "downloads"

    # Reports are merged per plugin and sent at most every REPORT_EVERY seconds.
    def note(self, plugin: str, **state) -> None:
        with self.lock:
            entry = self.pending.setdefault(plugin, {"stdout": "", "stderr": ""})
            for key, value in state.items():
                if key in ("stdout", "stderr"):
                    entry[key] += value
                else:
                    entry[key] = value

    def send(self, done: bool = False) -> None:
        with self.lock:
            plugins, self.pending = self.pending, {}
        payload = {"instance_id": self.agent.instance_id, "command_id": self.command_id, "plugins": plugins}
        if done:
            payload["done"] = True
        delay = 0.5
        while True:
            try:
                answer = post_json(f"{self.agent.endpoint}/_agent/update", payload)
                break
            except (OSError, ValueError) as exc:
                log(f"report for {self.command_id} failed ({exc}); retrying")
                time.sleep(delay)
                delay = min(delay * 2, 10)
        if answer.get("abort"):
            self.aborted = True
            self.kill()
        elif answer.get("cancel"):
            self.cancel()

    def cancel(self) -> None:
        self.cancelled.set()
        self.kill()

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def run(self) -> None:
        try:
            self.downloads.mkdir(parents=True, exist_ok=True)
            self.send()  # the acknowledgement: InProgress from now on
            for step in self.message["steps"]:
                if self.aborted:
                    return
                name = step["name"]
                if self.cancelled.is_set():
                    self.note(name, details="Cancelled", code=-1, finished=time.time())
                    continue
                self.note(name, started=time.time())
                self.send()
                if step["action"] == "aws:downloadContent":
                    code, out, err = download_content(step["inputs"], self.downloads)
                    details = "Success" if code == 0 else "Failed"
                    self.note(name, stdout=out, stderr=err)
                elif step["action"] == "aws:runShellScript":
                    code, details = self.run_script(name, step)
                else:
                    code, details = 1, "Failed"
                    self.note(name, stderr=f"plugin {step['action']} is not supported by the sandbox agent\n")
                self.note(name, details=details, code=code, finished=time.time())
                self.send()
            if not self.aborted:
                self.send(done=True)
        finally:
            self.agent.finished(self.command_id)

    def run_script(self, name: str, step: dict) -> tuple[int, str]:
        inputs = step["inputs"]
        workdir = Path(inputs.get("workingDirectory") or self.downloads)
        plugin_dir = self.orchestration / re.sub(r"[^A-Za-z0-9]", "", name)
        plugin_dir.mkdir(parents=True, exist_ok=True)
        script = plugin_dir / "_script.sh"
        script.write_text("\n".join(inputs.get("runCommand") or []) + "\n")
        script.chmod(0o700)
        if not workdir.is_dir():
            self.note(name, stderr=f"Working directory {workdir} does not exist\n")
            return 1, "Failed"
        timeout = step.get("timeout") or 3600
        with self.lock:
            self.proc = subprocess.Popen(  # noqa: S603 - the command's own script
                ["sh", "-c", str(script)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        proc = self.proc
        readers = [
            threading.Thread(target=self._pump, args=(name, proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(name, proc.stderr, "stderr"), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        timed_out = False
        last = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() >= deadline:
                timed_out = True
                self.kill()
            elif self.cancelled.is_set() or self.aborted:
                self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
            if time.monotonic() - last >= REPORT_EVERY:
                self.send()
                last = time.monotonic()
        for reader in readers:
            reader.join(timeout=5)
        if timed_out:
            return KILLED, "ExecutionTimedOut"
        if self.cancelled.is_set():
            return KILLED, "Cancelled"
        code = proc.returncode
        if code < 0:  # killed by a signal from elsewhere
            code = 128 - code
        return code, "Success" if code == 0 else "Failed"

    def _pump(self, name: str, stream, which: str) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            self.note(name, **{which: chunk.decode(errors="replace")})


# -- the agent ------------------------------------------------------------------------------------
class Agent:
    def __init__(self, endpoint: str, iid: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.instance_id = iid
        self.running: dict[str, Invocation] = {}
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def finished(self, command_id: str) -> None:
        with self.lock:
            self.running.pop(command_id, None)

    def handle(self, message: dict) -> None:
        command_id = message.get("command_id", "")
        with self.lock:
            run = self.running.get(command_id)
            if message.get("type") == "cancel":
                if run is not None:
                    run.cancel()
                return
            if message.get("type") != "run" or command_id in self.seen:
                return  # offered again after a lost acknowledgement: already ours
            self.seen.add(command_id)
            run = Invocation(self, message)
            self.running[command_id] = run
        run.start()

    def loop(self) -> None:
        delay = 0.5
        while True:
            try:
                answer = post_json(
                    f"{self.endpoint}/_agent/poll", {"instance_id": self.instance_id, "wait": 5}, timeout=30
                )
                delay = 0.5
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # not (or no longer) registered with the service
                    time.sleep(2)
                    continue
                time.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            except (OSError, ValueError):
                time.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            for message in answer.get("messages") or []:
                self.handle(message)


def main() -> int:
    endpoint = os.environ.get("MLOPS_SSM_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL_SSM")
    if not endpoint:
        log("no SSM endpoint (MLOPS_SSM_ENDPOINT) in the environment")
        return 2
    PID_FILE.write_text(f"{os.getpid()}\n")
    iid = instance_id()
    log(f"instance {iid}, SSM endpoint {endpoint}")
    Agent(endpoint, iid).loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
