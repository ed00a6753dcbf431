"""The ECR stand-in: Debian's ``docker-registry`` (distribution 2.8) behind the ECR host name.

moto's ECR hands out the token ``base64("AWS:<account>-auth-token")`` and the proxy
endpoint ``https://<account>.dkr.ecr.<region>.amazonaws.com``. This component makes that
endpoint real on the machine:

- TLS with a certificate for the ECR host name, signed by a CA of the sandbox
  (``<state_dir>/registry/ca.crt``, also put in ``/etc/docker/certs.d/<host>/ca.crt`` so
  the host's engine trusts it; sandbox instances copy it into their own engine);
- ``htpasswd -B`` authentication with user ``AWS`` and moto's password, so
  ``docker login`` with the token moto returns works and any other password is refused;
- port 443, on ``127.0.0.1`` itself and, through the relay (relay.py), on the gateways
  of the Docker bridges (listen.py), nothing else; the host name mapped in ``/etc/hosts``
  to the default bridge's gateway, which the host and its engine reach (instances map it
  to their own network's gateway with ``--add-host <ecr_host>:<gateway>``).

Port 443 and the host name are machine-wide, so only one sandbox on a machine runs the
registry; the others set ``MLOPS_SANDBOX_REGISTRY=0``. ``down`` stops the process and
removes the hosts block and the certs.d entry; the CA and the pushed images stay under
the state dir for the next ``up``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import containers
from .config import Config
from .process import Daemon, SandboxError, free_port, wait_until
from .relay import Relay, registry_address

USER = "AWS"
HOSTS_FILE = Path("/etc/hosts")
CERTS_D = Path("/etc/docker/certs.d")
PACKAGES_HINT = "run `make setup` (it installs Debian's docker-registry and apache2-utils)"


def password(config: Config) -> str:
    """moto's ECR password: GetAuthorizationToken returns base64("AWS:<this>")."""
    return f"{config.account_id}-auth-token"


# --------------------------------------------------------------------------- /etc/hosts


def _markers(name: str) -> tuple[str, str]:
    return (
        f"# BEGIN mlops-sandbox registry ({name}); removed by `mlops-sandbox down`",
        f"# END mlops-sandbox registry ({name})",
    )


def hosts_without_block(text: str, name: str) -> str:
    """``text`` (an /etc/hosts) without the block this sandbox wrote, if any."""
    begin, end = _markers(name)
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if stripped == begin:
            inside = True
        elif inside and stripped == end:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def hosts_with_block(text: str, name: str, entries: dict[str, str]) -> str:
    """``text`` with this sandbox's block (host -> address) at the end, replacing an older one."""
    begin, end = _markers(name)
    base = hosts_without_block(text, name)
    if base and not base.endswith("\n"):
        base += "\n"
    body = "".join(f"{address} {host}\n" for host, address in entries.items())
    return f"{base}{begin}\n{body}{end}\n"


def rewrite_in_place(path: Path, new_text: str) -> bool:
    """Write ``new_text`` into ``path`` without replacing the file (it may be a bind mount)."""
    if path.read_text() == new_text:
        return False
    with open(path, "r+", encoding="utf-8") as fh:
        fh.write(new_text)
        fh.truncate()
    return True


# --------------------------------------------------------------------------- network


def bridge_gateway_ip() -> str:
    """The address of Docker's default bridge on the host (docker0), e.g. 172.17.0.1.

    It reaches the host from the host itself and from every container, so one
    mapping of the registry's name serves both.
    """
    return containers.default_bridge().gateway


