"""The export lines any AWS client needs to talk to the sandbox."""

from __future__ import annotations

import shlex
from pathlib import Path

from .config import Config

# moto accepts any credentials; these are obviously fake and never real secrets.
DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"  # noqa: S105


def exports(config: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    values = {
        "AWS_ENDPOINT_URL": config.moto_url,
        # SSM goes to the sandbox's Run Command service (it forwards the rest of SSM to moto).
        "AWS_ENDPOINT_URL_SSM": config.ssm_url,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        # No instance metadata service on the machine running the clients.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "MLOPS_SANDBOX_NAME": config.name,
        "MLOPS_SANDBOX_ACCOUNT_ID": config.account_id,
        "MLOPS_SANDBOX_MOTO_PORT": str(config.moto_port),
        "MLOPS_SANDBOX_SSM_PORT": str(config.ssm_port),
        "MLOPS_SANDBOX_CONTROL_URL": config.control_url,
    }
    if config.registry_enabled:
        # The ECR stand-in: image names start with this; its CA for clients that need it.
        values["MLOPS_SANDBOX_ECR_REGISTRY"] = config.registry_address
        values["MLOPS_SANDBOX_REGISTRY_CA"] = str(config.registry_ca)
        # ECR's image API (DescribeImages, ...) answered from that registry; the rest of
        # ECR is passed on to moto (ssm/ecr_images.py).
        values["AWS_ENDPOINT_URL_ECR"] = config.ssm_url
    values.update(extra or {})
    return values


def write(config: Config, extra: dict[str, str] | None = None) -> Path:
    path = config.env_file
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make sandbox-up`; source it: `. .sandbox/env`"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in exports(config, extra).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def read(path: Path) -> dict[str, str]:
    """The exports of an env file written by ``write``, as a dict."""
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _sep, value = line[len("export ") :].partition("=")
            values[key] = shlex.split(value)[0] if value else ""
    return values
