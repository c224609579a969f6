"""Floods for flood_test.ts, run inside the namespace pasta serves (sandbox only).

Every address comes from the command line; every wait is bounded; each
subcommand prints one JSON object on stdout.

    echo ADDR4 ADDR6 N4 N6 FIRST_ID      echo requests with N4 (IPv4) and N6 (IPv6)
                                         distinct identifiers from FIRST_ID, over raw
                                         sockets; unanswered ones are sent again (three
                                         rounds at most); prints how many were answered
    connect CLOSED_ADDR CLOSED_PORT SILENT_ADDR SILENT_PORT N HOLD
                                         N nonblocking connects to each target, 8 s for
                                         the answers; prints how many were refused and
                                         how many still pending; after HOLD more
                                         seconds (the kernel retrying the unanswered
                                         handshakes meanwhile) closes every socket
"""

import json
import resource
import select
import socket
import struct
import sys
import time

MARK = b"flood-test-payload"


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def request(v6, ident, seq):
    kind = 128 if v6 else 8
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + MARK  # the kernel fills in ICMPv6 checksums on raw sockets
    c = checksum(header + MARK)
    return struct.pack("!BBHHH", kind, 0, c, ident, seq) + MARK


def echo(addr4, addr6, n4, n6, first):
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    for s in (s4, s6):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setblocking(False)
    pending = {False: set(range(first, first + n4)), True: set(range(first, first + n6))}
    sent = 0

    def drain():
        for s, v6 in ((s4, False), (s6, True)):
            while True:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                off = 0 if v6 else (data[0] & 0x0F) * 4
                if len(data) < off + 8 or not data[off + 8:].startswith(MARK):
                    continue
                kind, _, _, ident, _ = struct.unpack("!BBHHH", data[off:off + 8])
                if kind == (129 if v6 else 0):
                    pending[v6].discard(ident)

    for attempt in range(3):
        for v6, s, addr in ((False, s4, addr4), (True, s6, addr6)):
            for i, ident in enumerate(sorted(pending[v6])):
                try:
                    s.sendto(request(v6, ident, attempt), (addr, 0))
                    sent += 1
                except BlockingIOError:
                    pass
                if i % 100 == 99:
                    time.sleep(0.01)  # paced, so no receive buffer overflows
                    drain()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and (pending[False] or pending[True]):
            select.select([s4, s6], [], [], 0.1)
            drain()
        if not pending[False] and not pending[True]:
            break
    print(json.dumps({
        "answered4": n4 - len(pending[False]),
        "answered6": n6 - len(pending[True]),
        "sent": sent,
    }))


def connect(closed_addr, closed_port, silent_addr, silent_port, n, hold):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for _ in range(n):
        for addr, port in ((closed_addr, closed_port), (silent_addr, silent_port)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((addr, port))
            except BlockingIOError:
                pass
            except OSError:
                pass
            socks.append((s, addr))
    refused = 0
    undecided = {s.fileno(): (s, addr) for s, addr in socks}
    deadline = time.monotonic() + 8
    poller = select.poll()
    for fd in undecided:
        poller.register(fd, select.POLLOUT)
    while undecided and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            s, addr = undecided.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                refused += 1
    pending = sum(1 for s, addr in undecided.values() if addr == silent_addr)
    print(json.dumps({"refused": refused, "pending": pending, "total": len(socks)}), flush=True)
    time.sleep(hold)
    for s, _ in socks:
        s.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        echo(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "connect":
        connect(args[0], int(args[1]), args[2], int(args[3]), int(args[4]), float(args[5]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
