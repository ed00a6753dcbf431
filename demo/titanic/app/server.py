"""Titanic survival model API (standard library only).

POST /predict  {"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0,
                "Fare": 7.25, "Embarked": "S"}  ->  {"prediction": 0, "probability": ...,
                "model_version": ...}
GET  /health   200 {"status": "ok", ...} once the model is loaded, 503 otherwise.

Settings: PORT (8080), MODEL_PATH (/app/model/model.json). A model file that does not
load leaves the server up but unhealthy (503), so a deploy's health gate catches it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from titanic_model import InvalidPassenger, Model

MAX_BODY = 64 * 1024
STARTED = time.time()


def load_model(path: str) -> tuple[Model | None, str | None]:
    try:
        return Model.load(path), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"model {path} did not load: {exc}"


class Server(ThreadingHTTPServer):
    # The default listen backlog (5) stalls clients for a second under concurrency 10.
    request_queue_size = 128
    daemon_threads = True


class Handler(BaseHTTPRequestHandler):
    model: Model | None = None
    load_error: str | None = None
    server_version = "titanic-api/1"

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") != "/health":
            self._send(404, {"error": f"no route {self.path}; try GET /health or POST /predict"})
        elif self.model is None:
            self._send(503, {"status": "unhealthy", "error": self.load_error})
        else:
            self._send(
                200, {"status": "ok", "model_version": self.model.version, "uptime_s": round(time.time() - STARTED)}
            )

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/predict":
            self._send(404, {"error": f"no route {self.path}; try POST /predict"})
            return
        if self.model is None:
            self._send(503, {"error": self.load_error})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"error": f"body over {MAX_BODY} bytes"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
            self._send(200, self.model.predict(payload))
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"body is not JSON: {exc}"})
        except InvalidPassenger as exc:
            self._send(400, {"error": str(exc)})

    def log_message(self, fmt: str, *args) -> None:
        sys.stdout.write(
            json.dumps({"t": round(time.time(), 3), "client": self.client_address[0], "request": fmt % args}) + "\n"
        )
        sys.stdout.flush()


def main() -> int:
    port = int(os.environ.get("PORT", "8080"))
    path = os.environ.get("MODEL_PATH", "/app/model/model.json")
    Handler.model, Handler.load_error = load_model(path)
    if Handler.load_error:
        print(json.dumps({"t": round(time.time(), 3), "error": Handler.load_error}), flush=True)
    else:
        print(
            json.dumps(
                {"t": round(time.time(), 3), "ready": True, "model_version": Handler.model.version, "port": port}
            ),
            flush=True,
        )
    server = Server(("0.0.0.0", port), Handler)  # noqa: S104 - container port
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
