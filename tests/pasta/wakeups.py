#!/usr/bin/env python3
"""Helpers for wakeups_test.ts: hold many idle TCP connections, count wake-ups.

  hold-server BIND PORT COUNT READY STOP   accept COUNT connections, write READY,
                                           hold them until STOP exists (bounded);
                                           meanwhile answer each UDP datagram to
                                           PORT once (one thread)
  hold-client ADDR PORT COUNT READY STOP [UDP ECHO]
                                           open COUNT connections, then UDP flows
                                           (a socket each, one datagram answered)
                                           and ECHO echo flows (distinct ICMP
                                           identifiers, raw socket, answered),
                                           write READY once all are up, hold them
                                           until STOP
  wakeups PID SECONDS                      voluntary context switches, summed over
                                           every thread of PID and of its descendants
                                           that run pasta (deno, pasta or passt),
                                           over SECONDS; prints one JSON object

Every wait is bounded (HOLD_MAX seconds); all traffic stays in the sandbox.
"""
import json
import os
import select
import socket
import struct
import sys
import threading
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


def answer_udp(sock, stop):
    """Echo each datagram once, until STOP exists (bounded)."""
    deadline = time.monotonic() + HOLD_MAX
    while time.monotonic() < deadline and not os.path.exists(stop):
        if not select.select([sock], [], [], 0.2)[0]:
            continue
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def hold_server(bind, port, count, ready, stop):
    raise_nofile()
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((bind, port))
    threading.Thread(target=answer_udp, args=(u, stop), daemon=True).start()
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


def answered(socks, want, timeout):
    """How many of SOCKS got a datagram for which WANT(data) holds, within TIMEOUT."""
    # poll, not select: the descriptors are past FD_SETSIZE after the connections.
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    done = 0
    deadline = time.monotonic() + timeout
    while by_fd and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            poller.unregister(fd)
            try:
                if want(by_fd.pop(fd).recv(2048)):
                    done += 1
            except OSError:
                pass  # refused: not answered
    return done


def icmp_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_flows(addr, port, n):
    """N UDP sockets, each sending one datagram: how many were answered."""
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((addr, port))
        s.send(b"udp-flow-%d" % i)
        socks.append(s)
        if i % 100 == 99:
            time.sleep(0.01)
    got = answered(socks, lambda d: d.startswith(b"udp-flow-"), 10)
    return socks, got


def echo_flows(addr, n, first=20000):
    """N echo requests with distinct identifiers: how many identifiers were answered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    mark = b"wakeups-echo"
    pending = set(range(first, first + n))
    poller = select.poll()
    poller.register(s.fileno(), select.POLLIN)
    for attempt in range(3):
        for i, ident in enumerate(sorted(pending)):
            c = icmp_checksum(struct.pack("!BBHHH", 8, 0, 0, ident, attempt) + mark)
            s.sendto(struct.pack("!BBHHH", 8, 0, c, ident, attempt) + mark, (addr, 0))
            if i % 100 == 99:
                time.sleep(0.01)
        deadline = time.monotonic() + 2
        while pending and time.monotonic() < deadline:
            if not poller.poll(100):
                continue
            data = s.recv(2048)
            off = (data[0] & 0x0F) * 4
            if len(data) >= off + 8 and data[off] == 0 and data[off + 8:] == mark:
                pending.discard(struct.unpack("!H", data[off + 4:off + 6])[0])
        if not pending:
            break
    return s, n - len(pending)


def hold_client(addr, port, count, ready, stop, udp=0, echo=0):
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
    udp_socks, udp_answered = udp_flows(addr, port, udp) if udp else ([], 0)
    echo_sock, echo_answered = echo_flows(addr, echo) if echo else (None, 0)
    open(ready, "w").close()
    wait_stop(stop)
    print(json.dumps({
        "connected": len(conns),
        "udp_answered": udp_answered,
        "echo_answered": echo_answered,
        "errors": errors[:10],
    }))


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
        hold_client(args[0], int(args[1]), int(args[2]), args[3], args[4],
                    *(int(a) for a in args[5:7]))
    elif cmd == "wakeups":
        wakeups(int(args[0]), float(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
