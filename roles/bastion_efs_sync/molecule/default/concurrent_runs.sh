#!/usr/bin/env bash
# Two runs of the same job at once: A takes the lock and stays inside it (its AWS CLI
# waits for a gate file), B starts while A holds it. Prints one JSON line of what happened.
set -euo pipefail
config=$1
work=$(mktemp -d)
gate=$work/gate
lock=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lock_file"])' "$config")
log=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["log_file"])' "$config")
aws=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["aws_command"][0])' "$config")
done_before=$(grep -c ' done: ' "$log" || true)

# A's AWS CLI: the real one, once the gate file exists (polled, with a deadline).
cat >"$work/gated-aws" <<GATED
#!/bin/bash
for _ in \$(seq 600); do [ -e "$gate" ] && exec "$aws" "\$@"; sleep 0.1; done
echo "gate never opened" >&2; exit 9
GATED
chmod +x "$work/gated-aws"
python3 - "$config" "$work/a.json" "$work/gated-aws" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["aws_command"] = [sys.argv[3]]
json.dump(cfg, open(sys.argv[2], "w"))
PY

/usr/local/sbin/mlops-efs-sync --config "$work/a.json" >"$work/a.out" 2>&1 &
a_pid=$!
# Wait until A holds the lock (flock -n fails while it does).
for _ in $(seq 300); do
  if ! flock -n "$lock" true; then break; fi
  kill -0 "$a_pid" 2>/dev/null || { echo '{"error": "A ended before taking the lock"}'; exit 1; }
  sleep 0.1
done
set +e
/usr/local/sbin/mlops-efs-sync --config "$config" >"$work/b.out" 2>"$work/b.err"
b_rc=$?
touch "$gate"
wait "$a_pid"
a_rc=$?
set -e
done_after=$(grep -c ' done: ' "$log" || true)
python3 - "$a_rc" "$b_rc" "$work/b.err" "$((done_after - done_before))" <<'PY'
import json, sys
status = json.load(open("/var/lib/mlops-efs-sync/models.json"))
print(json.dumps({
    "a_rc": int(sys.argv[1]),
    "b_rc": int(sys.argv[2]),
    "b_err": open(sys.argv[3]).read(),
    "done_lines": int(sys.argv[4]),
    "status_result": status["result"],
}))
PY
rm -rf "$work"
