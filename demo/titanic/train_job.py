"""The Titanic training job, as an ECS task runs it: train, then put the model in S3.

    python3 train_job.py --output s3://<bucket>/models/titanic/<version>.json [--version NAME]

It prints the push that started it when it was started by one (``IMAGE_DIGEST`` and
``IMAGE_TAG``, which the EventBridge rule's input transformer sets), the training progress,
and where the model went with its sha256. The upload is signed with the task
role's credentials, fetched from the ECS agent (``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``)
as every AWS SDK does in a task; ``AWS_ENDPOINT_URL`` (set by the sandbox) points it at the
local stand-in. Standard library only, so the image needs nothing but python3 (a real job
would use boto3, which finds the same credentials).

Exit codes: 0 trained and uploaded; 2 bad arguments; 3 the upload failed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def credentials() -> dict:
    """The task role's credentials from the ECS agent, or the environment's keys."""
    relative = os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative:
        with urllib.request.urlopen("http://169.254.170.2" + relative, timeout=10) as resp:  # noqa: S310
            data = json.load(resp)
        return {"key": data["AccessKeyId"], "secret": data["SecretAccessKey"], "token": data.get("Token")}
    return {
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "token": os.environ.get("AWS_SESSION_TOKEN"),
    }


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def put_object(bucket: str, key: str, body: bytes, region: str) -> str:
    """S3 PutObject signed with SigV4; returns the object's ETag."""
    creds = credentials()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        base = urllib.parse.urlparse(endpoint)
        host, path, scheme = base.netloc, f"/{bucket}/{urllib.parse.quote(key)}", base.scheme
    else:
        host, path, scheme = f"{bucket}.s3.{region}.amazonaws.com", "/" + urllib.parse.quote(key), "https"
    now = datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    # A content type of our own: urllib's default (a form) would be parsed as one on the way.
    headers = {"content-type": "application/json", "host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    if creds["token"]:
        headers["x-amz-security-token"] = creds["token"]
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["PUT", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing = _hmac(_hmac(_hmac(_hmac(("AWS4" + creds["secret"]).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds['key']}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    request = urllib.request.Request(f"{scheme}://{host}{path}", data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
        return resp.headers.get("ETag", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", required=True, help="s3://bucket/key of the model file (s3://bucket/prefix/: <version>.json)"
    )
    parser.add_argument("--version", help="the model's version (default: MODEL_VERSION, or titanic-<pushed digest>)")
    args = parser.parse_args()
    pushed = os.environ.get("IMAGE_DIGEST", "")
    version = (
        args.version
        or os.environ.get("MODEL_VERSION")
        or (f"titanic-{pushed[7:19]}" if pushed.startswith("sha256:") else "titanic-logreg-1")
    )
    if args.output.endswith("/"):
        args.output += f"{version}.json"
    target = urllib.parse.urlparse(args.output)
    if target.scheme != "s3" or not target.netloc or not target.path.strip("/"):
        print(f"--output must be s3://bucket/key, not {args.output!r}", file=sys.stderr)
        return 2
    if os.environ.get("IMAGE_DIGEST"):
        # Started by the push of an image (EventBridge passes the event's digest and tag).
        print(f"started by the push of {os.environ.get('IMAGE_TAG') or '-'} ({os.environ['IMAGE_DIGEST']})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.json"
        subprocess.run(
            [sys.executable, str(HERE / "train.py"), "--version", version, "--out", str(out), "--progress", "50"],
            check=True,
        )
        body = out.read_bytes()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        put_object(target.netloc, target.path.lstrip("/"), body, region)
    except OSError as exc:
        print(f"upload to {args.output} failed: {exc}", file=sys.stderr, flush=True)
        return 3
    print(f"model {version} -> {args.output} sha256 {hashlib.sha256(body).hexdigest()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
