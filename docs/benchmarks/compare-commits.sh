#!/usr/bin/env bash
# The pipeline of several commits measured by one bench, one after the other, in one run:
#   docs/benchmarks/compare-commits.sh OUTPUT.json MANIFEST CONCURRENCY COMMIT...
# Each commit's `up` runs from a git worktree (its code first on PYTHONPATH, this checkout's
# .venv for the dependencies) with 2 transcribers; this checkout's `streamscribe bench --url`
# streams the manifest to it, so every commit is measured by the same client and metrics.
set -euo pipefail
output=$1 manifest=$(realpath "$2") concurrency=$3
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
python=$root/.venv/bin/python
work=$(mktemp -d)
trap 'kill "$up_pid" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
up_pid=
parts=()
for commit in "$@"; do
  tree=$work/$commit
  git -C "$root" worktree add -f --detach "$tree" "$commit" >/dev/null
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PYTHONPATH=$tree "$python" -m streamscribe up --port "$port" --transcribers 2 \
    >"$work/$commit.up.log" 2>&1 &
  up_pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
    kill -0 "$up_pid" || { cat "$work/$commit.up.log"; exit 1; }
    sleep 1
  done
  echo "== $commit" >&2
  "$root/.venv/bin/streamscribe" bench --manifest "$manifest" --url "ws://127.0.0.1:$port/v1/stream" \
    --concurrency "$concurrency" --no-offline --output "$work/$commit.json"
  kill -TERM "$up_pid"  # a background job of a script ignores SIGINT
  wait "$up_pid" || true
  up_pid=
  git -C "$root" worktree remove --force "$tree"
  parts+=("$commit=$work/$commit.json")
done
"$python" - "$output" "${parts[@]}" <<'EOF'
import json, subprocess, sys
output, *parts = sys.argv[1:]
runs = {}
for part in parts:
    commit, path = part.split("=", 1)
    report = json.load(open(path))
    runs[commit] = {"subject": subprocess.run(
        ["git", "log", "-1", "--format=%s", commit], capture_output=True, text=True, check=True
    ).stdout.strip(), **report}
json.dump({"commits": list(runs), "runs": runs}, open(output, "w"), indent=2, ensure_ascii=False)
print(f"wrote {output}", file=sys.stderr)
EOF
