#!/usr/bin/env bash
# The README's start command, exactly as a newcomer runs it after `npm ci`: `npm start`, then the
# "First job" block copied out of README.md, whose output must be the two lines the README shows;
# then SIGTERM, and npm start must exit 0 (stopping the Redis it started, if it started one).
# Run by .ci/run on a clean clone, before CI starts a Redis of its own for the tests: on a machine
# without a running Redis this exercises npm start's local Redis too.
set -euo pipefail
cd "$(dirname "$0")/.."

# The README must still say what we run.
grep -qxF 'npm ci && npm start   # the service (API + one worker) with the embedded default model, on :3000' README.md ||
  { echo "readme-quickstart: README's start line changed; update .ci/readme-quickstart.sh" >&2; exit 1; }

block=$(awk '/^## First job/{f=1} f&&/^```bash$/{b=1;next} b&&/^```$/{exit} b' README.md)
expected=$(awk '/^## First job/{f=1} f&&/^```text$/{b=1;next} b&&/^```$/{exit} b' README.md)
[[ -n "$block" && -n "$expected" ]] || { echo "readme-quickstart: no First job block in README.md" >&2; exit 1; }

# The README's port (3000) unless something here already listens on it; the queue under a prefix of
# its own, so a shared Redis keeps no keys of this run.
port=3000
if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  block=${block//127.0.0.1:3000/127.0.0.1:$port}
fi
prefix="vtc-ci-quickstart-$$"
log=$(mktemp)

PORT=$port VTC_QUEUE_PREFIX=$prefix npm start >"$log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  if command -v redis-cli >/dev/null && redis-cli -p 6379 ping >/dev/null 2>&1; then
    redis-cli -p 6379 --scan --pattern "$prefix:*" | xargs -r redis-cli -p 6379 del >/dev/null
  fi
}
trap cleanup EXIT

for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "readme-quickstart: npm start exited early" >&2; exit 1; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$log"; echo "readme-quickstart: not ready in 30 s" >&2; exit 1; }

got=$(timeout 120 bash -euo pipefail -c "$block")
if [[ "$got" != "$expected" ]]; then
  cat "$log"
  printf 'readme-quickstart: the First job block printed\n%s\ninstead of\n%s\n' "$got" "$expected" >&2
  exit 1
fi

kill -TERM "$pid"
code=0
timeout 60 tail --pid="$pid" -f /dev/null || true
wait "$pid" || code=$?
trap - EXIT
cleanup
cat "$log"
[[ $code -eq 0 ]] || { echo "readme-quickstart: npm start exited $code after SIGTERM" >&2; exit 1; }
echo "readme-quickstart: npm start answered the README's first job (${got//$'\n'/ }) and stopped cleanly"
