#!/bin/sh
# Health probe shipped with the release (executable in the bundle).
exec python3 -c "import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8080/health\", timeout=2)"
