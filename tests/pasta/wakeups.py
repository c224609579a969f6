#!/usr/bin/env python3
"""Helpers for wakeups_test.ts: hold many idle TCP connections, count wake-ups.

  hold-server BIND PORT COUNT READY STOP   accept COUNT connections, write READY,
                                           hold them until STOP exists (bounded)
  hold-client ADDR PORT COUNT READY STOP   open COUNT connections, write READY
                                           once all are up, hold them until STOP
  wakeups PID SECONDS                      voluntary context switches, summed over
                                           every thread of PID and of its descendants
                                           that run pasta (deno, pasta or passt),
                                           over SECONDS; prints one JSON object

Every wait is bounded (HOLD_MAX seconds); all traffic stays in the sandbox.
"""
import json
import os
import socket
import sys
import time

HOLD_MAX = 120.0
CONNECT_TIMEOUT = 10.0


def wait_stop(stop):
    deadline = time.monotonic() + HOLD_MAX
    while time.monotonic() < deadline and not os.path.exists(stop):
        time.sleep(0.2)


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def hold_server(bind, port, count, ready, stop):
    raise_nofile()
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(4096)
    open(ready + ".listening", "w").close()
    s.settimeout(HOLD_MAX)
    conns = []
    while len(conns) < count:
        c, _ = s.accept()
        conns.append(c)
    open(ready, "w").close()
    wait_stop(stop)
    print(json.dumps({"accepted": len(conns)}))


def hold_client(addr, port, count, ready, stop):
    raise_nofile()
    conns = []
    errors = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection((addr, port), timeout=CONNECT_TIMEOUT))
        except OSError as e:
            errors.append(str(e))
            if len(errors) > 10:
                break
    open(ready, "w").close()
    wait_stop(stop)
    print(json.dumps({"connected": len(conns), "errors": errors[:10]}))


def argv0_of(pid):
    """argv[0] of PID (readable even when pasta made itself non-dumpable, unlike exe)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace") or None
    except OSError:
        return None


def switches(pids):
    total = 0
    threads = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
                            threads += 1
            except OSError:
                pass
    return total, threads


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def pasta_processes(root):
    """ROOT (the process started as pasta) and its descendants running pasta
    itself: a Deno runtime, or a C pasta binary; not the namespace's command."""
    parent = {int(p): ppid_of(p) for p in os.listdir("/proc") if p.isdigit()}
    found = [root]
    for pid in parent:
        ancestor = parent[pid]
        for _ in range(64):
            if ancestor in (None, 0, 1) or ancestor == root:
                break
            ancestor = parent.get(ancestor)
        argv0 = os.path.basename(argv0_of(pid) or "")
        if ancestor == root and pid != root and argv0 in ("deno", "pasta", "passt"):
            found.append(pid)
    return found


def wakeups(pid, seconds):
    pids = pasta_processes(pid)
    before, threads = switches(pids)
    time.sleep(seconds)
    after, _ = switches(pids)
    print(json.dumps({
        "processes": [f"{p}:{argv0_of(p)}" for p in pids],
        "threads": threads,
        "switches": after - before,
        "per_second": (after - before) / seconds,
    }))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "hold-server":
        hold_server(args[0], int(args[1]), int(args[2]), args[3], args[4])
    elif cmd == "hold-client":
        hold_client(args[0], int(args[1]), int(args[2]), args[3], args[4])
    elif cmd == "wakeups":
        wakeups(int(args[0]), float(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
