"""Entry point of the sandbox's moto server (a named module, so that a leftover
process of an earlier sandbox is recognisable by its command line).

``--sandbox NAME`` (first) names the sandbox in the command line; moto does not see it."""

from __future__ import annotations

import logging
import sys

from moto.server import main

from mlops_sandbox import moto_ecs, moto_ecs_tasks, moto_events
from mlops_sandbox.config import Config

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    moto_ecs.install()
    config = Config()
    agent = moto_ecs_tasks.install(config)
    moto_events.install(config, agent)
    args = sys.argv[1:]
    if args[:1] == ["--sandbox"]:
        args = args[2:]
    sys.exit(main(args))
