#!/usr/bin/env bash
# bench/run.sh: what AuthFailoverProxy costs on the hot path, side by side with going direct and with a bare YARP
# proxy, with its in-memory and its Redis key-state store, and how fast an admin change reaches another replica through
# Redis, in one run. Prints a Markdown report on stdout (progress goes to stderr) and writes it to
# bench/results/<UTC date>-issue2.md and <UTC date>-issue4.md (the same report). Raw wrk output and process logs go
# to bench/results/raw/<stamp>/ (git-ignored).
#
#   bench/run.sh            full run: a 20 s warm-up, then 3 alternating repetitions of 10 s per target, then pairs of
#                           targets loaded at once (about 10 minutes)
#   bench/run.sh --quick    smoke test: 1 repetition of 3 s, shorter SSE, failover and propagation runs (about 1 minute)
#   bench/run.sh --no-build use the Release builds already on disk instead of building first
#   BENCH_REPS=5 BENCH_DURATION=20 bench/run.sh   more or longer measured runs (default 3 x 10 s)
#   BENCH_ROUNDS=5 BENCH_REPS=1 bench/run.sh   the throughput runs in 5 rounds, each with freshly started proxies (warmed
#                           again), so that no one process's speed decides a ratio (default 1 round; see bench/README.md)
#   BENCH_DEBUG=1 bench/run.sh   also log the CPU tick accounting behind the "other load" column
#   BENCH_BASELINE=<git rev> bench/run.sh   also measure AuthFailoverProxy as built at that commit, in the same run
#   BENCH_AT_ONCE_REPS=10 bench/run.sh   repetitions of the pairs loaded at once (default 6, 1 with --quick)
#
# Every server binds 127.0.0.1 on a free port; every load run stops by itself; every process started here is
# stopped on exit. See bench/README.md for what the numbers mean.
set -euo pipefail

usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

QUICK=0
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$arg'" >&2; usage >&2; exit 64 ;;
  esac
done

if ((QUICK)); then
  WARMUP=2 DURATION=3 REPS=1 SSE_N=30 SSE_WARM=5 FAILOVER_DURATION=4 PROP_N=20 PROP_BUDGET=15 MODE=quick
else
  WARMUP=20 DURATION=10 REPS=3 SSE_N=200 SSE_WARM=20 FAILOVER_DURATION=10 PROP_N=100 PROP_BUDGET=60 MODE=full
fi
# For steadier numbers on a noisy machine: BENCH_REPS=5 or BENCH_DURATION=20 (mind the run time).
REPS=${BENCH_REPS:-$REPS}
ROUNDS=${BENCH_ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: BENCH_ROUNDS must be a whole number from 1 to 99" >&2; exit 64; }
DURATION=${BENCH_DURATION:-$DURATION}
THREADS=2
CONNECTIONS=32
WRK_TIMEOUT=5s

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR="$BENCH_DIR/results"
RESULT_FILE="$RESULTS_DIR/$(date -u +%F)-issue2.md"
RESULT_FILE_ISSUE4="$RESULTS_DIR/$(date -u +%F)-issue4.md"
RAW="$RESULTS_DIR/raw/$STAMP"

# Loopback only, and never through an egress proxy the caller may have configured.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- tools -----------------------------------------------------------------------------------------------------------

find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }
find_redis() { command -v redis-server 2>/dev/null || { [[ -x /usr/bin/redis-server ]] && echo /usr/bin/redis-server; } || true; }

