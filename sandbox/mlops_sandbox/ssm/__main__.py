"""``python -m mlops_sandbox.ssm --sandbox NAME``: run the SSM service (started by ``mlops-sandbox up``).

Settings come from the environment like every sandbox component (see ``config.py``);
``--sandbox`` repeats the sandbox name so that a leftover service is recognisable by its
command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from .. import listen, relay
from ..config import Config, for_daemon
from ..process import Daemon, SandboxError
from ..ssmservice import code_digest
from .api import Api
from .aws import client
from .control import Control
from .cwlogs import LogWriter
from .ecr_events import EcrEvents
from .ecr_images import EcrImages
from .engine import Engine
from .faults import Faults
from .instances import Registry
from .server import Service, make_server
from .timing import Settings, Timing, parse_latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sandbox.ssm", description=__doc__)
    parser.add_argument("--sandbox", required=True, help="the sandbox name (must match MLOPS_SANDBOX_NAME)")
    args = parser.parse_args(argv)
    config = for_daemon(parser, args)
    log = logging.getLogger("mlops_sandbox.ssm")

    lock = threading.RLock()
    registry = Registry(config.state_dir / "ssm" / "instances.json", lock, config.account_id)
    faults = Faults()
    logs = LogWriter(config.moto_url, config.region)
    timing = Timing(Settings(config.ping_timeout, parse_latency(config.latency), config.list_lag))
    engine = Engine(registry, faults, logs, timing)
    control = Control(config, engine, registry, faults)
    engine.on_kill = control.kill_now
    logs.credentials_for = control.agent_credentials
    logs.account_for = lambda iid: getattr(registry.get(iid), "account", None)
    api = Api(engine, registry, control.index, config.account_id, config.region)
    loaded = registry.load()
    dropped = control.reconcile()
    log.info("registry: %d instance(s) loaded, %d dropped (gone from EC2 or Docker)", len(loaded), len(dropped))
    try:
        # The sandbox's VPC and subnet exist from the start (ECS tasks in awsvpc need a
        # subnet even when no instance was launched).
        log.info("VPC subnet %s", control.subnet())
    except Exception as exc:  # moto not answering: instances will make it later
        log.warning("cannot make the sandbox's VPC yet: %s", exc)
    engine.start()
    moto_pid = Daemon("moto", config.state_dir, config.log_dir).pid()
    exists = _repository_exists(config)
    ecr = EcrImages(config, exists)
    events = EcrEvents(config, exists)
    service = Service(
        api, control, faults, ("127.0.0.1", config.moto_port), code_digest(), moto_pid, ecr, config, events
    )
    listeners = listen.Listeners(
        "ssm", config.ssm_port, lambda sock: make_server(service, sock), lambda: listen.sandbox_plan(config)
    )
    try:
        listeners.start()
    except SandboxError as exc:
        log.error("%s", exc)
        engine.stop()
        return 1
    control.on_network = lambda gateway: _follow_network(config, listeners, gateway)
    log.info(
        "SSM service for sandbox %s on %s port %d (moto on :%d)",
        config.name,
        ", ".join(listeners.addresses),
        config.ssm_port,
        config.moto_port,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        listeners.close()
    return 0


def _follow_network(config: Config, listeners: listen.Listeners, gateway: str) -> None:
    """A network was just made for instances: this service, moto and the registry listen
    on its gateway before anything is started on it (the others follow Docker's events)."""
    listeners.sync()
    ports = [config.ssm_port, config.moto_port]
    if config.registry_enabled and relay.daemon(config).pid():
        ports.append(config.registry_port)
    listen.wait_listening(gateway, ports, timeout=30)


def _repository_exists(config: Config):
    ecr = client("ecr", config.moto_url, config.region)

    def exists(name: str) -> bool:
        try:
            ecr.describe_repositories(repositoryNames=[name])
        except ecr.exceptions.RepositoryNotFoundException:
            return False
        return True

    return exists


if __name__ == "__main__":
    sys.exit(main())
