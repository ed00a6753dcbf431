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

from ..config import Config
from ..process import Daemon
from ..ssmservice import code_digest
from .api import Api
from .aws import client
from .control import Control
from .cwlogs import LogWriter
from .ecr_images import EcrImages
from .engine import Engine
from .faults import Faults
from .instances import Registry
from .server import Service, make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sandbox.ssm", description=__doc__)
    parser.add_argument("--sandbox", required=True, help="the sandbox name (must match MLOPS_SANDBOX_NAME)")
    args = parser.parse_args(argv)
    config = Config()
    if args.sandbox != config.name:
        parser.error(f"--sandbox {args.sandbox} does not match MLOPS_SANDBOX_NAME={config.name}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("mlops_sandbox.ssm")

    lock = threading.RLock()
    registry = Registry(config.state_dir / "ssm" / "instances.json", lock, config.account_id)
    faults = Faults()
    logs = LogWriter(config.moto_url, config.region)
    engine = Engine(registry, faults, logs, config.ping_timeout)
    control = Control(config, engine, registry, faults)
    engine.on_kill = control.kill_now
    logs.account_for = lambda iid: getattr(registry.get(iid), "account", None)
    api = Api(engine, registry, control.index, config.account_id, config.region)
    loaded = registry.load()
    dropped = control.reconcile()
    log.info("registry: %d instance(s) loaded, %d dropped (gone from EC2 or Docker)", len(loaded), len(dropped))
    engine.start()
    moto_pid = Daemon("moto", config.state_dir, config.log_dir).pid()
    ecr = EcrImages(config, _repository_exists(config))
    service = Service(api, control, faults, ("127.0.0.1", config.moto_port), code_digest(), moto_pid, ecr, config)
    server = make_server(service, config.bind_host, config.ssm_port)
    log.info(
        "SSM service for sandbox %s on %s:%d (moto on :%d)",
        config.name,
        config.bind_host,
        config.ssm_port,
        config.moto_port,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        server.server_close()
    return 0


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