install_missing() {
  local packages=()
  command -v wrk >/dev/null 2>&1 || packages+=(wrk)
  [[ -n "$(find_nginx)" ]] || packages+=(nginx-light)
  command -v curl >/dev/null 2>&1 || packages+=(curl)
  [[ -n "$(find_redis)" ]] || packages+=(redis-server)
  ((${#packages[@]})) || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${packages[*]} and no apt-get to install them"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "installing ${packages[*]}"
  # Keep the packages' own nginx and redis services from starting (nginx's would listen on every interface):
  # policy-rc.d 101 means "do not start services" to invoke-rc.d. Only added when absent, and removed again.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod +x "$policy" && added_policy=1
  fi
  local rc=0
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" >&2 ||
    { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" >&2; } || rc=$?
  ((added_policy)) && "${sudo[@]}" rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${packages[*]} failed"
}

install_missing
NGINX=$(find_nginx)
REDIS_SERVER=$(find_redis)
command -v dotnet >/dev/null 2>&1 || die "dotnet is not on PATH"
command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH (bench/propagation.py needs it)"
CLK_TCK=$(getconf CLK_TCK)
CORES=$(nproc)

# --- state and cleanup -----------------------------------------------------------------------------------------------

TMP=$(mktemp -d -t afp-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as an unprivileged user when started as root
mkdir -p "$RAW"
STARTED_PIDS=()

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${STARTED_PIDS[i]}
    # A backgrounded wrk run is a subshell; its `timeout` child passes the signal on to wrk.
    pkill -TERM -P "$pid" 2>/dev/null || true
    stop_pid "$pid"
  done
  if [[ -d $TMP ]]; then
    cp "$TMP"/nginx/error.log "$RAW/nginx-error.log" 2>/dev/null || true
    rm -rf "$TMP"
  fi
  # A baseline worktree left behind by an interrupted run.
  [[ -z ${BENCH_BASELINE:-} ]] || git -C "$REPO" worktree prune 2>/dev/null || true
  ((rc == 0)) || log "failed (exit $rc); raw output and logs are in $RAW"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers ---------------------------------------------------------------------------------------------------------

TAKEN_PORTS=" "
# free_port VAR: a port nothing on this machine uses (no socket of any state), not handed out before in this run.
free_port() {
  local p _
  for _ in $(seq 500); do
    p=$((20000 + RANDOM % 40000))
    [[ $TAKEN_PORTS == *" $p "* ]] && continue
    if command -v ss >/dev/null 2>&1; then
      [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]] || continue
    elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue
    fi
    TAKEN_PORTS+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free port found"
}

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# Machine-wide CPU in use (user, nice, system, irq, softirq, steal), in ticks. Interrupt time counts: a process's own
# stime includes the softirq work done in its context, which /proc/stat books as softirq.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# children_ticks VAR: CPU of this script's finished children (wrk, curl, awk…), in ticks, into VAR. `times` has to run
# in this shell (a $(…) subshell would report its own, empty, accounts).
children_ticks() {
  times >"$TMP/times"
  printf -v "$1" '%s' "$(awk -v hz="$CLK_TCK" 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } printf "%d", t * hz }' "$TMP/times")"
}
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
access_lines() { wc -l <"$TMP/nginx/access.log"; }
calc() { awk "BEGIN { printf \"$1\", ($2) }"; }

# wait_ready NAME PID URL [CURL ARGS…]: until URL answers 2xx, the process is alive, and at most 30 s.
wait_ready() {
  local name=$1 pid=$2 url=$3 i
  shift 3
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start; see $RAW"
    curl -sf -o /dev/null --max-time 2 "$@" "$url" && return 0
    sleep 0.1
  done
  die "$name did not become ready within 30 s ($url); see $RAW"
}

# --- keys and request bodies -----------------------------------------------------------------------------------------

# Fake keys in the real shape (sk-ant-api03- and 40 characters); the upstream is nginx, nothing leaves the machine.
PRIMARY_SECRET="sk-ant-api03-benchPrimaryKey$(printf '%028d' 1)"
BACKUP_SECRET="sk-ant-api03-benchBackupKey0$(printf '%028d' 2)"
CLIENT_TOKEN="afp-bench-client-token-$(printf '%016d' 7)"
ADMIN_TOKEN="afp-bench-admin-token-$(printf '%016d' 9)"
SSE_BODY='{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}'

# --- build -----------------------------------------------------------------------------------------------------------

AFP_SRC_OUT="$REPO/src/AuthFailoverProxy/bin/Release/net10.0"
BARE_SRC_OUT="$BENCH_DIR/BareYarp/bin/Release/net10.0"
build() {
  local project=$1 name=$2 attempt
  # A tree being edited can fail to build for a moment: try a few times before giving up (or use --no-build).
  for attempt in 1 2 3; do
    if dotnet build -c Release "$project" -nologo >"$RAW/build-$name.log" 2>&1; then
      return 0
    fi
    log "build of $name failed (attempt $attempt of 3); see $RAW/build-$name.log"
    ((attempt == 3)) || sleep 15
  done
  grep -E ': (error|warning) ' "$RAW/build-$name.log" | sort -u | head -n 20 >&2 || true
  die "cannot build $name (bench/run.sh --no-build runs the last Release build on disk)"
}
USAGE_PATH_OUT="$BENCH_DIR/UsagePath/bin/Release/net10.0"
if ((BUILD)); then
  log "building AuthFailoverProxy, BareYarp and UsagePath (Release)"
  build "$REPO/src/AuthFailoverProxy" AuthFailoverProxy
  build "$BENCH_DIR/BareYarp" BareYarp
  build "$BENCH_DIR/UsagePath" UsagePath
fi
[[ -f $AFP_SRC_OUT/AuthFailoverProxy.dll ]] || die "no build at $AFP_SRC_OUT"
[[ -f $BARE_SRC_OUT/BareYarp.dll ]] || die "no build at $BARE_SRC_OUT"
# Private copies: people rebuilding the repo during the run cannot swap assemblies under the running proxies.
cp -a "$AFP_SRC_OUT" "$TMP/afp"
cp -a "$BARE_SRC_OUT" "$TMP/bare"
AFP_DLL_SHA=$(sha256sum "$TMP/afp/AuthFailoverProxy.dll" | cut -c1-12)

# A baseline: the same service as built at an earlier commit (BENCH_BASELINE), measured in the same run, so a change's
# cost on the hot path is read side by side instead of across runs on a machine whose speed drifts.
BASELINE=${BENCH_BASELINE:-}
if [[ -n $BASELINE ]]; then
  BASELINE_REV=$(git -C "$REPO" rev-parse --short "$BASELINE^{commit}") || die "BENCH_BASELINE=$BASELINE is not a commit"
  log "building AuthFailoverProxy at $BASELINE_REV (Release) in a temporary worktree"
  git -C "$REPO" worktree add --detach "$TMP/baseline-src" "$BASELINE_REV" >"$RAW/baseline-worktree.log" 2>&1 || die "cannot check out $BASELINE_REV; see $RAW/baseline-worktree.log"
  build "$TMP/baseline-src/src/AuthFailoverProxy" baseline
  cp -a "$TMP/baseline-src/src/AuthFailoverProxy/bin/Release/net10.0" "$TMP/afpbase"
  git -C "$REPO" worktree remove --force "$TMP/baseline-src" >/dev/null 2>&1 || true
fi
AFP_DLL_TIME=$(date -u -r "$AFP_SRC_OUT/AuthFailoverProxy.dll" '+%Y-%m-%d %H:%M:%S UTC')

# --- 0. one answer's usage accounting, single-threaded -----------------------------------------------------------------

# Before any server starts, so nothing else runs beside it: what reading and counting one answer's usage costs in the
# proxy's own code (bench/UsagePath), a figure the whole-proxy runs below cannot resolve on a shared machine.
# Once on one thread (the work itself), once on every core at once (what cores writing the same counters add).
USAGE_PATH_THREADS=$(nproc)
USAGE_PATH_NS=n/a USAGE_PATH_B=n/a USAGE_PATH_ALL_NS=n/a
usage_path() {
  local threads=$1 out=$2 ns b
  (cd "$TMP" && timeout 300 dotnet "$USAGE_PATH_OUT/UsagePath.dll" $((QUICK ? 50000 : 200000)) $((QUICK ? 3 : 7)) "$threads") >"$out" 2>&1 || { log "bench/UsagePath failed; see $out"; echo "n/a n/a"; return; }
  read -r ns b < <(awk -F'\t' '$1 == "median" { print $4, $7 }' "$out") || true
  echo "${ns:-n/a} ${b:-n/a}"
}
if [[ -f $USAGE_PATH_OUT/UsagePath.dll ]]; then
  log "timing one answer's usage accounting away from the network (bench/UsagePath): 1 thread, then $USAGE_PATH_THREADS"
  read -r USAGE_PATH_NS USAGE_PATH_B < <(usage_path 1 "$RAW/usage-path.txt")
  read -r USAGE_PATH_ALL_NS _ < <(usage_path "$USAGE_PATH_THREADS" "$RAW/usage-path-$USAGE_PATH_THREADS-threads.txt")
else
  log "no build of bench/UsagePath at $USAGE_PATH_OUT: its row is n/a"
fi

# --- upstream: nginx -------------------------------------------------------------------------------------------------

free_port NGINX_PORT
mkdir -p "$TMP/nginx/flags"
sed -e "s#@TMP@#$TMP/nginx#g" -e "s#@PORT@#$NGINX_PORT#g" \
  -e "s#@PRIMARY_SECRET@#$PRIMARY_SECRET#g" -e "s#@BACKUP_SECRET@#$BACKUP_SECRET#g" \
  "$BENCH_DIR/nginx.conf.template" >"$TMP/nginx/nginx.conf"
REVOKE_FLAG="$TMP/nginx/flags/primary-revoked"
UPSTREAM="http://127.0.0.1:$NGINX_PORT"

log "starting nginx on $UPSTREAM (1 worker)"
"$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >"$RAW/nginx.out" 2>&1 &
NGINX_PID=$!
STARTED_PIDS+=("$NGINX_PID")
wait_ready nginx "$NGINX_PID" "$UPSTREAM/v1/messages" -X POST -H "x-api-key: $BACKUP_SECRET" -d '{}'
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n 1)
[[ -n $NGINX_WORKER ]] || die "nginx has no worker process"

# --- reference proxy: a second nginx -----------------------------------------------------------------------------------

free_port NGINXP_PORT
mkdir -p "$TMP/nginx-proxy"
sed -e "s#@TMP@#$TMP/nginx-proxy#g" -e "s#@PORT@#$NGINXP_PORT#g" -e "s#@UPSTREAM_PORT@#$NGINX_PORT#g" \
  -e "s#@PRIMARY_SECRET@#$PRIMARY_SECRET#g" "$BENCH_DIR/nginx-proxy.conf.template" >"$TMP/nginx-proxy/nginx.conf"
log "starting nginx as a reference proxy on 127.0.0.1:$NGINXP_PORT (1 worker)"
"$NGINX" -p "$TMP/nginx-proxy" -e "$TMP/nginx-proxy/error.log" -c "$TMP/nginx-proxy/nginx.conf" >"$RAW/nginx-proxy.out" 2>&1 &
NGINXP_PID=$!
STARTED_PIDS+=("$NGINXP_PID")
wait_ready "nginx (reference proxy)" "$NGINXP_PID" "http://127.0.0.1:$NGINXP_PORT/v1/messages" -X POST -H "x-api-key: $CLIENT_TOKEN" -d '{}'
NGINXP_WORKER=$(pgrep -P "$NGINXP_PID" | head -n 1)
[[ -n $NGINXP_WORKER ]] || die "the reference nginx has no worker process"

# --- shared key state: redis-server -----------------------------------------------------------------------------------

# redis_cmd WORDS…: one inline command over /dev/tcp; prints the first line of the answer.
redis_cmd() {
  local line
  (
    exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
    printf '%s\r\n' "$*" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    printf '%s\n' "${line%$'\r'}"
  ) 2>/dev/null
}

free_port REDIS_PORT
mkdir -p "$TMP/redis"
log "starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
  >"$RAW/redis.log" 2>&1 &
REDIS_PID=$!
STARTED_PIDS+=("$REDIS_PID")
for ((i = 0; i < 100; i++)); do
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited during start; see $RAW/redis.log"
  [[ "$(redis_cmd PING)" == +PONG ]] && break
  sleep 0.1
done
[[ "$(redis_cmd PING)" == +PONG ]] || die "redis-server did not answer PING within 10 s; see $RAW/redis.log"
REDIS_VERSION=$("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')

# --- proxies ---------------------------------------------------------------------------------------------------------

# start_bare NAME PREFIX [VAR=VALUE…]: BareYarp as built, its pid and port in ${PREFIX}_PID and ${PREFIX}_PORT.
start_bare() {
  local name=$1 prefix=$2 port pid
  shift 2
  free_port port
  log "starting BareYarp ($name) on 127.0.0.1:$port${*:+, with $*}"
  env "$@" dotnet "$TMP/bare/BareYarp.dll" --urls "http://127.0.0.1:$port" --upstream "$UPSTREAM" --api-key "$PRIMARY_SECRET" \
    >"$RAW/bareyarp-$name.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  printf -v "${prefix}_PID" '%s' "$pid"
  printf -v "${prefix}_PORT" '%s' "$port"
  wait_ready BareYarp "$pid" "http://127.0.0.1:$port/v1/messages" -X POST -H "x-api-key: $CLIENT_TOKEN" -d '{}'
}

# start_afp NAME [PREFIX [VAR=VALUE…]]: a fresh AuthFailoverProxy (all keys healthy), configured only by environment
# variables (the extra VAR=VALUE ones added, such as AFP_REDIS=…); its pid and ports land in ${PREFIX}_PID,
# ${PREFIX}_PORT and ${PREFIX}_MGMT_PORT (PREFIX defaults to AFP).
start_afp() {
  local name=$1 prefix=${2:-AFP} port mgmt pid extra="" kv
  shift $(($# < 2 ? $# : 2))
  for kv in "$@"; do [[ $kv == *TOKEN* ]] && extra+=" ${kv%%=*}=…" || extra+=" $kv"; done
  free_port port
  free_port mgmt
  log "starting AuthFailoverProxy ($name) on 127.0.0.1:$port, management 127.0.0.1:$mgmt${extra:+, with$extra}"
  env ASPNETCORE_URLS="http://127.0.0.1:$port" \
    AFP_MANAGEMENT_URLS="http://127.0.0.1:$mgmt" \
    AFP_UPSTREAM="$UPSTREAM" \
    AFP_KEYS="primary=$PRIMARY_SECRET,backup=$BACKUP_SECRET" \
    AFP_CLIENT_TOKENS="$CLIENT_TOKEN" \
    "$@" \
    dotnet "${AFP_BUILD:-$TMP/afp}/AuthFailoverProxy.dll" >"$RAW/afp-$name.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  printf -v "${prefix}_PID" '%s' "$pid"
  printf -v "${prefix}_PORT" '%s' "$port"
  printf -v "${prefix}_MGMT_PORT" '%s' "$mgmt"
  wait_ready "AuthFailoverProxy ($name)" "$pid" "http://127.0.0.1:$mgmt/readyz"
}

# stop_afp NAME [PREFIX]: saves its /status to the raw directory, then stops it.
stop_afp() {
  local prefix=${2:-AFP} pid_var mgmt_var
  pid_var=${prefix}_PID mgmt_var=${prefix}_MGMT_PORT
  curl -s --max-time 2 "http://127.0.0.1:${!mgmt_var}/status" >"$RAW/afp-$1-status.json" 2>/dev/null || true
  stop_pid "${!pid_var}"
}

# require_redis_store NAME PREFIX: the instance's /status must show "store": {"kind": "redis", "connected": true}.
require_redis_store() {
  local mgmt_var=${2}_MGMT_PORT store
  if store=$(timeout 30 python3 "$BENCH_DIR/propagation.py" store "http://127.0.0.1:${!mgmt_var}/status" --wait 10); then
    log "  $1: store $store"
  else
    die "AuthFailoverProxy ($1) is not connected to Redis after 10 s: store $store; see $RAW/afp-$1.log"
  fi
}

# --- load ------------------------------------------------------------------------------------------------------------

# wrk_run OUT URL KEY SECONDS: one bounded wrk run; its WRK_RESULT line lands in OUT.
wrk_run() {
  local out=$1 url=$2 key=$3 seconds=$4
  BENCH_API_KEY="$key" timeout $((seconds + 30)) \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout "$WRK_TIMEOUT" --latency -s "$BENCH_DIR/messages.lua" "$url" \
    >"$out" 2>&1 || true
  grep -q '^WRK_RESULT ' "$out" || { cat "$out" >&2; die "wrk produced no result ($out)"; }
}

wrk_field() { sed -n "s/^WRK_RESULT.* $2=\([0-9]*\).*/\1/p" "$1"; }
wrk_errors() {
  local f=$1
  echo $(($(wrk_field "$f" err_connect) + $(wrk_field "$f" err_read) + $(wrk_field "$f" err_write) + $(wrk_field "$f" err_status) + $(wrk_field "$f" err_timeout)))
}

target_url() {
  case $1 in
    direct) echo "$UPSTREAM" ;;
    bare) echo "http://127.0.0.1:$BARE_PORT" ;;
    barequiet) echo "http://127.0.0.1:$BAREQ_PORT" ;;
    nginxproxy) echo "http://127.0.0.1:$NGINXP_PORT" ;;
    afp) echo "http://127.0.0.1:$AFP_PORT" ;;
    afpnousage) echo "http://127.0.0.1:$AFPN_PORT" ;;
    afpredis) echo "http://127.0.0.1:$AFPR_PORT" ;;
    afpbase) echo "http://127.0.0.1:$AFPB_PORT" ;;
  esac
}
target_key() { [[ $1 == direct ]] && echo "$PRIMARY_SECRET" || echo "$CLIENT_TOKEN"; }
# The process whose CPU and memory a target costs: the proxy, or nginx's worker when going direct.
target_pid() {
  case $1 in
    direct) echo "$NGINX_WORKER" ;;
    bare) echo "$BARE_PID" ;;
    barequiet) echo "$BAREQ_PID" ;;
    nginxproxy) echo "$NGINXP_WORKER" ;;
    afp) echo "$AFP_PID" ;;
    afpnousage) echo "$AFPN_PID" ;;
    afpredis) echo "$AFPR_PID" ;;
    afpbase) echo "$AFPB_PID" ;;
  esac
}
target_label() {
  case $1 in
    direct) echo "direct (nginx)" ;;
    bare) echo "bare YARP" ;;
    barequiet) echo "bare YARP, request diagnostics off" ;;
    nginxproxy) echo "nginx (reference proxy)" ;;
    afp) echo "AuthFailoverProxy" ;;
    afpnousage) echo "AuthFailoverProxy, usage not read" ;;
    afpredis) echo "AuthFailoverProxy (Redis store)" ;;
    afpbase) echo "AuthFailoverProxy at $BASELINE_REV (baseline)" ;;
  esac
}

