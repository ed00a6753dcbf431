"""A stand-in for a model API: answers its version on every path, and /health.

MODEL_VERSION is what it serves; HEALTHY=0 makes /health answer 500, so the image's
HEALTHCHECK fails (a release whose model does not load).
"""

import http.server
import json
import os
import signal
import sys

VERSION = os.environ.get("MODEL_VERSION", "v0")
HEALTHY = os.environ.get("HEALTHY", "1") == "1"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/health" and not HEALTHY:
            code, body = 500, {"status": "model not loaded", "version": VERSION}
        else:
            code, body = 200, {"status": "ok", "version": VERSION, "path": self.path}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("%s %s" % (VERSION, fmt % args), flush=True)


if __name__ == "__main__":
    # As PID 1 a process ignores SIGTERM unless it handles it: stop at once, like a real server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("model %s starting (healthy=%s)" % (VERSION, HEALTHY), flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
