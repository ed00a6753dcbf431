"""Entry point of the sandbox's moto server (a named module, so that a leftover
process of an earlier sandbox is recognisable by its command line)."""

from __future__ import annotations

import sys

from moto.server import main

from mlops_sandbox import moto_ecs

if __name__ == "__main__":
    moto_ecs.install()
    sys.exit(main(sys.argv[1:]))