# allocated_bytes TARGET: the bytes an AuthFailoverProxy target has allocated since its start, from the .NET runtime's
# meter on its /metrics (empty for other targets, and for a build from before the runtime meter was exported). Unlike CPU
# time, allocation per request hardly moves between runs on a busy machine: a change's cost in it shows in one run.
allocated_bytes() {
  local mgmt
  case "$1" in
    afp) mgmt=$AFP_MGMT_PORT ;;
    afpnousage) mgmt=$AFPN_MGMT_PORT ;;
    afpredis) mgmt=$AFPR_MGMT_PORT ;;
    afpbase) mgmt=$AFPB_MGMT_PORT ;;
    *) return 0 ;;
  esac
  # awk reads to the end (an early exit would cut curl's pipe); a failed scrape leaves the figure unknown.
  { curl -s --max-time 5 "http://127.0.0.1:$mgmt/metrics" || true; } |
    awk '/^dotnet_gc_heap_total_allocated_bytes_total/ { v = $NF } END { if (v != "") print v }'
}

RUNS="$TMP/runs.tsv"
: >"$RUNS"
# measure TARGET REP: one measured run; appends target, rep, rps, p50 µs, p99 µs, CPU µs/req (target process),
# upstream CPU µs/req (nginx worker), peak RSS kB, upstream calls/req, errors, requests, the share of the machine's
# CPU that something other than this benchmark used during the run (%), redis-server's CPU µs/req, and the bytes the
# target allocated per request (empty where not known).
measure() {
  local target=$1 rep=$2 out="$RAW/wrk-$1-rep$2.txt" pid
  pid=$(target_pid "$target")
  local t0 u0 r0 l0 c0 m0 t1 u1 r1 l1 c1 m1 ours a0 a1 allocated=""
  # Read outside the CPU window: a scrape is not a request.
  a0=$(allocated_bytes "$target")
  children_ticks c0
  m0=$(machine_ticks)
  t0=$(cpu_ticks "$pid") u0=$(cpu_ticks "$NGINX_WORKER") r0=$(cpu_ticks "$REDIS_PID") l0=$(access_lines)
  wrk_run "$out" "$(target_url "$target")" "$(target_key "$target")" "$DURATION"
  t1=$(cpu_ticks "$pid") u1=$(cpu_ticks "$NGINX_WORKER") r1=$(cpu_ticks "$REDIS_PID")
  m1=$(machine_ticks)
  children_ticks c1
  sleep 0.3 # in-flight calls finish and reach the access log
  l1=$(access_lines)
  a1=$(allocated_bytes "$target")
  local requests duration_us
  requests=$(wrk_field "$out" requests) duration_us=$(wrk_field "$out" duration_us)
  ((requests > 0)) || die "no request completed against $target; see $out"
  [[ -z $a0 || -z $a1 ]] || allocated=$(calc %.0f "($a1 - $a0) / $requests")
  ours=$(((t1 - t0) + (c1 - c0) + (r1 - r0)))
  [[ $target == direct ]] || ours=$((ours + u1 - u0))
  [[ -z ${BENCH_DEBUG:-} ]] || log "  ticks: machine $((m1 - m0)), target $((t1 - t0)), nginx $((u1 - u0)), redis $((r1 - r0)), children $((c1 - c0))"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$rep" \
    "$(calc %.1f "$requests / ($duration_us / 1000000)")" \
    "$(wrk_field "$out" p50_us)" "$(wrk_field "$out" p99_us)" \
    "$(calc %.2f "($t1 - $t0) / $CLK_TCK * 1000000 / $requests")" \
    "$(calc %.2f "($u1 - $u0) / $CLK_TCK * 1000000 / $requests")" \
    "$(peak_rss_kb "$pid")" \
    "$(calc %.4f "($l1 - $l0) / $requests")" \
    "$(wrk_errors "$out")" "$requests" \
    "$(calc %.1f "(($m1 - $m0) - $ours) < 0 ? 0 : (($m1 - $m0) - $ours) * 100 / ($CLK_TCK * $duration_us / 1000000 * $CORES)")" \
    "$(calc %.2f "($r1 - $r0) / $CLK_TCK * 1000000 / $requests")" "$allocated" >>"$RUNS"
  log "  $(target_label "$target") rep $rep: $(tail -n 1 "$RUNS" | cut -f3) req/s, $(wrk_errors "$out") errors, other load $(tail -n 1 "$RUNS" | cut -f12)%"
}

# sorted_median [FORMAT]: the median of the ascending numbers on stdin, one per line (nan when there are none), printed
# with FORMAT (as awk prints a number when none is given).
sorted_median() {
  awk -v f="${1:-}" '{ a[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    v = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    if (f == "") print v; else printf f "\n", v }'
}
# median FILE COLUMN [TARGET]: median of a numeric column (all rows, or the target's rows).
median() {
  awk -F'\t' -v c="$2" -v t="${3:-}" '(t == "" || $1 == t) && $c != "" { print $c }' "$1" | sort -g | sorted_median
}
# paired_ratio FILE COLUMN A B: the median over repetitions of A's value divided by B's in the same repetition. The
# targets of one repetition run back to back, so a machine that drifts between repetitions cancels out of each ratio.
paired_ratio() {
  awk -F'\t' -v c="$2" -v a="$3" -v b="$4" '$1 == a { x[$2] = $c } $1 == b { y[$2] = $c }
    END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$1" | sort -g | sorted_median %.3f
}
max_col() { awk -F'\t' -v c="$2" -v t="$3" '$1 == t && $c > m { m = $c } END { print m + 0 }' "$1"; }
sum_col() { awk -F'\t' -v c="$2" -v t="$3" '$1 == t { s += $c } END { print s + 0 }' "$1"; }

