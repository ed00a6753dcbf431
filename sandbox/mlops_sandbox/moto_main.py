"""Entry point of the sandbox's moto server (a named module, so that a leftover
process of an earlier sandbox is recognisable by its command line).

``python -m mlops_sandbox.moto_main --sandbox NAME -p PORT``: moto's WSGI application,
as ``moto.server`` runs it, behind the call recorder (``moto_record.py``: every call it
answers goes to the sandbox's call log), served on each address of the sandbox's listen
plan (listen.py) by a server of its own, all sharing the one application and so its state.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

from mlops_sandbox import listen, moto_ecs, moto_ecs_tasks, moto_efs, moto_events
from mlops_sandbox.config import Config, for_daemon
from mlops_sandbox.moto_record import Recorder
from mlops_sandbox.process import SandboxError


class MotoWsgiServer(listen.PeerCheck, ThreadedWSGIServer):
    """moto's threaded werkzeug server, refusing peers outside its listener's network."""


def serve(config: Config, port: int) -> int:
    # moto.server sets it too: some responses carry URLs back to this server.
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto's own server: errors answered, not raised
    recorded = Recorder(app, config)

    def make(sock: socket.socket) -> MotoWsgiServer:
        # werkzeug serves a socket it is given (fd) as it is; it duplicates the descriptor.
        with sock:
            return MotoWsgiServer(sock.getsockname()[0], port, recorded, handler=MotoRequestHandler, fd=sock.fileno())

    listeners = listen.Listeners("moto", port, make, lambda: listen.sandbox_plan(config))
    try:
        listeners.start()
    except SandboxError as exc:
        print(f"moto: {exc}", file=sys.stderr)
        return 1
    try:
        threading.Event().wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        listeners.close()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_sandbox.moto_main", description=__doc__)
    parser.add_argument("--sandbox", required=True, help="the sandbox name (in the command line only)")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = for_daemon(parser, args)
    moto_ecs.install()
    moto_efs.install()  # community.aws.efs's tag calls
    # RunTask runs real containers; EventBridge rules with ECS targets run their tasks.
    moto_events.install(config, moto_ecs_tasks.install(config))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(config, args.port)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