def engine_resolves(address: str) -> bool:
    """Whether the Docker engine reaches the registry by name (its resolver re-reads
    /etc/hosts only every few seconds): a pull without credentials gets the registry's
    "no basic auth credentials" once it does, "no such host" before."""
    with tempfile.TemporaryDirectory(prefix="mlops-sandbox-probe-") as empty:
        try:
            result = subprocess.run(
                ["docker", "pull", f"{address}/mlops-sandbox/resolve-probe:none"],
                env={**os.environ, "DOCKER_CONFIG": empty},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return False
    return "no such host" not in result.stderr and "basic auth" in result.stderr


def registry_http_status(connect_host: str, port: int, server_name: str, cafile: Path, timeout: float = 2.0) -> int:
    """Status of ``GET /v2/`` over TLS, verifying the certificate for ``server_name``; 0 when unreachable."""
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with (
            socket.create_connection((connect_host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.sendall(f"GET /v2/ HTTP/1.0\r\nHost: {server_name}\r\n\r\n".encode())
            head = tls.recv(64).decode("latin-1")
    except (OSError, ssl.SSLError):
        return 0
    parts = head.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


# --------------------------------------------------------------------------- certificates


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)


def ensure_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The sandbox's CA (created once, kept across up/down so trust set up elsewhere stays valid)."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    cert = _load_cert(cert_path)
    if cert is not None and key_path.exists() and cert.not_valid_after_utc > _now() + datetime.timedelta(days=30):
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        return cert, key  # type: ignore[return-value]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mlops-sandbox {name} registry CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _san(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(ext.get_values_for_type(x509.DNSName)), {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def ensure_server_cert(
    directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, host: str, ips: list[str]
) -> bool:
    """A server certificate for ``host`` and ``ips`` signed by the CA; True when (re)issued."""
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    current = _load_cert(cert_path)
    if (
        current is not None
        and key_path.exists()
        and current.issuer == ca.subject
        and _san(current) == ({host}, set(ips))
        and current.not_valid_after_utc > _now() + datetime.timedelta(days=7)
    ):
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(host)] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    # The chain (server, then CA) so clients that only know the CA can verify.
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    return True


# --------------------------------------------------------------------------- component


class Registry:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = config.registry_dir
        self.daemon = Daemon("registry", config.state_dir, config.log_dir)
        self.config_file = self.dir / "mlops-sandbox-registry.yml"
        self.relay = Relay(config)

    @property
    def certs_d_entry(self) -> Path:
        """Where the host's engine looks for the registry's CA (the port only when not 443)."""
        return CERTS_D / self.config.registry_address / "ca.crt"

    def _status(self, connect_host: str) -> int:
        return registry_http_status(
            connect_host, self.config.registry_port, self.config.ecr_host, self.config.registry_ca
        )

    def healthy(self) -> bool:
        """Up, serving TLS for the ECR name, and asking for credentials."""
        return self._status("127.0.0.1") == 401

    def _check_tools(self) -> None:
        missing = [tool for tool in ("docker-registry", "htpasswd") if shutil.which(tool) is None]
        if missing:
            raise SandboxError(f"{' and '.join(missing)} not found; {PACKAGES_HINT}")

    def _write_htpasswd(self) -> None:
        path = self.dir / "htpasswd"
        # -i: the password from stdin, never on a command line.
        result = subprocess.run(
            ["htpasswd", "-B", "-i", "-n", USER],
            input=password(self.config),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"htpasswd failed: {result.stderr.strip()}")
        _write_private(path, result.stdout.strip().encode() + b"\n")

    def settings(self) -> dict:
        """The registry's configuration, but for its random HTTP secret."""
        return {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}, "delete": {"enabled": True}},
            "http": {
                "addr": self._addr(),
                "tls": {"certificate": str(self.dir / "server.crt"), "key": str(self.dir / "server.key")},
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "auth": {"htpasswd": {"realm": "mlops-sandbox-ecr", "path": str(self.dir / "htpasswd")}},
            # Pushes become ECR's "ECR Image Action" events (ssm/ecr_events.py); the SSM
            # service is on this machine, reached on the loopback.
            "notifications": {
                "endpoints": [
                    {
                        "name": "mlops-sandbox-ecr-events",
                        "url": f"{self.config.ssm_url}/_sandbox/ecr/events",
                        "headers": {"Content-Type": ["application/json"]},
                        "timeout": "5s",
                        "threshold": 5,
                        "backoff": "1s",
                        "ignore": {"actions": ["pull"]},
                    }
                ]
            },
        }

    def _write_config(self) -> None:
        settings = self.settings()
        settings["http"]["secret"] = secrets.token_hex(16)
        # JSON is YAML; the registry reads either.
        self.config_file.write_text(json.dumps(settings, indent=2) + "\n")

    def _addr(self) -> str:
        return f"{registry_address(self.config)}:{self.config.registry_port}"

    def _config_current(self) -> bool:
        """Whether the running registry was started with today's settings."""
        try:
            written = json.loads(self.config_file.read_text())
        except (OSError, ValueError):
            return False
        written.get("http", {}).pop("secret", None)
        return written == self.settings()

    def _update_hosts(self, gateway: str) -> bool:
        try:
            text = HOSTS_FILE.read_text()
            return rewrite_in_place(
                HOSTS_FILE, hosts_with_block(text, self.config.name, {self.config.ecr_host: gateway})
            )
        except OSError as exc:
            raise SandboxError(f"cannot map {self.config.ecr_host} in {HOSTS_FILE} ({exc}); run as root") from exc

    def _install_ca_for_engine(self) -> None:
        try:
            self.certs_d_entry.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.config.registry_ca, self.certs_d_entry)
        except OSError as exc:
            raise SandboxError(f"cannot write {self.certs_d_entry} ({exc}); run as root") from exc

    def up(self) -> str:
        self._check_tools()
        host, port = self.config.ecr_host, self.config.registry_port
        gateway = bridge_gateway_ip()
        self.dir.mkdir(parents=True, exist_ok=True)
        ca, ca_key = ensure_ca(self.dir, self.config.name)
        reissued = ensure_server_cert(self.dir, ca, ca_key, host, sorted({"127.0.0.1", gateway}))
        running = self.daemon.pid() is not None and self.healthy() and self._config_current()
        if not running or reissued:
            # The relay holds the port on the bridges: it goes first, and comes back after.
            self.relay.stop()
            self.daemon.stop()
            try:
                free_port(port, str(self.config_file))
            except SandboxError as exc:
                raise SandboxError(
                    f"{exc}. The registry needs port {port} on this machine; if another sandbox runs it, "
                    "set MLOPS_SANDBOX_REGISTRY=0 here (or stop that one)"
                ) from None
            self._write_htpasswd()
            self._write_config()
            (self.dir / "data").mkdir(exist_ok=True)
            pid = self.daemon.start(["docker-registry", "serve", str(self.config_file)])
            wait_until(self.healthy, 30, f"registry (pid {pid}) on :{port}", self.daemon.log_tail)
        relayed = self.relay.up()
        hosts_changed = self._update_hosts(gateway)
        self._install_ca_for_engine()
        # Through the name, as every client will reach it, the engine included.
        wait_until(lambda: self._status(host) == 401, 10, f"registry through {host}", self.daemon.log_tail)
        if hosts_changed:
            address = self.config.registry_address
            wait_until(lambda: engine_resolves(address), 30, f"the Docker engine resolving {host}")
        state = "already up" if running and not reissued else "up"
        return (
            f"registry {state} at https://{self.config.registry_address} -> {gateway} (pid {self.daemon.pid()}, "
            f"user {USER}, CA {self.config.registry_ca}; {relayed})"
        )

    def down(self) -> str:
        self.relay.stop()
        stopped = self.daemon.stop()
        with contextlib.suppress(SandboxError):
            free_port(self.config.registry_port, str(self.config_file))
        removed = []
        with contextlib.suppress(OSError):
            if rewrite_in_place(HOSTS_FILE, hosts_without_block(HOSTS_FILE.read_text(), self.config.name)):
                removed.append(f"{HOSTS_FILE} entry")
        entry = self.certs_d_entry
        with contextlib.suppress(OSError):
            if entry.exists() and entry.read_bytes() == self.config.registry_ca.read_bytes():
                entry.unlink()
                removed.append(str(entry))
                with contextlib.suppress(OSError):
                    entry.parent.rmdir()
        what = "registry stopped" if stopped else "registry was not running"
        return what + (f"; removed {', '.join(removed)}" if removed else "")

    def status(self) -> str:
        pid = self.daemon.pid()
        if pid and self.healthy():
            return f"registry: up at https://{self.config.registry_address} (pid {pid})"
        return "registry: down"
