#!/usr/bin/env python3
"""bench/propagation.py: how fast an admin change on one AuthFailoverProxy replica reaches another through Redis.

Used by bench/run.sh; two subcommands:

  propagation.py store URL [--wait S]
      GET URL (a proxy's /status) until its "store" reads kind "redis", connected true (at most S seconds, default 10).
      Prints the store object as one JSON line; exits 1 if it never got there.

  propagation.py measure --a URL --b URL --token T [--pool P] [--key K] [--n N] [--warmup W] [--poll-ms MS]
                         [--timeout S] [--budget S] [--samples FILE]
      N times: POST A's /admin/pools/P/keys/K/disable, then poll B's GET /admin/keys (keep-alive, every MS ms) until
      K reads "disabled"; then POST A's .../enable and poll B until K reads "usable" again. A sample is the time from
      the moment A's admin answer has been read to the moment B's first answer showing the new state has been read.
      W warm-up iterations (default 5) run first and are not counted.
      Bounded: a transition that B has not shown after S seconds (default 15, past the proxies' 10 s re-read
      backstop) ends the measurement, and so does the overall budget (default 60 s). Prints KEY=VALUE lines for
      run.sh; per-sample rows go to FILE (TSV).

Loopback only, standard library only. A and B are management listener base URLs such as http://127.0.0.1:9090.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


class Endpoint:
    """One keep-alive HTTP/1.1 connection to a management listener, reopened if the server closes it."""

    def __init__(self, base_url, token=None):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "http" or url.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"propagation.py: only http://127.0.0.1 URLs, not {base_url}")
        self.host, self.port, self.prefix = url.hostname, url.port or 80, url.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn = None

    def request(self, method, path, timeout=5.0):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                headers = dict(self.headers)
                if method == "POST":
                    headers["Content-Length"] = "0"
                self.conn.request(method, self.prefix + path, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.close()
                return response.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path):
        status, body = self.request(method, path)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, {"raw": body.decode("utf-8", "replace")[:200]}

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def key_state(endpoint, pool, key):
    status, doc = endpoint.json("GET", "/admin/keys")
    if status != 200:
        raise SystemExit(f"propagation.py: GET /admin/keys answered {status}: {doc}")
    for entry in doc["keys"]:
        if entry["pool"] == pool and entry["key"]["name"] == key:
            return entry["key"]["state"]
    raise SystemExit(f"propagation.py: no key '{key}' in pool '{pool}' in GET /admin/keys")


def percentile(sorted_values, p):
    """Nearest rank, like the SSE p90 in run.sh."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(p / 100 * len(sorted_values) + 0.999999)))
    return sorted_values[rank - 1]


