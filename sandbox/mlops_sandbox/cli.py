"""``mlops-sandbox up|down|status``: bring the local AWS stand-in up or clear it."""

from __future__ import annotations

import argparse
import sys

from . import envfile
from .config import Config
from .motoserver import MotoServer
from .process import SandboxError
from .registry import Registry


def components(config: Config) -> list:
    """Everything the sandbox runs, in start order (stopped in reverse)."""
    parts: list = [MotoServer(config)]
    if config.registry_enabled:  # machine-wide (port 443, /etc/hosts): one sandbox per machine
        parts.append(Registry(config))
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-sandbox", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    config = Config()
    parts = components(config)
    try:
        if args.action == "up":
            for part in parts:
                print(f"sandbox: {part.up()}", flush=True)
            path = envfile.write(config)
            print(f"sandbox: up; client settings in {path} (source it: . {path})")
        elif args.action == "down":
            for part in reversed(parts):
                print(f"sandbox: {part.down()}", flush=True)
            config.env_file.unlink(missing_ok=True)
        else:
            for part in parts:
                print(part.status())
    except SandboxError as exc:
        print(f"sandbox: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
