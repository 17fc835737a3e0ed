#!/usr/bin/env bash
# Smoke test of the CPU image with Podman, host network (how it was verified once; see
# docs/deploy.md, "Verified with Podman"). Not part of CI: it needs Podman and the images.
#   IMAGE  the image built from Dockerfile (default localhost/vtc:cpu)
#   REDIS_IMAGE  an image with redis-server and redis-cli (default localhost/redis-debian:7)
#   SHUTDOWN_MS  the first worker's VTC_SHUTDOWN_TIMEOUT_MS (default 30000: it finishes the job;
#                100: it hands the job back and a second worker completes it)
# Runs Redis, the API and a worker as three containers the way docker-compose.yml does (node on
# dist/, --init, the same health commands), answers the README's first job, stops the worker in the
# middle of a 16-image job (it must exit 0 and the job must complete, by it or by a second worker),
# then stops everything and checks every exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/vtc:cpu}
REDIS_IMAGE=${REDIS_IMAGE:-localhost/redis-debian:7}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
RP=$(free_port)
AP=$(free_port)
MP=$(free_port)
MP2=$(free_port)
P=vtc-smoke-$$
READYZ="fetch('http://127.0.0.1:$AP/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ALIVE="fetch('http://127.0.0.1:$MP/metrics').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
cleanup() { podman rm -f -t 0 "$P-worker2" "$P-worker" "$P-api" "$P-redis" >/dev/null 2>&1 || true; podman volume rm -f "$P-blobs" >/dev/null 2>&1 || true; }
trap cleanup EXIT
say() { echo "podman-smoke: $*"; }

podman volume create "$P-blobs" >/dev/null
podman run -d --name "$P-redis" --network host "$REDIS_IMAGE" \
  redis-server --port "$RP" --bind 127.0.0.1 --appendonly yes --maxmemory-policy noeviction --dir /tmp >/dev/null
for _ in $(seq 1 50); do podman exec "$P-redis" redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.2; done
common=(--network host --init -e "REDIS_URL=redis://127.0.0.1:$RP" -v "$P-blobs:/data")
podman run -d --name "$P-api" "${common[@]}" -e "PORT=$AP" --health-cmd "node -e \"$READYZ\"" \
  "$IMAGE" node dist/services/api/main.js >/dev/null
podman run -d --name "$P-worker" "${common[@]}" -e "VTC_WORKER_METRICS_PORT=$MP" \
  -e "VTC_SHUTDOWN_TIMEOUT_MS=${SHUTDOWN_MS:-30000}" --health-cmd "node -e \"$ALIVE\"" \
  "$IMAGE" node dist/services/worker/main.js >/dev/null

for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
sleep 2
podman healthcheck run "$P-api" && say "api healthy"
podman healthcheck run "$P-worker" && say "worker healthy"
say "readyz: $(curl -s "http://127.0.0.1:$AP/readyz")"

# The README's first job.
ID=$(curl -s -F files=@models/vtc-tiny/eval/scenes/s0000.png -F prompt="what shape is the large blue object" \
  -F method=tokenflex -F ratio=0.25 "http://127.0.0.1:$AP/v1/jobs" | sed -E 's/.*"id":"([^"]+)".*/\1/')
curl -sN "http://127.0.0.1:$AP/v1/jobs/$ID/events" >/dev/null
say "first job: $(curl -s "http://127.0.0.1:$AP/v1/jobs/$ID" | grep -o '"answer":"[^"]*"\|"visualTokens":{[^}]*}' | tr '\n' ' ')"

# SIGTERM in the middle of a 16-image job.
args=()
for i in $(seq 0 15); do args+=(-F "files=@models/vtc-tiny/eval/scenes/s$(printf %04d "$i").png"); done
ID=$(curl -s "${args[@]}" -F prompt="what shape is the large blue object" -F method=tokenflex -F ratio=0.25 \
  "http://127.0.0.1:$AP/v1/jobs" | sed -E 's/.*"id":"([^"]+)".*/\1/')
for _ in $(seq 1 200); do
  curl -s "http://127.0.0.1:$AP/v1/jobs/$ID" | grep -q '"status":"active"' && break
  sleep 0.05
done
say "job $ID active; podman stop (SIGTERM) the worker"
podman stop -t 60 "$P-worker" >/dev/null
say "worker exit code: $(podman inspect "$P-worker" --format '{{.State.ExitCode}}')"
podman logs "$P-worker" 2>&1 | tail -3 | sed 's/^/  worker: /'
state=$(curl -s "http://127.0.0.1:$AP/v1/jobs/$ID" | sed -E 's/.*"status":"([a-z]+)".*/\1/' | head -c 20)
say "the job after the stop: $state"
if [[ $state != completed ]]; then
  podman run -d --name "$P-worker2" "${common[@]}" -e "VTC_WORKER_METRICS_PORT=$MP2" \
    "$IMAGE" node dist/services/worker/main.js >/dev/null
  curl -sN "http://127.0.0.1:$AP/v1/jobs/$ID/events" >/dev/null
  say "after a second worker: $(curl -s "http://127.0.0.1:$AP/v1/jobs/$ID" | sed -E 's/.*"status":"([a-z]+)".*/\1/' | head -c 20)"
  podman stop -t 60 "$P-worker2" >/dev/null
  say "second worker exit code: $(podman inspect "$P-worker2" --format '{{.State.ExitCode}}')"
fi
podman stop -t 15 "$P-api" >/dev/null
say "api exit code: $(podman inspect "$P-api" --format '{{.State.ExitCode}}')"