# --- 1. throughput, latency, CPU -------------------------------------------------------------------------------------

# The client has a budget (far above what the run spends), so every measured request is checked against it: in memory,
# with the totals synced to Redis in the background where there is Redis (issue 14: no Redis round trip on the request
# path). A baseline build from before budgets is started without it (its strict configuration check would refuse it).
BUDGET=(Clients__Tokens__0__Budget__RequestsPerMinute=1000000000 Clients__Tokens__0__Budget__TokensPerMinute=1000000000000 Clients__Tokens__0__Budget__TokensPerDay=1000000000000000)
# start_proxies SUFFIX: the proxies of the throughput runs (nginx, direct and as a proxy, stays up for the whole run).
start_proxies() {
  start_bare "default$1" BARE
  # The same app as AuthFailoverProxy runs ASP.NET Core: its per-request diagnostics category off (no request activity
  # or log scope); the ratio to it is what the failover machinery itself costs, the ratio to the default app the target's.
  start_bare "quiet$1" BAREQ Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics=None
  start_afp "throughput$1" AFP "${BUDGET[@]}"
  # The same build reading no usage from the answers (issue 14: what usage accounting costs); its client's budget can
  # only count requests then.
  start_afp "throughput-nousage$1" AFPN Usage__Enabled=false Clients__Tokens__0__Budget__RequestsPerMinute=1000000000
  # The same build with key health shared through the redis-server above; the request path never waits for Redis.
  start_afp "throughput-redis$1" AFPR AFP_REDIS="127.0.0.1:$REDIS_PORT" "${BUDGET[@]}"
  require_redis_store "throughput-redis$1" AFPR
  if [[ -n $BASELINE ]]; then
    AFP_BUILD="$TMP/afpbase" start_afp "baseline$1" AFPB
  fi
}
# stop_proxies SUFFIX: stops what start_proxies started, keeping each AuthFailoverProxy's /status.
stop_proxies() {
  stop_pid "$BARE_PID"
  stop_pid "$BAREQ_PID"
  stop_afp "throughput$1" AFP
  stop_afp "throughput-nousage$1" AFPN
  stop_afp "throughput-redis$1" AFPR
  [[ -z $BASELINE ]] || stop_afp "baseline$1" AFPB
}
start_proxies ""

# Others' builds and test runs on the same cores make every number noisy. Before each measured run, wait for the
# machine to be quiet (under 10 % busy with the proxies idle), within a time budget for the whole run so it still ends
# on time; every run records how busy the machine was anyway (the "other load" column).
machine_busy_pct() {
  local m0 m1
  m0=$(machine_ticks)
  sleep "$1"
  m1=$(machine_ticks)
  calc %.0f "($m1 - $m0) * 100 / ($CLK_TCK * $1 * $CORES)"
}
QUIET_BUDGET=$((QUICK ? 10 : 90))
BUSY_BEFORE=$(machine_busy_pct 1)
wait_for_quiet() {
  local busy
  busy=$(machine_busy_pct 1)
  ((busy >= 10)) || return 0
  log "  the machine is ${busy}% busy with other work; waiting for it to settle (budget left: ${QUIET_BUDGET} s)"
  while ((QUIET_BUDGET > 0)); do
    busy=$(machine_busy_pct 1)
    QUIET_BUDGET=$((QUIET_BUDGET - 1))
    ((busy >= 10)) || return 0
  done
  log "  going ahead ${busy}% busy; this run will be noisy"
}

TARGETS=(direct bare barequiet nginxproxy afp afpnousage afpredis)
[[ -z $BASELINE ]] || TARGETS+=(afpbase)
# Repetitions are numbered across rounds (round 2's first is REPS + 1): a paired ratio pairs runs of one repetition.
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round > 1)); then
    log "round $round of $ROUNDS: the proxies started afresh"
    if ((round > 2)); then stop_proxies "-round$((round - 1))"; else stop_proxies ""; fi
    start_proxies "-round$round"
  fi
  log "warm-up: ${WARMUP} s per target"
  for target in "${TARGETS[@]}"; do
    # nginx runs for the whole benchmark: warmed once.
    ((round == 1)) || [[ $target != direct && $target != nginxproxy ]] || continue
    wrk_run "$RAW/wrk-$target-warmup-round$round.txt" "$(target_url "$target")" "$(target_key "$target")" "$WARMUP"
    wrk_errors "$RAW/wrk-$target-warmup-round$round.txt" | grep -qx 0 || log "  warning: warm-up against $target had errors"
  done

  log "measured: $REPS x ${DURATION} s per target, $THREADS threads, $CONNECTIONS connections, order rotating$( ((ROUNDS == 1)) || echo " (round $round of $ROUNDS)")"
  for ((r = 1; r <= REPS; r++)); do
    rep=$(((round - 1) * REPS + r))
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
      wait_for_quiet
      measure "${TARGETS[(i + rep - 1) % ${#TARGETS[@]}]}" "$rep"
    done
  done
done
LAST_ROUND_SUFFIX=""
((ROUNDS == 1)) || LAST_ROUND_SUFFIX="-round$ROUNDS"
cp "$RUNS" "$RAW/runs.tsv"

# --- 1b. two targets loaded at once ----------------------------------------------------------------------------------

# On a shared machine the speed the proxies get drifts from one run to the next (another tenant, the host's clock): runs
# of one target 10 s apart differ by more than the few per cent a ratio has to tell. Here two targets take the load at
# the same time, each from its own wrk with half the threads and connections, and their CPU is read over the same
# window: whatever the machine does, both live through it, and it cancels out of their ratio. The load on each is half
# the sequential runs', so CPU per request is not comparable with theirs; only the ratio is.
AT_ONCE="$TMP/at-once.tsv"
: >"$AT_ONCE"
AT_ONCE_REPS=${BENCH_AT_ONCE_REPS:-$((QUICK ? 1 : 6))}
[[ $AT_ONCE_REPS =~ ^[1-9][0-9]?$ ]] || die "BENCH_AT_ONCE_REPS must be a whole number from 1 to 99"
# at_once A B REP: one run of A and B loaded at once; appends A, B, rep, A's and B's CPU µs/req and req/s, errors.
at_once() {
  local a=$1 b=$2 rep=$3 pa pb ta0 tb0 ta1 tb1 oa ob first second
  pa=$(target_pid "$a") pb=$(target_pid "$b")
  oa="$RAW/wrk-at-once-$a-$b-rep$rep-$a.txt" ob="$RAW/wrk-at-once-$a-$b-rep$rep-$b.txt"
  # Who starts first alternates, so the few milliseconds between the two starts favour neither.
  if ((rep % 2)); then first=$a second=$b; else first=$b second=$a; fi
  ta0=$(cpu_ticks "$pa") tb0=$(cpu_ticks "$pb")
  THREADS=$((THREADS / 2)) CONNECTIONS=$((CONNECTIONS / 2)) \
    wrk_run "$RAW/wrk-at-once-$a-$b-rep$rep-$first.txt" "$(target_url "$first")" "$(target_key "$first")" "$DURATION" &
  local w1=$!
  THREADS=$((THREADS / 2)) CONNECTIONS=$((CONNECTIONS / 2)) \
    wrk_run "$RAW/wrk-at-once-$a-$b-rep$rep-$second.txt" "$(target_url "$second")" "$(target_key "$second")" "$DURATION" &
  local w2=$!
  wait "$w1" || die "wrk failed against $first (loaded at once with $second)"
  wait "$w2" || die "wrk failed against $second (loaded at once with $first)"
  ta1=$(cpu_ticks "$pa") tb1=$(cpu_ticks "$pb")
  local ra rb
  ra=$(wrk_field "$oa" requests) rb=$(wrk_field "$ob" requests)
  ((ra > 0 && rb > 0)) || die "no request completed against $a or $b loaded at once; see $oa, $ob"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "$b" "$rep" \
    "$(calc %.2f "($ta1 - $ta0) / $CLK_TCK * 1000000 / $ra")" "$(calc %.2f "($tb1 - $tb0) / $CLK_TCK * 1000000 / $rb")" \
    "$(calc %.1f "$ra / ($(wrk_field "$oa" duration_us) / 1000000)")" "$(calc %.1f "$rb / ($(wrk_field "$ob" duration_us) / 1000000)")" \
    "$(($(wrk_errors "$oa") + $(wrk_errors "$ob")))" >>"$AT_ONCE"
  log "  $(target_label "$a") and $(target_label "$b") at once, rep $rep: CPU µs/req $(tail -n 1 "$AT_ONCE" | cut -f4) and $(tail -n 1 "$AT_ONCE" | cut -f5)"
}
# The pairs whose ratio has a goal (usage accounting; the whole proxy against bare YARP), and the baseline when there is one.
AT_ONCE_PAIRS=("afp afpnousage" "afp bare")
[[ -z $BASELINE ]] || AT_ONCE_PAIRS+=("afp afpbase")
log "loaded at once: $AT_ONCE_REPS x ${DURATION} s per pair, $((THREADS / 2)) thread and $((CONNECTIONS / 2)) connections on each side"
for ((rep = 1; rep <= AT_ONCE_REPS; rep++)); do
  for pair in "${AT_ONCE_PAIRS[@]}"; do
    wait_for_quiet
    # shellcheck disable=SC2086 # the pair is two words on purpose
    at_once $pair "$rep"
  done
