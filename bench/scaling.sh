#!/usr/bin/env bash
# bench/scaling.sh: how AuthFailoverProxy's cost grows with the work: 1 → 1,000 idle SSE streams (memory per stream),
# request bodies 1 KB → 32 MB (time and memory of the replay buffer), pools of 2 → 1,000 keys (CPU of key selection).
# Prints a Markdown report on stdout and writes it to bench/results/<UTC date>-scaling.md.
#
#   bench/scaling.sh            full run (about 2 minutes)
#   bench/scaling.sh --quick    smoke test: up to 100 streams, pools of 2 and 100 keys, fewer repetitions (under 30 s)
#   bench/scaling.sh --no-build use the Release builds already on disk
#
# Every server binds 127.0.0.1 on a port the OS picks; every loop is bounded; the proxy processes are killed on exit.
set -euo pipefail

QUICK=() BUILD=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown option '$arg'" >&2; exit 64 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

if ((BUILD)); then
  echo "[scaling] building AuthFailoverProxy and bench/Scaling (Release)" >&2
  dotnet build -c Release "$REPO/src/AuthFailoverProxy" -nologo >&2
  dotnet build -c Release "$BENCH_DIR/Scaling" -nologo >&2
fi

# A private copy: a rebuild of the repo during the run cannot swap assemblies under the running proxies.
TMP=$(mktemp -d -t afp-scaling.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/afp"
cp -a "$REPO/src/AuthFailoverProxy/bin/Release/net10.0/." "$TMP/afp/"

REPORT="$TMP/report.md"
timeout 900 dotnet "$BENCH_DIR/Scaling/bin/Release/net10.0/Scaling.dll" --proxy-dll "$TMP/afp/AuthFailoverProxy.dll" "${QUICK[@]}" >"$REPORT"
mkdir -p "$BENCH_DIR/results"
cp "$REPORT" "$BENCH_DIR/results/$(date -u +%F)-scaling.md"
cat "$REPORT"
echo "[scaling] report written to bench/results/$(date -u +%F)-scaling.md" >&2
