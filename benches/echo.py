#!/usr/bin/env python3
"""The loopback echo benchmark (C10K-style), run by `./dev bench` after run.py.

Servers, each a separate process on 127.0.0.1, one after the other:
  weft-native  examples/echo_server.c on the native plugin: one weft task per
               connection (an OS thread parked in weft_fd_wait)
  weft-green   the same program on the green plugin: one green task per connection,
               parked on the green netpoller (epoll), the workers free meanwhile
  go           benches/echo/go/main.go: one goroutine per connection (Go 1.19's netpoller)
  libuv        benches/echo/uv_echo.c: one libuv event loop (Debian's libuv1-dev)
The load is the same for every server: benches/echo/go/main.go's client opens C
connections, each with one request in flight (send a message, wait for its echo, check
every byte, repeat) for a fixed time. The servers alternate inside each round; the
figures are the medians over the rounds of requests per second, of the p50 and p99 round
trips, and of the server's CPU time per request (user + system, from /proc, over the
whole client run, connecting included): on a shared machine the throughput follows the
load of others, the CPU a server spends per request much less.

Usage: benches/echo.py [--quick] [--only SUBSTRING] [--out DIR] [--connections N,M,...]
(--only: run only if "echo" contains SUBSTRING or SUBSTRING contains "echo")
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target/bench")
SERVERS = {
    "weft-native": ([os.path.join(BENCH, "echo_server"), "serve", "0"], {"WEFT_PLATFORM": "native"}),
    "weft-green": ([os.path.join(BENCH, "echo_server"), "serve", "0"], {"WEFT_PLATFORM": "green"}),
    "go": ([os.path.join(BENCH, "goecho"), "server"], {}),
    "libuv": ([os.path.join(BENCH, "uvecho")], {}),
}
CLIENT = os.path.join(BENCH, "goecho")
# Two descriptors per connection in the server on the thread platforms (the socket and
# the waiting task's wake-up eventfd), one in the client: raise the limit for both.
FD_LIMIT = 65536


def with_fd_limit(argv):
    return ["bash", "-c", f'ulimit -n {FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"', "sh"] + argv


def start_server(name):
    argv, env = SERVERS[name]
    proc = subprocess.Popen(with_fd_limit(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, start_new_session=True)
    line = proc.stdout.readline()
    if "127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"{name}: did not start: {line.strip()} {proc.stderr.read().strip()}")
    return proc, line.rsplit(":", 1)[1].split()[0]


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fd_limit():
    out = subprocess.run(with_fd_limit(["sh", "-c", "ulimit -n"]), capture_output=True, text=True)
    return int(out.stdout.strip() or 1024)


def cannot_hold(name, conns):
    """Why `name` cannot hold `conns` connections on this machine, or None."""
    # The thread platforms wait with a wake-up eventfd per waiting task (docs/io.md).
    per_conn = 2 if name == "weft-native" else 1
    needed, limit = per_conn * conns + 64, fd_limit()
    if needed > limit:
        return f"needs about {needed} descriptors ({per_conn} per connection), RLIMIT_NOFILE is {limit}"
    return None


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(name, conns, seconds, size):
    proc, port = start_server(name)
    try:
        cpu_before = cpu_seconds(proc.pid)  # the server exec'd in place of the ulimit shell
        out = subprocess.run(with_fd_limit([CLIENT, "client", port, str(conns), str(seconds), str(size)]),
                             capture_output=True, text=True, timeout=seconds + 120)
        cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        stop_server(proc)
    if out.returncode != 0:
        raise RuntimeError(f"{name}, {conns} connections: client failed: {out.stderr.strip()[-400:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["server_cpu_us_per_req"] = cpu * 1e6 / max(res["requests"], 1)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--out", default=BENCH)
    ap.add_argument("--connections", help="comma-separated connection counts (default 1000,10000; quick 200)")
    opts = ap.parse_args()
    if opts.only and opts.only not in "echo" and "echo" not in opts.only:
        return
    if opts.quick:
        conn_counts, rounds, seconds = [200], 1, 2
    else:
        conn_counts, rounds, seconds = [1000, 10000], 3, 5
    if opts.connections:
        conn_counts = [int(c) for c in opts.connections.split(",")]
    size = 64
    missing = [p for p in [CLIENT] + [a[0] for a, _ in SERVERS.values()] if not os.path.exists(p)]
    if missing:
        print("echo benchmark: not built: " + ", ".join(missing), file=sys.stderr)
        sys.exit(1)
    print(f"loopback echo ({'quick' if opts.quick else 'full'}): {size}-byte messages, one request in flight per "
          f"connection, {seconds} s per run, {rounds} round(s)", file=sys.stderr)
    load_before = open("/proc/loadavg").read().split()[:3]
    results, failures, skipped = [], [], {}
    for conns in conn_counts:
        samples = {name: [] for name in SERVERS}
        for r in range(rounds):
            order = list(SERVERS)[r % len(SERVERS):] + list(SERVERS)[:r % len(SERVERS)]
            for name in order:
                why = cannot_hold(name, conns)
                if why:
                    if r == 0:
                        print(f"  {conns:>6} conns  {name:<12} not run: {why}", file=sys.stderr)
                        skipped[(conns, name)] = why
                    continue
                try:
                    res = run_once(name, conns, seconds, size)
                    samples[name].append(res)
                    print(f"  {conns:>6} conns  {name:<12} {res['req_per_s']:>10.0f} req/s  p99 {res['p99_us']:>9.0f} us"
                          f"  server {res['server_cpu_us_per_req']:>5.1f} us CPU/req", file=sys.stderr)
                except Exception as e:  # a server that cannot hold the load is a result too
                    failures.append(str(e))
                    print(f"  {conns:>6} conns  {name:<12} FAILED: {e}", file=sys.stderr)
        for name, runs in samples.items():
            results.append(dict(
                connections=conns, server=name, runs=runs, not_run=skipped.get((conns, name)),
                req_per_s=statistics.median([x["req_per_s"] for x in runs]) if runs else None,
                p50_us=statistics.median([x["p50_us"] for x in runs]) if runs else None,
                p99_us=statistics.median([x["p99_us"] for x in runs]) if runs else None,
                server_cpu_us_per_req=statistics.median([x["server_cpu_us_per_req"] for x in runs]) if runs else None))
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, "echo.json"), "w") as f:
        load_after = open("/proc/loadavg").read().split()[:3]
        json.dump(dict(size=size, seconds=seconds, rounds=rounds, cpus=os.cpu_count(), load_before=load_before,
                       load_after=load_after, results=results, failures=failures), f, indent=1)
    print()
    print(f"loopback echo, {size}-byte messages (medians of {rounds} round(s) of {seconds} s; higher req/s is better)")
    print(f"{'connections':>11}  {'server':<12} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'req/s vs Go':>12} "
          f"{'CPU us/req':>11} {'vs Go':>6}")
    for conns in conn_counts:
        go = next((r for r in results if r["connections"] == conns and r["server"] == "go" and r["req_per_s"]), None)
        for r in (r for r in results if r["connections"] == conns):
            if r["req_per_s"] is None:
                print(f"{conns:>11}  {r['server']:<12} {'not run: ' + r['not_run'] if r['not_run'] else 'failed'}")
                continue
            ratio = f"{r['req_per_s'] / go['req_per_s']:.2f}x" if go else "-"
            cpu = r["server_cpu_us_per_req"]
            cpu_ratio = f"{cpu / go['server_cpu_us_per_req']:.2f}x" if go else "-"
            print(f"{conns:>11}  {r['server']:<12} {r['req_per_s']:>10.0f} {r['p50_us']:>9.0f} {r['p99_us']:>9.0f} "
                  f"{ratio:>12} {cpu:>11.1f} {cpu_ratio:>6}")
    print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)} on {os.cpu_count()} CPUs "
          "(client and server share them)")
    print(f"wrote {os.path.join(opts.out, 'echo.json')}")
    if failures:
        print(f"{len(failures)} echo run(s) FAILED:", *failures, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
