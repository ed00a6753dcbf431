"""Entry point of the sandbox's moto server (a named module, so that a leftover
process of an earlier sandbox is recognisable by its command line).

``--sandbox NAME`` (first) names the sandbox in the command line; moto does not see it."""

from __future__ import annotations

import sys

from moto.server import main

from mlops_sandbox import moto_ecs

if __name__ == "__main__":
    moto_ecs.install()
    args = sys.argv[1:]
    if args[:1] == ["--sandbox"]:
        args = args[2:]
    sys.exit(main(args))
