#!/usr/bin/env bash
# bench/scaling.sh: how AuthFailoverProxy's cost grows with the work: 1 → 1,000 idle SSE streams (memory per stream),
# request bodies 1 KB → 32 MB (time and memory of the replay buffer), pools of 2 → 1,000 keys (CPU of key selection).
# Prints a Markdown report on stdout and writes it to bench/results/<UTC date>-scaling.md.
#
#   bench/scaling.sh                 full run (about 2 minutes)
#   bench/scaling.sh --quick         smoke test: up to 100 streams, pools of 2 and 100 keys, fewer repetitions (under 30 s)
#   bench/scaling.sh --no-build      use the Release builds already on disk
#   bench/scaling.sh --long-streams  instead: 1,000 long SSE streams with 300 KB bodies, side by side through
#                                    AuthFailoverProxy, bare YARP and nginx (peak memory, spill files, time to first
#                                    content); about 5 minutes, --quick under 1; writes <UTC date>-long-streams.md
#
# Every server binds 127.0.0.1 on a port the OS picks; every loop is bounded; the proxy processes are killed on exit.
set -euo pipefail

QUICK=() BUILD=1 LONG=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    --no-build) BUILD=0 ;;
    --long-streams) LONG=1 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown option '$arg'" >&2; exit 64 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

# A tree being edited can fail to build for a moment: a few tries before giving up (or use --no-build).
build() {
  local project=$1 attempt
  for attempt in 1 2 3; do
    dotnet build -c Release "$project" -nologo >&2 && return 0
    echo "[scaling] build of $project failed (attempt $attempt of 3)" >&2
    ((attempt == 3)) || sleep 20
  done
  echo "[scaling] cannot build $project (bench/scaling.sh --no-build runs the last Release build on disk)" >&2
  return 1
}

AFP_OUT="$REPO/src/AuthFailoverProxy/bin/Release/net10.0"
BARE_OUT="$BENCH_DIR/BareYarp/bin/Release/net10.0"
if ((BUILD)); then
  echo "[scaling] building AuthFailoverProxy$( ((LONG)) && echo ', BareYarp') and bench/Scaling (Release)" >&2
  build "$REPO/src/AuthFailoverProxy"
  ((LONG == 0)) || build "$BENCH_DIR/BareYarp"
  build "$BENCH_DIR/Scaling"
fi

# A private copy: a rebuild of the repo during the run cannot swap assemblies under the running proxies.
TMP=$(mktemp -d -t afp-scaling.XXXXXX)
CONSOLE=
cleanup() {
  # The console kills the proxies it started when it gets SIGTERM (see bench/Scaling/Program.cs).
  [[ -z $CONSOLE ]] || kill -TERM "$CONSOLE" 2>/dev/null || true
  [[ -z $CONSOLE ]] || wait "$CONSOLE" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$TMP/afp"
cp -a "$AFP_OUT/." "$TMP/afp/"
SCALING_DLL="$BENCH_DIR/Scaling/bin/Release/net10.0/Scaling.dll"
REPORT="$TMP/report.md"
mkdir -p "$BENCH_DIR/results"

if ((LONG == 0)); then
  timeout 900 dotnet "$SCALING_DLL" --proxy-dll "$TMP/afp/AuthFailoverProxy.dll" "${QUICK[@]}" >"$REPORT"
  cp "$REPORT" "$BENCH_DIR/results/$(date -u +%F)-scaling.md"
  cat "$REPORT"
  echo "[scaling] report written to bench/results/$(date -u +%F)-scaling.md" >&2
  exit 0
fi

# --- long streams ----------------------------------------------------------------------------------------------------

mkdir -p "$TMP/bare"
cp -a "$BARE_OUT/." "$TMP/bare/"
NGINX=$(command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)
NGINX_ARGS=()
if [[ -n $NGINX ]]; then
  NGINX_ARGS=(--nginx "$NGINX" --nginx-template "$BENCH_DIR/nginx-proxy.conf.template")
else
  echo "[scaling] nginx not found: the long-stream runs leave the reference nginx out" >&2
fi
RAW="$BENCH_DIR/results/raw/$(date -u +%Y%m%dT%H%M%SZ)-long-streams"
mkdir -p "$RAW"
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
GIT_DIRTY=$([[ -n "$(git -C "$REPO" status --porcelain -- src 2>/dev/null)" ]] && echo ", src/ has uncommitted changes" || true)
DLL_TIME=$(date -u -r "$TMP/afp/AuthFailoverProxy.dll" '+%Y-%m-%d %H:%M:%S UTC')
DLL_SHA=$(sha256sum "$TMP/afp/AuthFailoverProxy.dll" | cut -c1-12)
CODE="$GIT_REV$GIT_DIRTY; AuthFailoverProxy.dll built $DLL_TIME$( ((BUILD)) || echo ' (--no-build)'), sha256 $DLL_SHA…"

# In the background so that a signal to this script reaches the trap at once, which stops the console (and its proxies).
timeout --foreground --kill-after=20 600 dotnet "$SCALING_DLL" --long-streams --proxy-dll "$TMP/afp/AuthFailoverProxy.dll" \
  --bare-dll "$TMP/bare/BareYarp.dll" "${NGINX_ARGS[@]}" --raw "$RAW" --code "$CODE" "${QUICK[@]}" >"$REPORT" &
CONSOLE=$!
rc=0
wait "$CONSOLE" || rc=$?
CONSOLE=
if ((rc != 0)); then
  echo "[scaling] the long-stream runs failed (exit $rc); logs are in ${RAW#"$REPO"/}" >&2
  exit "$rc"
fi
RESULT="$BENCH_DIR/results/$(date -u +%F)-long-streams.md"
cp "$REPORT" "$RESULT"
cp "$REPORT" "$RAW/report.md"
cat "$REPORT"
echo "[scaling] report written to ${RESULT#"$REPO"/}; raw samples, per-stream times and the proxies' logs in ${RAW#"$REPO"/}" >&2