done
cp "$AT_ONCE" "$RAW/at-once.tsv"
# at_once_ratios A B: every rep's ratio of A's CPU per request to B's, ascending, one per line.
at_once_ratios() { awk -F'\t' -v a="$1" -v b="$2" '$1 == a && $2 == b && $5 > 0 { printf "%.3f\n", $4 / $5 }' "$AT_ONCE" | sort -g; }
# at_once_median A B: the median of those ratios.
at_once_median() {
  at_once_ratios "$1" "$2" | sorted_median %.3f
}

# --- 2. SSE time to first byte ---------------------------------------------------------------------------------------

log "SSE time to first byte: $SSE_N requests per target (after $SSE_WARM warm-up), interleaved"
sse_once() {
  curl -s -o /dev/null --max-time 5 -X POST "$(target_url "$1")/v1/sse" \
    -H "x-api-key: $(target_key "$1")" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    -H 'accept: text/event-stream' --data-binary "$SSE_BODY" -w '%{http_code} %{time_starttransfer}\n' || echo "000 0"
}
wait_for_quiet
for target in "${TARGETS[@]}"; do
  : >"$TMP/sse-$target.txt"
  for ((i = 0; i < SSE_WARM; i++)); do sse_once "$target" >/dev/null; done
done
for ((i = 0; i < SSE_N; i++)); do
  for ((j = 0; j < ${#TARGETS[@]}; j++)); do
    target=${TARGETS[(i + j) % ${#TARGETS[@]}]}
    sse_once "$target" >>"$TMP/sse-$target.txt"
  done
done
# sse_stat TARGET STAT: median or p90 (nearest rank) of the 200-answered requests, in ms; or the count of others.
sse_stat() {
  local f="$TMP/sse-$1.txt"
  case $2 in
    errors) awk '$1 != 200 { n++ } END { print n + 0 }' "$f" ;;
    median | p90)
      awk '$1 == 200 { print $2 * 1000 }' "$f" | sort -g |
        awk -v s="$2" '{ a[NR] = $1 } END {
          if (NR == 0) { print "nan"; exit }
          if (s == "median") v = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          else { r = int(0.9 * NR + 0.999999); v = a[r] }
          printf "%.3f", v }' ;;
  esac
}
for target in "${TARGETS[@]}"; do cp "$TMP/sse-$target.txt" "$RAW/sse-$target.txt"; done

# --- 3. failover -----------------------------------------------------------------------------------------------------

# failover_count OUT FROM_LINE: upstream calls since FROM_LINE of the access log, in total and by key and status.
failover_count() {
  local out=$1 from=$2 to
  sleep 0.5 # in-flight calls finish and reach the access log
  to=$(access_lines)
  sed -n "$((from + 1)),${to}p" "$TMP/nginx/access.log" | awk '{ k[$1 " " $2]++; n++ } END {
    printf "calls=%d primary_200=%d primary_403=%d backup_200=%d other=%d\n",
      n, k["primary 200"], k["primary 403"], k["backup 200"], n - k["primary 200"] - k["primary 403"] - k["backup 200"] }' >"$out"
  sed -n "$((from + 1)),${to}p" "$TMP/nginx/access.log" | awk '{ print $1, $2, $3 }' | sort | uniq -c >>"$out"
}

log "failover, revoked from the start: fresh proxy, primary answers 403 permission_error, ${FAILOVER_DURATION} s of load"
# Still connected after all the load? (Checked once more, into the report, before it stops.)
AFPR_STORE_END=$(timeout 10 python3 "$BENCH_DIR/propagation.py" store "http://127.0.0.1:$AFPR_MGMT_PORT/status" --wait 2 || true)
stop_afp "throughput-redis$LAST_ROUND_SUFFIX" AFPR
stop_afp "throughput$LAST_ROUND_SUFFIX"
stop_afp "throughput-nousage$LAST_ROUND_SUFFIX" AFPN
touch "$REVOKE_FLAG"
start_afp revoked-at-start
wait_for_quiet
FO1_FROM=$(access_lines)
wrk_run "$RAW/wrk-failover-revoked-at-start.txt" "$(target_url afp)" "$CLIENT_TOKEN" "$FAILOVER_DURATION"
failover_count "$RAW/upstream-revoked-at-start.txt" "$FO1_FROM"
stop_afp revoked-at-start

log "failover, revoked during load: fresh proxy, primary revoked after $((FAILOVER_DURATION / 2)) s of ${FAILOVER_DURATION} s"
rm -f "$REVOKE_FLAG"
start_afp revoked-during-load
wait_for_quiet
FO2_FROM=$(access_lines)
wrk_run "$RAW/wrk-failover-revoked-during-load.txt" "$(target_url afp)" "$CLIENT_TOKEN" "$FAILOVER_DURATION" &
WRK_BG=$!
STARTED_PIDS+=("$WRK_BG")
sleep $((FAILOVER_DURATION / 2))
touch "$REVOKE_FLAG"
FO2_REVOKED_AT=$(access_lines)
wait "$WRK_BG" || die "wrk failed during the revoke-during-load run"
failover_count "$RAW/upstream-revoked-during-load.txt" "$FO2_FROM"
echo "access-log lines of this run when the primary was revoked: $((FO2_REVOKED_AT - FO2_FROM))" >>"$RAW/upstream-revoked-during-load.txt"
stop_afp revoked-during-load
rm -f "$REVOKE_FLAG"

log "a request that is itself bad: fresh proxy, every request carries an anthropic-beta the upstream refuses with 400 and echoes (\"billing\"), ${FAILOVER_DURATION} s of load"
start_afp bad-request
wait_for_quiet
FO3_FROM=$(access_lines)
BENCH_BETA=billing-bench-2025-01-01 wrk_run "$RAW/wrk-bad-request.txt" "$(target_url afp)" "$CLIENT_TOKEN" "$FAILOVER_DURATION"
failover_count "$RAW/upstream-bad-request.txt" "$FO3_FROM"
sleep 1 # the suspicions' checks run in the background; then every key must still be in service
FO3_USABLE=$(curl -s --max-time 5 "http://127.0.0.1:$AFP_MGMT_PORT/status" | python3 -c 'import json, sys
keys = [k for p in json.load(sys.stdin)["pools"] for k in p["keys"]]
print(sum(k["state"] == "usable" for k in keys), "of", len(keys))' 2>/dev/null || echo "unknown")
stop_afp bad-request

# --- 4. key state between replicas (Redis store) ---------------------------------------------------------------------

# Two replicas sharing the redis-server: an admin change on A, how long until B shows it. bench/propagation.py does the
# timing (keep-alive connections, B polled about every millisecond); every change and every wait is bounded.
log "propagation between replicas: $PROP_N x disable then enable 'backup' on A, B polled every ~1 ms (budget ${PROP_BUDGET} s)"
start_afp replica-a RA AFP_REDIS="127.0.0.1:$REDIS_PORT" AFP_ADMIN_TOKEN="$ADMIN_TOKEN"
start_afp replica-b RB AFP_REDIS="127.0.0.1:$REDIS_PORT" AFP_ADMIN_TOKEN="$ADMIN_TOKEN"
require_redis_store replica-a RA
require_redis_store replica-b RB
wait_for_quiet
PROP_RC=0
timeout $((PROP_BUDGET + 60)) python3 "$BENCH_DIR/propagation.py" measure \
  --a "http://127.0.0.1:$RA_MGMT_PORT" --b "http://127.0.0.1:$RB_MGMT_PORT" --token "$ADMIN_TOKEN" \
  --pool anthropic --key backup --n "$PROP_N" --warmup 5 --poll-ms 1 --timeout 15 --budget "$PROP_BUDGET" \
  --samples "$RAW/propagation-samples.tsv" >"$RAW/propagation.txt" 2>&1 || PROP_RC=$?
declare -A PROP=()
while IFS='=' read -r k v; do
  if [[ $k == PROP_* ]]; then PROP[${k#PROP_}]=$v; fi
done <"$RAW/propagation.txt"
if ((PROP_RC != 0)); then
  log "  propagation.py failed (exit $PROP_RC): $(tail -n 3 "$RAW/propagation.txt" | tr '\n' ' ')"
  PROP[stopped]="bench/propagation.py failed (exit $PROP_RC): $(tail -n 1 "$RAW/propagation.txt")"
fi
for k in disable_n enable_n; do PROP[$k]=${PROP[$k]:-0}; done
for k in disable_median disable_p90 disable_p99 disable_max disable_a_rtt_median enable_median enable_p90 enable_p99 \
  enable_max enable_a_rtt_median poll_interval_ms elapsed_s; do PROP[$k]=${PROP[$k]:-nan}; done
PROP[anomalies]=${PROP[anomalies]:-0}
log "  disable: median ${PROP[disable_median]} ms, p99 ${PROP[disable_p99]} ms; enable: median ${PROP[enable_median]} ms, p99 ${PROP[enable_p99]} ms${PROP[stopped]:+; stopped: ${PROP[stopped]}}"
stop_afp replica-a RA
stop_afp replica-b RB

# --- report ----------------------------------------------------------------------------------------------------------

log "writing the report"
ms() { calc %.2f "$1 / 1000"; }
pass() { awk "BEGIN { exit !($1) }" && echo PASS || echo MISS; }

declare -A RPS P50 P99 CPU UPCPU RSS CALLS ERR ALLOC
for target in "${TARGETS[@]}"; do
  ALLOC[$target]=$(median "$RUNS" 14 "$target")
  [[ ${ALLOC[$target]} != nan ]] || ALLOC[$target]="n/a"
  RPS[$target]=$(median "$RUNS" 3 "$target")
  P50[$target]=$(median "$RUNS" 4 "$target")
  P99[$target]=$(median "$RUNS" 5 "$target")
  CPU[$target]=$(median "$RUNS" 6 "$target")
  UPCPU[$target]=$(median "$RUNS" 7 "$target")
  RSS[$target]=$(max_col "$RUNS" 8 "$target")
  CALLS[$target]=$(median "$RUNS" 9 "$target")
  ERR[$target]=$(sum_col "$RUNS" 10 "$target")
done
OTHER_MEDIAN=$(median "$RUNS" 12)
OTHER_MAX=$(awk -F'\t' '$12 > m { m = $12 } END { print m + 0 }' "$RUNS")

THROUGHPUT_RATIO=$(calc %.3f "${RPS[afp]} / ${RPS[bare]}")
CPU_RATIO=$(calc %.3f "${CPU[afp]} / ${CPU[bare]}")
CPU_RATIO_PAIRED=$(paired_ratio "$RUNS" 6 afp bare)
QUIET_CPU_RATIO=$(calc %.3f "${CPU[afp]} / ${CPU[barequiet]}")
QUIET_CPU_RATIO_PAIRED=$(paired_ratio "$RUNS" 6 afp barequiet)
QUIET_THROUGHPUT_RATIO=$(calc %.3f "${RPS[afp]} / ${RPS[barequiet]}")
REDIS_THROUGHPUT_RATIO=$(calc %.3f "${RPS[afpredis]} / ${RPS[afp]}")
# What reading usage costs: the same build with Usage:Enabled=false, as a share of its CPU per request.
USAGE_CPU_PCT=$(calc %.1f "(${CPU[afp]} / ${CPU[afpnousage]} - 1) * 100")
USAGE_CPU_PCT_PAIRED=$(calc %.1f "($(paired_ratio "$RUNS" 6 afp afpnousage) - 1) * 100")
USAGE_THROUGHPUT_RATIO=$(calc %.3f "${RPS[afp]} / ${RPS[afpnousage]}")
REDIS_CPU_RATIO=$(calc %.3f "${CPU[afpredis]} / ${CPU[afp]}")
if [[ -n $BASELINE ]]; then
  BASELINE_THROUGHPUT_RATIO=$(calc %.3f "${RPS[afp]} / ${RPS[afpbase]}")
  BASELINE_CPU_RATIO=$(calc %.3f "${CPU[afp]} / ${CPU[afpbase]}")
  BASELINE_CPU_RATIO_PAIRED=$(paired_ratio "$RUNS" 6 afp afpbase)
fi
# The same ratios from the runs loaded at once (1b), with every sample: these are the ones a drifting machine cancels from.
AT_ONCE_USAGE_PCT=$(calc %.1f "($(at_once_median afp afpnousage) - 1) * 100")
AT_ONCE_USAGE_SAMPLES=$(at_once_ratios afp afpnousage | awk '{ printf "%s%+.1f %%", (NR > 1 ? ", " : ""), ($1 - 1) * 100 }')
AT_ONCE_BARE=$(at_once_median afp bare)
AT_ONCE_BARE_SAMPLES=$(at_once_ratios afp bare | paste -sd, - | sed 's/,/, /g')
if [[ -n $BASELINE ]]; then
  AT_ONCE_BASE=$(at_once_median afp afpbase)
  AT_ONCE_BASE_SAMPLES=$(at_once_ratios afp afpbase | paste -sd, - | sed 's/,/, /g')
fi
AT_ONCE_ERRORS=$(awk -F'\t' '{ s += $8 } END { print s + 0 }' "$AT_ONCE")
REDIS_CPU_DURING=$(median "$RUNS" 13 afpredis)
REDIS_CPU_MAX=$(awk -F'\t' '$13 > m { m = $13 } END { print m + 0 }' "$RUNS")
PROP_COMPLETE=$(( PROP[disable_n] == PROP_N && PROP[enable_n] == PROP_N && PROP_RC == 0 ))
if ((PROP_COMPLETE)) && [[ -z ${PROP[stopped]:-} ]]; then
  PROP_RESULT=$(pass "${PROP[disable_p99]} <= 100 && ${PROP[enable_p99]} <= 100")
else
  PROP_RESULT=MISS
fi
SSE_DIFF=$(calc %.3f "$(sse_stat afp median) - $(sse_stat direct median)")
SSE_DIFF_P90=$(calc %.3f "$(sse_stat afp p90) - $(sse_stat direct p90)")
SSE_BARE_DIFF=$(calc %.3f "$(sse_stat bare median) - $(sse_stat direct median)")
SSE_BAREQ_DIFF=$(calc %.3f "$(sse_stat barequiet median) - $(sse_stat direct median)")
SSE_REDIS_DIFF=$(calc %.3f "$(sse_stat afpredis median) - $(sse_stat direct median)")
SSE_NOUSAGE_DIFF=$(calc %.3f "$(sse_stat afpnousage median) - $(sse_stat direct median)")
SSE_USAGE_COST=$(calc %.3f "$(sse_stat afp median) - $(sse_stat afpnousage median)")
SSE_USAGE_COST_P90=$(calc %.3f "$(sse_stat afp p90) - $(sse_stat afpnousage p90)")
SSE_NGINXP_DIFF=$(calc %.3f "$(sse_stat nginxproxy median) - $(sse_stat direct median)")
SSE_ERRORS=$(($(sse_stat direct errors) + $(sse_stat bare errors) + $(sse_stat barequiet errors) + $(sse_stat nginxproxy errors) + $(sse_stat afp errors) + $(sse_stat afpnousage errors) + $(sse_stat afpredis errors)))
NGINXP_CPU_RATIO=$(calc %.3f "${CPU[afp]} / ${CPU[nginxproxy]}")
NGINXP_THROUGHPUT_RATIO=$(calc %.3f "${RPS[afp]} / ${RPS[nginxproxy]}")

FO1_WRK="$RAW/wrk-failover-revoked-at-start.txt" FO1_UP="$RAW/upstream-revoked-at-start.txt"
FO2_WRK="$RAW/wrk-failover-revoked-during-load.txt" FO2_UP="$RAW/upstream-revoked-during-load.txt"
fo_calls() { sed -n 's/^calls=\([0-9]*\).*/\1/p' "$1"; }
fo_key() { sed -n "s/^calls=.* $2=\([0-9]*\).*/\1/p" "$1"; }
FO1_REQ=$(wrk_field "$FO1_WRK" requests) FO1_CALLS=$(fo_calls "$FO1_UP") FO1_ERR=$(wrk_errors "$FO1_WRK")
FO2_REQ=$(wrk_field "$FO2_WRK" requests) FO2_CALLS=$(fo_calls "$FO2_UP") FO2_ERR=$(wrk_errors "$FO2_WRK")
FO1_RATIO=$(calc %.4f "$FO1_CALLS / $FO1_REQ")
FO2_RATIO=$(calc %.4f "$FO2_CALLS / $FO2_REQ")
FO3_WRK="$RAW/wrk-bad-request.txt" FO3_UP="$RAW/upstream-bad-request.txt"
FO3_REQ=$(wrk_field "$FO3_WRK" requests) FO3_CALLS=$(fo_calls "$FO3_UP") FO3_400=$(wrk_field "$FO3_WRK" err_status)
FO3_RATIO=$(calc %.4f "$FO3_CALLS / $FO3_REQ")
fo_errors_detail() {
  echo "$(wrk_field "$1" err_status) non-2xx/3xx, $(($(wrk_field "$1" err_connect) + $(wrk_field "$1" err_read) + $(wrk_field "$1" err_write))) socket, $(wrk_field "$1" err_timeout) timeouts"
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
KERNEL=$(uname -sr)
OS=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo unknown)
DOTNET_VERSION=$(dotnet --version)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's#^nginx version: nginx/##')
WRK_VERSION=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{ print $2 }') # wrk -v exits 1
CURL_VERSION=$(curl --version | head -n 1 | awk '{ print $2 }')
PYTHON_VERSION=$(python3 -c 'import platform; print(platform.python_version())')
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
GIT_DIRTY=$([[ -n "$(git -C "$REPO" status --porcelain -- src 2>/dev/null)" ]] && echo ", src/ has uncommitted changes" || true)

REPORT="$TMP/report.md"
{
  echo "# AuthFailoverProxy hot-path benchmark, with the Redis store ($(date -u '+%Y-%m-%d %H:%M UTC'), $MODE mode)"
  echo
  echo "Produced by \`bench/run.sh\`$( ((QUICK)) && echo ' --quick'). Code: $GIT_REV$GIT_DIRTY; AuthFailoverProxy.dll built $AFP_DLL_TIME$( ((BUILD)) || echo ' (--no-build)'), sha256 $AFP_DLL_SHA…."
  echo "The same report is written for issue 2 (hot path, failover) and issue 4 (key health shared through Redis: the Redis-store rows and the propagation section)."
  echo
  echo "## Targets"
  echo
  echo "| Target | Measured | Goal | Result |"
  echo "|---|---:|---|---|"
  echo "| Throughput, AuthFailoverProxy / bare YARP | $THROUGHPUT_RATIO (${RPS[afp]%.*} / ${RPS[bare]%.*} req/s) | ≥ 0.90 | $(pass "$THROUGHPUT_RATIO >= 0.9") |"
  echo "| CPU time per request, AuthFailoverProxy / bare YARP | $CPU_RATIO (${CPU[afp]} / ${CPU[bare]} µs) | ≤ 1.05 (issue 12; 1.10 before) | $(pass "$CPU_RATIO <= 1.05") |"
  echo "| The same, paired: median over repetitions of the ratio within one repetition | $CPU_RATIO_PAIRED | ≤ 1.05 | $(pass "$CPU_RATIO_PAIRED <= 1.05") |"
  echo "| Usage accounting: CPU per request, AuthFailoverProxy / the same with usage not read (\`Usage:Enabled=false\`), − 1 | $USAGE_CPU_PCT % by medians (${CPU[afp]} / ${CPU[afpnousage]} µs); paired: $USAGE_CPU_PCT_PAIRED %; throughput ratio $USAGE_THROUGHPUT_RATIO | ≤ 3 % (issue 14) | $(pass "$USAGE_CPU_PCT_PAIRED <= 3") |"
  echo "| Usage accounting, the two loaded at once (1b): median over repetitions of the CPU-per-request ratio, − 1; every sample | $AT_ONCE_USAGE_PCT %; samples $AT_ONCE_USAGE_SAMPLES | ≤ 3 % (issue 14) | $(pass "$AT_ONCE_USAGE_PCT <= 3") |"
  echo "| CPU per request, AuthFailoverProxy / bare YARP, the two loaded at once (1b): median; every sample | $AT_ONCE_BARE; samples $AT_ONCE_BARE_SAMPLES | ≤ 1.05 | $(pass "$AT_ONCE_BARE <= 1.05") |"
  echo "| For reference: usage accounting of one answer away from the network (\`bench/UsagePath\`), read − unread, CPU of the whole process | $USAGE_PATH_NS ns on 1 thread, $USAGE_PATH_ALL_NS ns on $USAGE_PATH_THREADS at once; $USAGE_PATH_B B allocated (medians of $((QUICK ? 3 : 7)) rounds) | none (read: the work itself, and what cores writing the same counters add; the row above adds a cache shared with the rest of a request) | — |"
  echo "| Usage accounting: SSE time to first content, usage read − not read (median; p90) | $SSE_USAGE_COST ms; p90 $SSE_USAGE_COST_P90 ms | nothing measurable: ≤ 0.05 ms (issue 14) | $(pass "$SSE_USAGE_COST <= 0.05") |"
  echo "| SSE time to first content, AuthFailoverProxy − direct (median; the first byte, since the stream's opening is held until its content) | $SSE_DIFF ms | ≤ 0.5 ms (issue 12; 1 ms before) | $(pass "$SSE_DIFF <= 0.5") |"
  echo "| Primary revoked at start: upstream calls per client request | $FO1_RATIO ($FO1_CALLS / $FO1_REQ) | ≤ 1.01 | $(pass "$FO1_RATIO <= 1.01") |"
  echo "| Primary revoked at start: client-visible errors | $FO1_ERR | 0 | $(pass "$FO1_ERR == 0") |"
  echo "| Primary revoked during load: upstream calls per client request | $FO2_RATIO ($FO2_CALLS / $FO2_REQ) | ≤ 1.01 | $(pass "$FO2_RATIO <= 1.01") |"
  echo "| Primary revoked during load: client-visible errors | $FO2_ERR | 0 | $(pass "$FO2_ERR == 0") |"
  echo "| A request that is itself bad: upstream calls per client request | $FO3_RATIO ($FO3_CALLS / $FO3_REQ) | ≤ 2 | $(pass "$FO3_RATIO <= 2") |"
  echo "| A request that is itself bad: keys still in service after it | $FO3_USABLE | all | $([[ $FO3_USABLE =~ ^([0-9]+)\ of\ ([0-9]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] && echo PASS || echo MISS) |"
  echo "| Throughput, Redis store / in-memory store | $REDIS_THROUGHPUT_RATIO (${RPS[afpredis]%.*} / ${RPS[afp]%.*} req/s) | equal within noise (0.9–1.1) | $(pass "$REDIS_THROUGHPUT_RATIO >= 0.9 && $REDIS_THROUGHPUT_RATIO <= 1.1") |"
  echo "| CPU per request, Redis store / in-memory store | $REDIS_CPU_RATIO (${CPU[afpredis]} / ${CPU[afp]} µs) | equal within noise (0.9–1.1) | $(pass "$REDIS_CPU_RATIO >= 0.9 && $REDIS_CPU_RATIO <= 1.1") |"
  if [[ -n $BASELINE ]]; then
    echo "| This build / the baseline at $BASELINE_REV, throughput and CPU per request | $BASELINE_THROUGHPUT_RATIO and $BASELINE_CPU_RATIO (${CPU[afp]} / ${CPU[afpbase]} µs); CPU paired: $BASELINE_CPU_RATIO_PAIRED | none (read: what the change costs) | — |"
    echo "| This build / the baseline at $BASELINE_REV, CPU per request, the two loaded at once (1b): median; every sample | $AT_ONCE_BASE; samples $AT_ONCE_BASE_SAMPLES | none (read: what the change costs) | — |"
  fi
  echo "| For reference: AuthFailoverProxy / bare YARP with ASP.NET Core's request diagnostics off, as AuthFailoverProxy runs, throughput and CPU per request | $QUIET_THROUGHPUT_RATIO and $QUIET_CPU_RATIO (${CPU[afp]} / ${CPU[barequiet]} µs); CPU paired: $QUIET_CPU_RATIO_PAIRED | none (read: the failover machinery's own cost) | — |"
  echo "| For reference: AuthFailoverProxy / nginx as a proxy, throughput and CPU per request | $NGINXP_THROUGHPUT_RATIO and $NGINXP_CPU_RATIO (${CPU[afp]} / ${CPU[nginxproxy]} µs) | none (nginx is C and does no failover) | — |"
  echo "| Propagation between replicas (p99) | disable ${PROP[disable_p99]} ms, enable ${PROP[enable_p99]} ms ($((PROP[disable_n])) + $((PROP[enable_n])) of $PROP_N + $PROP_N samples) | ≤ 100 ms | $PROP_RESULT |"
  echo
  echo "## Throughput and latency (POST /v1/messages, ~1 KB body)"
  echo
  if ((ROUNDS > 1)); then
    echo "Medians of $((ROUNDS * REPS)) runs of ${DURATION} s per target: $ROUNDS rounds of $REPS, each round with every proxy started afresh and warmed for ${WARMUP} s (nginx runs throughout); order rotated between repetitions; wrk $THREADS threads, $CONNECTIONS connections. A paired ratio is the median over all $((ROUNDS * REPS)) repetitions."
  else
    echo "Medians of $REPS run(s) of ${DURATION} s per target, order rotated between repetitions; wrk $THREADS threads, $CONNECTIONS connections, after a ${WARMUP} s warm-up."
  fi
  echo "CPU is user+system time of the target's process (the proxy; nginx's worker for direct) over the run, divided by the requests wrk completed."
  echo "*AuthFailoverProxy* and *AuthFailoverProxy (Redis store)* check every request against a client budget set far above what they spend, and count every answer's usage (with Redis, synced in the background once a second): \`afp-throughput*-status.json\` in the raw directory shows the budget's counts at the end."
  echo "*AuthFailoverProxy, usage not read* is the same build with \`Usage__Enabled=false\`: answers pass unread, and its client's budget counts requests only (a token budget needs usage). Its ratio to *AuthFailoverProxy* is what reading and counting usage costs (issue 14)."
  echo "*AuthFailoverProxy (Redis store)* is the same build with \`AFP_REDIS=127.0.0.1:$REDIS_PORT\` (redis-server $REDIS_VERSION on loopback, no persistence), checked connected before the runs; redis-server itself used ${REDIS_CPU_DURING} µs/req during its runs (median; at most ${REDIS_CPU_MAX} µs/req in any measured run; not included in the proxy's CPU column)."
  echo "Its store after the runs: \`${AFPR_STORE_END:-unknown}\`."
  echo
  if awk "BEGIN { exit !($OTHER_MAX > 5 || $BUSY_BEFORE >= 10) }"; then
    echo "**Noisy run:** other processes used up to $OTHER_MAX % of the machine during the measured runs (median $OTHER_MEDIAN %; the machine was ${BUSY_BEFORE} % busy before the start). Compare CPU µs/req rather than req/s, and rerun on a quiet machine before trusting a ratio near its threshold."
  else
    echo "Other processes used at most $OTHER_MAX % of the machine during the measured runs (median $OTHER_MEDIAN %)."
  fi
  echo
  echo "*Allocated B/req* is what the proxy's runtime allocated per request over the run, from its own \`dotnet.gc.heap.total_allocated\` meter (n/a for processes that export none). It hardly moves between runs, so a change's cost in it shows in one run where CPU time needs several."
  echo
  echo "| Target | req/s | p50 ms | p99 ms | CPU µs/req | upstream (nginx) CPU µs/req | allocated B/req | peak RSS MiB | upstream calls/req | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for target in "${TARGETS[@]}"; do
    echo "| $(target_label "$target") | ${RPS[$target]%.*} | $(ms "${P50[$target]}") | $(ms "${P99[$target]}") | ${CPU[$target]} | ${UPCPU[$target]} | ${ALLOC[$target]} | $(calc %.1f "${RSS[$target]} / 1024") | ${CALLS[$target]} | ${ERR[$target]} |"
  done
  echo
  echo "## Two targets loaded at once"
  echo
  echo "$AT_ONCE_REPS repetitions of ${DURATION} s per pair, after the runs above, on the last round's processes: each target from its own wrk ($((THREADS / 2)) thread, $((CONNECTIONS / 2)) connections) at the same time, their CPU read over the same window, so a machine that drifts moves both alike. Each gets about half the load of a run above, so their CPU per request differs from those runs'; the ratio is what counts. Errors: $AT_ONCE_ERRORS."
  echo
  echo "| A | B | rep | A CPU µs/req | B CPU µs/req | A / B | A req/s | B req/s |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  while IFS=$'\t' read -r a b rep ca cb ra rb _; do
    echo "| $(target_label "$a") | $(target_label "$b") | $rep | $ca | $cb | $(calc %.3f "$ca / $cb") | ${ra%.*} | ${rb%.*} |"
  done <"$AT_ONCE"
  echo
  echo "## SSE time to first byte (POST /v1/sse, curl \`%{time_starttransfer}\`, new connection per request)"
  echo
  echo "$SSE_N requests per target after $SSE_WARM warm-up requests, interleaved request by request. Non-200 answers: $SSE_ERRORS."
  echo
  echo "| Target | median ms | p90 ms | median − direct ms |"
  echo "|---|---:|---:|---:|"
  echo "| direct (nginx) | $(sse_stat direct median) | $(sse_stat direct p90) | 0.000 |"
  echo "| bare YARP | $(sse_stat bare median) | $(sse_stat bare p90) | $SSE_BARE_DIFF |"
  echo "| bare YARP, request diagnostics off | $(sse_stat barequiet median) | $(sse_stat barequiet p90) | $SSE_BAREQ_DIFF |"
  echo "| nginx (reference proxy) | $(sse_stat nginxproxy median) | $(sse_stat nginxproxy p90) | $SSE_NGINXP_DIFF |"
  echo "| AuthFailoverProxy | $(sse_stat afp median) | $(sse_stat afp p90) | $SSE_DIFF (p90: $SSE_DIFF_P90) |"
  echo "| AuthFailoverProxy, usage not read | $(sse_stat afpnousage median) | $(sse_stat afpnousage p90) | $SSE_NOUSAGE_DIFF |"
  echo "| AuthFailoverProxy (Redis store) | $(sse_stat afpredis median) | $(sse_stat afpredis p90) | $SSE_REDIS_DIFF |"
  if [[ -n $BASELINE ]]; then
    echo "| $(target_label afpbase) | $(sse_stat afpbase median) | $(sse_stat afpbase p90) | $(calc %.3f "$(sse_stat afpbase median) - $(sse_stat direct median)") |"
  fi
  echo
  echo "## Failover (keys primary, backup; nginx answers the primary 403 permission_error once revoked)"
  echo
  echo "A fresh proxy per scenario, ${FAILOVER_DURATION} s of load, no warm-up. Upstream calls are counted from nginx's access log over the run."
  echo
  echo "| Scenario | client requests | upstream calls | calls/request | primary 200 | primary 403 | backup 200 | other | client-visible errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
  echo "| revoked at start | $FO1_REQ | $FO1_CALLS | $FO1_RATIO | $(fo_key "$FO1_UP" primary_200) | $(fo_key "$FO1_UP" primary_403) | $(fo_key "$FO1_UP" backup_200) | $(fo_key "$FO1_UP" other) | $FO1_ERR ($(fo_errors_detail "$FO1_WRK")) |"
  echo "| revoked after $((FAILOVER_DURATION / 2)) s | $FO2_REQ | $FO2_CALLS | $FO2_RATIO | $(fo_key "$FO2_UP" primary_200) | $(fo_key "$FO2_UP" primary_403) | $(fo_key "$FO2_UP" backup_200) | $(fo_key "$FO2_UP" other) | $FO2_ERR ($(fo_errors_detail "$FO2_WRK")) |"
  echo "| every request bad (400, echoed beta) | $FO3_REQ | $FO3_CALLS | $FO3_RATIO | $(fo_key "$FO3_UP" primary_200) | $(fo_key "$FO3_UP" primary_403) | $(fo_key "$FO3_UP" backup_200) | $(fo_key "$FO3_UP" other) (all 400s: the request's own fault) | $FO3_400 non-2xx, as they should be: the provider's own 400 |"
  echo
  echo "## Key state between replicas (Redis store)"
  echo
  echo "Two fresh AuthFailoverProxy instances, A and B: same \`AFP_KEYS\`, same \`AFP_REDIS\` (the redis-server above), different ports, both checked connected to Redis first."
  echo "$PROP_N times (after ${PROP[warmup]:-5} uncounted warm-up rounds): \`POST /admin/pools/anthropic/keys/backup/disable\` on A, then B's \`GET /admin/keys\` polled until 'backup' reads \`disabled\`; then \`…/enable\` on A and B polled until it reads \`usable\`."
  echo "A sample runs from reading A's admin answer to reading B's first answer that shows the new state (bench/propagation.py, keep-alive connections, B polled every ~1 ms: ${PROP[poll_interval_ms]} ms between polls on average, so a sample is up to that much late). Each change is waited for 15 s at most, the whole measurement for ${PROP_BUDGET} s at most (it took ${PROP[elapsed_s]} s)."
  echo
  echo "| Change on A | samples | median ms | p90 ms | p99 ms | max ms | A's admin answer, median ms |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| disable 'backup' → B shows disabled | ${PROP[disable_n]} | ${PROP[disable_median]} | ${PROP[disable_p90]} | ${PROP[disable_p99]} | ${PROP[disable_max]} | ${PROP[disable_a_rtt_median]} |"
  echo "| enable 'backup' → B shows usable | ${PROP[enable_n]} | ${PROP[enable_median]} | ${PROP[enable_p90]} | ${PROP[enable_p99]} | ${PROP[enable_max]} | ${PROP[enable_a_rtt_median]} |"
  echo
  if [[ -n ${PROP[stopped]:-} ]]; then
    echo "**Measurement stopped early:** ${PROP[stopped]}"
    echo
  fi
  if ((PROP[anomalies] > 0)); then
    echo "**Inconsistencies seen (${PROP[anomalies]}):** $(for i in 0 1 2 3 4; do [[ -z ${PROP[anomaly_$i]:-} ]] || printf '%s; ' "${PROP[anomaly_$i]}"; done)"
  else
    echo "After each change B adopted, A still showed it too, and 0.5 s after the last change both showed 'backup' usable."
  fi
  echo
  echo "## Every measured run"
  echo
  echo "In the order they ran. *Other load*: CPU used by processes other than this benchmark's, as a share of the whole machine."
  echo
  echo "| Target | rep | req/s | p50 ms | p99 ms | CPU µs/req | nginx CPU µs/req | redis CPU µs/req | allocated B/req | peak RSS MiB | upstream calls/req | errors | requests | other load |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  while IFS=$'\t' read -r t rep rps p50 p99 cpu upcpu rss calls err req other rediscpu allocated; do
    echo "| $(target_label "$t") | $rep | ${rps%.*} | $(ms "$p50") | $(ms "$p99") | $cpu | $upcpu | $rediscpu | ${allocated:-n/a} | $(calc %.1f "$rss / 1024") | $calls | $err | $req | $other % |"
  done <"$RUNS"
  echo
  echo "## Machine and setup"
  echo
  echo "- CPU: $CPU_MODEL, $CORES cores (nproc); memory $MEM"
  echo "- OS: $OS; kernel $KERNEL"
  echo "- .NET SDK $DOTNET_VERSION; nginx $NGINX_VERSION; wrk $WRK_VERSION; curl $CURL_VERSION; redis-server $REDIS_VERSION; Python $PYTHON_VERSION"
  echo "- Upstream: nginx with \`worker_processes 1\` (fixed answers, access log on), so one core is left for the proxy and wrk to share."
  echo "  The load generator, the proxy and the upstream all share these $CORES cores: see bench/README.md."
  echo "- Proxies: Release builds run with \`dotnet <dll>\`; Server GC, non-concurrent, TieredPGO (both); HTTP/1.1 keep-alive on both legs."
} >"$REPORT"

mkdir -p "$RESULTS_DIR"
cp "$REPORT" "$RESULT_FILE"
cp "$REPORT" "$RESULT_FILE_ISSUE4"
cp "$REPORT" "$RAW/report.md"
cat "$REPORT"
log "report written to ${RESULT_FILE#"$REPO"/} and ${RESULT_FILE_ISSUE4#"$REPO"/}; raw output in ${RAW#"$REPO"/}"
