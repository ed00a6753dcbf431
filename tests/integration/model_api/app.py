"""A stand-in for a model API: answers its version on every path, and /health.

MODEL_VERSION is what it serves; HEALTHY=0 makes /health answer 500, so the image's
HEALTHCHECK fails (a release whose model does not load). LOAD_SECONDS is how long its
"model" takes to load: until then every path answers 503 (as a model server that
listens before its model is ready). ``/slow?seconds=N`` answers after N seconds (a long
inference, for requests in flight during a switch).
"""

import http.server
import json
import os
import signal
import sys
import time
import urllib.parse

VERSION = os.environ.get("MODEL_VERSION", "v0")
HEALTHY = os.environ.get("HEALTHY", "1") == "1"
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "0") or 0)
STARTED = time.monotonic()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real model servers
    disable_nagle_algorithm = True  # headers and body leave at once (TCP_NODELAY, as real servers)

    def do_GET(self):  # noqa: N802 - http.server's naming
        url = urllib.parse.urlsplit(self.path)
        loading = time.monotonic() - STARTED < LOAD_SECONDS
        if loading:
            code, body = 503, {"status": "model loading", "version": VERSION}
        elif url.path == "/health" and not HEALTHY:
            code, body = 500, {"status": "model not loaded", "version": VERSION}
        else:
            if url.path == "/slow":
                seconds = float(urllib.parse.parse_qs(url.query).get("seconds", ["5"])[0])
                time.sleep(seconds)
            code, body = 200, {"status": "ok", "version": VERSION, "path": self.path}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("%s %s" % (VERSION, fmt % args), flush=True)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that went away (a health probe that timed out) is one line, as real
        servers log it, not socketserver's traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            print("%s client %s went away: %s" % (VERSION, client_address[0], error), flush=True)
            return
        super().handle_error(request, client_address)


if __name__ == "__main__":
    # As PID 1 a process ignores SIGTERM unless it handles it: stop at once, like a real server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("model %s starting (healthy=%s, load %ss)" % (VERSION, HEALTHY, LOAD_SECONDS), flush=True)
    Server(("0.0.0.0", 8080), Handler).serve_forever()
