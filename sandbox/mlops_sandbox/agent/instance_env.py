"""Write the sandbox's instance settings for the instance's systemd services.

``docker run --env`` gives the instance its identity and endpoints (``MLOPS_*``, ``AWS_*``)
in PID 1's environment; systemd starts services with a clean one. This writes those
variables to the file named on the command line, which the units read
(``EnvironmentFile=``). Standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PREFIXES = ("MLOPS_", "AWS_")


def settings(environ: bytes) -> dict[str, str]:
    """The MLOPS_/AWS_ variables of a /proc/<pid>/environ blob."""
    found = {}
    for item in environ.split(b"\0"):
        name, sep, value = item.decode(errors="replace").partition("=")
        if sep and name.startswith(PREFIXES) and "\n" not in value:
            found[name] = value
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: instance_env.py FILE", file=sys.stderr)
        return 2
    target = Path(argv[1])
    values = settings(Path("/proc/1/environ").read_bytes())
    if "MLOPS_INSTANCE_ID" not in values:
        print("instance_env: PID 1 has no MLOPS_INSTANCE_ID: not started by the sandbox?", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(f"{name}={value}\n" for name, value in sorted(values.items())))
    os.chmod(tmp, 0o600)
    tmp.replace(target)
    print(f"instance_env: {len(values)} settings of instance {values['MLOPS_INSTANCE_ID']} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
