#!/usr/bin/env bash
# bench/profile.sh: where AuthFailoverProxy (or bare YARP) spends its CPU on the bench's hot path. Starts the bench's
# nginx upstream and one proxy on loopback, warms it under wrk load until the JIT has settled, then samples it with
# `perf record` while the same load runs, and prints the CPU per request by module and by method (JIT-compiled .NET
# frames are named through the runtime's perf map). Every process it starts is stopped on exit; every load run stops
# by itself.
#
#   bench/profile.sh                 profile this tree's Release build (built first)
#   bench/profile.sh --bare          profile bench/BareYarp instead, for comparison
#   bench/profile.sh --no-build      use the Release build already on disk
#   AFP_BUILD=DIR bench/profile.sh   profile the AuthFailoverProxy.dll in DIR (another commit's build), as run.sh does
#   PROFILE_WARMUP=25 PROFILE_SECONDS=8 bench/profile.sh   warm-up and sampling time (defaults)
#
# Needs perf (Debian: linux-perf), wrk and nginx. Output: two tables on stdout; perf.data and the perf map are left in
# the temporary directory it names, for `perf report -i`.
set -euo pipefail

BARE=0
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --bare) BARE=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown option '$arg'" >&2; exit 64 ;;
  esac
done
WARMUP=${PROFILE_WARMUP:-25}
SECONDS_SAMPLED=${PROFILE_SECONDS:-8}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

log() { printf '[profile %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in perf wrk nginx python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || [[ $tool == nginx && -x /usr/sbin/nginx ]] || die "$tool is missing"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

[[ -n ${AFP_BUILD:-} ]] && BUILD=0
if ((BUILD)); then
  if ((BARE)); then
    dotnet build "$BENCH_DIR/BareYarp" -c Release -v quiet -nologo >&2
  else
    dotnet build "$REPO/src/AuthFailoverProxy" -c Release -v quiet -nologo >&2
  fi
fi

PRIMARY_SECRET="sk-ant-api03-benchPrimaryKey$(printf '%028d' 1)"
BACKUP_SECRET="sk-ant-api03-benchBackupKey0$(printf '%028d' 2)"
CLIENT_TOKEN="afp-bench-client-token-$(printf '%016d' 7)"
UPSTREAM_PORT=$(port)
PROXY_PORT=$(port)
MGMT_PORT=$(port)

mkdir -p "$TMP/nginx/flags"
sed -e "s#@TMP@#$TMP/nginx#g" -e "s#@PORT@#$UPSTREAM_PORT#g" -e "s#@PRIMARY_SECRET@#$PRIMARY_SECRET#g" \
  -e "s#@BACKUP_SECRET@#$BACKUP_SECRET#g" "$BENCH_DIR/nginx.conf.template" >"$TMP/nginx/nginx.conf"
"$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)

# Named JIT frames: the runtime writes /tmp/perf-<pid>.map, and without W^X double mapping perf finds code there.
export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
if ((BARE)); then
  dotnet "$BENCH_DIR/BareYarp/bin/Release/net10.0/BareYarp.dll" --urls "http://127.0.0.1:$PROXY_PORT" \
    --upstream "http://127.0.0.1:$UPSTREAM_PORT" --api-key "$PRIMARY_SECRET" >"$TMP/proxy.log" 2>&1 &
else
  ASPNETCORE_URLS="http://127.0.0.1:$PROXY_PORT" AFP_MANAGEMENT_URLS="http://127.0.0.1:$MGMT_PORT" \
    AFP_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" AFP_KEYS="primary=$PRIMARY_SECRET,backup=$BACKUP_SECRET" \
    AFP_CLIENT_TOKENS="$CLIENT_TOKEN" Clients__Tokens__0__Budget__RequestsPerMinute=1000000000 \
    dotnet "${AFP_BUILD:-$REPO/src/AuthFailoverProxy/bin/Release/net10.0}/AuthFailoverProxy.dll" >"$TMP/proxy.log" 2>&1 &
fi
PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 100); do
  curl -s -o /dev/null --max-time 1 -X POST "http://127.0.0.1:$PROXY_PORT/v1/messages" && break
  sleep 0.2
done

export BENCH_API_KEY=$CLIENT_TOKEN
load() { timeout $(($1 + 30)) wrk -t2 -c32 -d"$1s" -s "$BENCH_DIR/messages.lua" "http://127.0.0.1:$PROXY_PORT/v1/messages" >"$2" 2>&1 || true; }
log "warming up for $WARMUP s (the JIT recompiles hot code in the background for about 20 s under this load)"
load "$WARMUP" "$TMP/warmup.txt"
log "sampling for $SECONDS_SAMPLED s under the same load"
load $((SECONDS_SAMPLED + 4)) "$TMP/load.txt" &
LOAD=$!
sleep 1
timeout $((SECONDS_SAMPLED + 30)) perf record -F 999 -g -p "$PROXY_PID" -o "$TMP/perf.data" -- sleep "$SECONDS_SAMPLED" >"$TMP/perf.log" 2>&1 ||
  die "perf record failed (see $TMP/perf.log; kernel.perf_event_paranoid may forbid it)"
wait "$LOAD"
cp "/tmp/perf-$PROXY_PID.map" "$TMP/" 2>/dev/null || true

RPS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$TMP/load.txt")
[[ -n $RPS ]] || die "wrk produced no result (see $TMP/load.txt)"
perf report -i "$TMP/perf.data" --no-children -n --sort dso,sym -g none 2>/dev/null >"$TMP/report.txt"
python3 - "$TMP/report.txt" "$RPS" "$SECONDS_SAMPLED" <<'PY'
import collections, re, sys
report, rps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
# One sample is about 1 ms of CPU at 999 Hz; samples per request * 1000 = µs per request.
per_request = lambda n: n / (rps * seconds) * 1000
modules, methods = collections.Counter(), collections.Counter()
for line in open(report):
    m = re.match(r'\s+[\d.]+%\s+(\d+)\s+(\S.*?)\s{2,}\[.\]\s+(.*)', line)
    if not m:
        continue
    n, dso, sym = int(m.group(1)), m.group(2), m.group(3)
    jit = re.search(r'\[([\w.]+)\] ([\w.`]+)', sym) if dso.startswith('[JIT]') else None
    modules[jit.group(1) if jit else dso] += n
    methods[re.sub(r'\[Optimized.*?\]|\[Tier.*?\]', '', sym)[:140]] += n
total = sum(modules.values())
print(f"{per_request(total):.1f} µs of CPU per request sampled at {rps:.0f} req/s\n")
print("| µs/req | module |\n|---:|---|")
for name, n in modules.most_common(20):
    print(f"| {per_request(n):.2f} | {name} |")
print("\n| µs/req | method |\n|---:|---|")
for name, n in methods.most_common(40):
    print(f"| {per_request(n):.2f} | {name.replace('|', '/')} |")
PY
log "perf data and map kept in $TMP (perf report -i $TMP/perf.data)"
trap - EXIT
cleanup
