"""Entry point of the sandbox's moto server (a named module, so that a leftover
process of an earlier sandbox is recognisable by its command line).

``--sandbox NAME`` (first) names the sandbox in the command line; moto does not see it.
``-H HOST -p PORT`` as moto's own server takes them. moto's app runs behind the call
recorder (``moto_record.py``): every call it answers goes to the sandbox's call log.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from mlops_sandbox import moto_ecs, moto_ecs_tasks, moto_events
from mlops_sandbox.config import Config
from mlops_sandbox.moto_record import Recorder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sandbox.moto_main")
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = Config()
    if args.sandbox != config.name:
        parser.error(f"--sandbox {args.sandbox} does not match MLOPS_SANDBOX_NAME={config.name}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    moto_ecs.install()
    # RunTask runs real containers; EventBridge rules with ECS targets run their tasks.
    moto_events.install(config, moto_ecs_tasks.install(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto's own server: errors answered, not raised
    run_simple(args.host, args.port, Recorder(app, config), threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