def median(sorted_values):
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    return sorted_values[n // 2] if n % 2 else (sorted_values[n // 2 - 1] + sorted_values[n // 2]) / 2


def cmd_store(args):
    base = urllib.parse.urlsplit(args.url)
    endpoint = Endpoint(f"{base.scheme}://{base.netloc}")
    deadline = time.monotonic() + args.wait
    store = None
    while True:
        try:
            status, doc = endpoint.json("GET", base.path or "/status")
            store = doc.get("store") if status == 200 and isinstance(doc, dict) else None
        except (http.client.HTTPException, OSError) as error:
            store = {"error": str(error)}
        if store and store.get("kind") == "redis" and store.get("connected") is True:
            print(json.dumps(store))
            return 0
        if time.monotonic() >= deadline:
            print(json.dumps(store))
            return 1
        time.sleep(0.1)


def cmd_measure(args):
    a = Endpoint(args.a, args.token)
    b = Endpoint(args.b, args.token)
    admin_path = f"/admin/pools/{urllib.parse.quote(args.pool)}/keys/{urllib.parse.quote(args.key)}"
    poll_s = args.poll_ms / 1000
    samples = {"disable": [], "enable": []}
    a_rtt = {"disable": [], "enable": []}
    polls = {"disable": [], "enable": []}
    intervals = []
    anomalies = []
    stopped = ""

    for name, endpoint in (("A", a), ("B", b)):
        state = key_state(endpoint, args.pool, args.key)
        if state != "usable":
            raise SystemExit(f"propagation.py: '{args.key}' is {state} on {name} before the start, not usable")

    rows = []
    started = time.monotonic()
    # The first --warmup iterations (JIT, first Redis round trips, connection set-up) are run but not counted.
    for iteration in range(1 - args.warmup, args.n + 1):
        for action, wanted in (("disable", "disabled"), ("enable", "usable")):
            sent = time.perf_counter()
            status, change = a.json("POST", f"{admin_path}/{action}")
            answered = time.perf_counter()
            if status != 200 or not isinstance(change, dict) or change.get("state") != wanted or change.get("changed") is not True:
                stopped = f"{action} #{iteration} on A answered {status}: {json.dumps(change)[:300]}"
                break
            count = 0
            while True:
                state = key_state(b, args.pool, args.key)
                seen = time.perf_counter()
                count += 1
                if count == 1:
                    first_seen = seen
                if state == wanted:
                    break
                if seen - answered > args.timeout:
                    stopped = f"B still showed '{args.key}' {state} {args.timeout:g} s after A's {action} #{iteration}"
                    break
                time.sleep(poll_s)
            if stopped:
                break
            latency_ms = (seen - answered) * 1000
            # A must still show its own change once B has adopted it (no echo from Redis undoing it).
            on_a = key_state(a, args.pool, args.key)
            if on_a != wanted:
                anomalies.append(f"{action} #{iteration}: A showed {on_a} after B showed {wanted}")
            if iteration < 1:
                continue
            samples[action].append(latency_ms)
            a_rtt[action].append((answered - sent) * 1000)
            polls[action].append(count)
            if count > 1:
                intervals.append((seen - first_seen) * 1000 / (count - 1))
            rows.append((iteration, action, f"{(answered - sent) * 1000:.3f}", f"{latency_ms:.3f}", count, on_a))
        if stopped:
            break
        if iteration >= 1 and time.monotonic() - started > args.budget:
            stopped = f"time budget of {args.budget:g} s used up after {iteration} of {args.n} iterations"
            break

    # Settled: both replicas agree on the final state a little later (nothing flips back after the last change).
    time.sleep(0.5)
    final = {"A": key_state(a, args.pool, args.key), "B": key_state(b, args.pool, args.key)}
    if not stopped and (final["A"] != "usable" or final["B"] != "usable"):
        anomalies.append(f"0.5 s after the last enable: A shows {final['A']}, B shows {final['B']}")
    elapsed = time.monotonic() - started
    a.close()
    b.close()

    if args.samples:
        with open(args.samples, "w", encoding="utf-8") as out:
            out.write("iteration\taction\ta_admin_rtt_ms\tpropagation_ms\tpolls_of_b\tstate_on_a_after\n")
            for row in rows:
                out.write("\t".join(str(v) for v in row) + "\n")

    print(f"PROP_requested={args.n}")
    print(f"PROP_warmup={args.warmup}")
    print(f"PROP_elapsed_s={elapsed:.1f}")
    print(f"PROP_poll_ms={args.poll_ms:g}")
    for action in ("disable", "enable"):
        values = sorted(samples[action])
        rtts = sorted(a_rtt[action])
        print(f"PROP_{action}_n={len(values)}")
        for label, value in (("median", median(values)), ("p90", percentile(values, 90)),
                             ("p99", percentile(values, 99)), ("max", values[-1] if values else float("nan")),
                             ("min", values[0] if values else float("nan")),
                             ("a_rtt_median", median(rtts))):
            print(f"PROP_{action}_{label}={value:.2f}")
        mean_polls = sum(polls[action]) / len(polls[action]) if polls[action] else float("nan")
        print(f"PROP_{action}_polls_mean={mean_polls:.1f}")
    # Average time between two polls of B while waiting: the resolution of a sample.
    interval = sum(intervals) / len(intervals) if intervals else float("nan")
    print(f"PROP_poll_interval_ms={interval:.2f}")
    print(f"PROP_anomalies={len(anomalies)}")
    print(f"PROP_stopped={stopped.replace(chr(10), ' ')}")
    for i, anomaly in enumerate(anomalies[:5]):
        print(f"PROP_anomaly_{i}={anomaly}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store")
    store.add_argument("url")
    store.add_argument("--wait", type=float, default=10)
    measure = sub.add_parser("measure")
    measure.add_argument("--a", required=True)
    measure.add_argument("--b", required=True)
    measure.add_argument("--token", required=True)
    measure.add_argument("--pool", default="anthropic")
    measure.add_argument("--key", default="backup")
    measure.add_argument("--n", type=int, default=100)
    measure.add_argument("--warmup", type=int, default=5)
    measure.add_argument("--poll-ms", type=float, default=1.0)
    measure.add_argument("--timeout", type=float, default=15.0)
    measure.add_argument("--budget", type=float, default=60.0)
    measure.add_argument("--samples")
    args = parser.parse_args()
    return cmd_store(args) if args.command == "store" else cmd_measure(args)


if __name__ == "__main__":
    sys.exit(main())
