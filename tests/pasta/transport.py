"""Small TCP and UDP clients and servers for transport_test.ts.

Run inside the test sandbox only (the host or remote namespace, or a namespace pasta
made); every address comes from the command line. Each subcommand prints one JSON
object on stdout (its result) and bounds every wait. Servers that take READY create
that file once they listen, so the test knows when to start the other side.

    many-server BIND PORT COUNT READY      verify and echo COUNT connections
    many-client ADDR PORT COUNT SIZE       COUNT concurrent connections, distinct data
    half-server BIND PORT MODE READY       half-close, MODE client-first|server-first
    half-client ADDR PORT MODE
    rst-server BIND PORT MODE READY        MODE server-rst|client-rst
    rst-client ADDR PORT MODE
    refused ADDR PORT [SECONDS]            connect to a closed port: errno and time
    udp-echo BIND PORT READY               echo datagrams until killed
    udp-ping ADDR PORT                     one datagram, its echo and where it came from
    udp-count BIND PORT COUNT READY        count distinct sequence numbers received
    udp-burst ADDR PORT COUNT              send COUNT numbered datagrams, paced
    dns-stub BIND READY                    answer every A query with 198.51.100.77
                                           (echo and stub: until idle 2 s after the first)
    dns-query ADDR                         ask ADDR:53 for example.test A
    auto-listener PORT READY STOP CLOSED   listen on PORT (v4 and v6) until STOP exists
    wait-banner ADDR PORT SECONDS          retry until a connection returns the banner
    wait-free ADDR PORT SECONDS            retry until a listener can take PORT on ADDR
"""

import asyncio
import errno
import hashlib
import json
import os
import random
import socket
import struct
import sys
import time

TIMEOUT = 20.0
BANNER = b"auto-hello\n"


def out(obj):
    print(json.dumps(obj), flush=True)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listener(bind, port, kind=socket.SOCK_STREAM):
    s = socket.socket(family_of(bind), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(bind) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((bind, port))
    if kind == socket.SOCK_STREAM:
        s.listen(1024)
    return s


def ready(path):
    with open(path + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(path + ".tmp", path)


def connect(addr, port, timeout=TIMEOUT):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((addr, port))
    return s


def recv_all(s, limit=1 << 30):
    chunks = []
    total = 0
    while total < limit:
        b = s.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def payload(seed, size):
    return random.Random(seed).randbytes(size)


# --- many concurrent connections ---------------------------------------------------------

async def many_server(bind, port, count, ready_path):
    done = {"ok": 0, "bad": []}
    finished = asyncio.Event()

    async def handle(reader, writer):
        try:
            header = await reader.readline()
            conn_id, size, digest = header.decode().split()
            data = await reader.readexactly(int(size))
            if hashlib.sha256(data).hexdigest() != digest or data[:8] != conn_id.encode()[:8].ljust(8, b"."):
                done["bad"].append(conn_id)
            else:
                done["ok"] += 1
            writer.write(data)
            await writer.drain()
        except Exception as e:  # noqa: BLE001 - reported, not raised
            done["bad"].append(f"{type(e).__name__}: {e}")
        finally:
            writer.close()
            if done["ok"] + len(done["bad"]) >= count:
                finished.set()

    fam = family_of(bind)
    server = await asyncio.start_server(handle, bind, port, family=fam, backlog=1024,
                                        reuse_address=True)
    ready(ready_path)
    try:
        await asyncio.wait_for(finished.wait(), 60)
    except asyncio.TimeoutError:
        done["bad"].append("timed out")
    server.close()
    out(done)


async def many_client(addr, port, count, size):
    async def one(i):
        conn_id = f"c{i:07d}"
        data = conn_id.encode() + payload(f"many-{i}", size - len(conn_id))
        reader, writer = await asyncio.open_connection(addr, port)
        writer.write(f"{conn_id} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode() + data)
        await writer.drain()
        echo = await reader.readexactly(len(data))
        writer.close()
        return echo == data

    async def guarded(i):
        try:
            return await asyncio.wait_for(one(i), 60)
        except Exception as e:  # noqa: BLE001
            return f"{i}: {type(e).__name__}: {e}"

    results = await asyncio.gather(*(guarded(i) for i in range(count)))
    out({"ok": sum(1 for r in results if r is True),
         "errors": [r if r is not False else "echo differs" for r in results if r is not True][:10]})


# --- half-close --------------------------------------------------------------------------

HALF_SIZE = 1 << 20


def half_server(bind, port, mode, ready_path):
    s = listener(bind, port)
    ready(ready_path)
    s.settimeout(TIMEOUT)
    c, _ = s.accept()
    c.settimeout(TIMEOUT)
    if mode == "client-first":
        got = recv_all(c)
        ok = got == payload("half-up", HALF_SIZE)
        # Only now, after the client's FIN, the reply.
        c.sendall(payload("half-down", HALF_SIZE))
        c.close()
        out({"received_ok": ok, "received": len(got)})
    else:
        c.sendall(payload("half-down", HALF_SIZE))
        c.shutdown(socket.SHUT_WR)
        got = recv_all(c)
        c.close()
        out({"received_ok": got == payload("half-up", HALF_SIZE), "received": len(got)})


def half_client(addr, port, mode):
    c = connect(addr, port)
    if mode == "client-first":
        c.sendall(payload("half-up", HALF_SIZE))
        c.shutdown(socket.SHUT_WR)
        got = recv_all(c)
        c.close()
    else:
        got = recv_all(c)
        c.sendall(payload("half-up", HALF_SIZE))
        c.close()
    out({"received_ok": got == payload("half-down", HALF_SIZE), "received": len(got)})


# --- resets ------------------------------------------------------------------------------

LINGER0 = struct.pack("ii", 1, 0)


def outcome(sock):
    try:
        b = sock.recv(100)
        return "eof" if not b else f"data {b!r}"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


def rst_server(bind, port, mode, ready_path):
    s = listener(bind, port)
    ready(ready_path)
    s.settimeout(TIMEOUT)
    c, _ = s.accept()
    c.settimeout(TIMEOUT)
    hello = c.recv(5)
    if mode == "server-rst":
        time.sleep(0.2)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        c.close()
        out({"hello": hello.decode()})
    else:
        c.sendall(b"ready")
        out({"hello": hello.decode(), "seen": outcome(c)})


def rst_client(addr, port, mode):
    c = connect(addr, port)
    c.sendall(b"hello")
    if mode == "server-rst":
        out({"seen": outcome(c)})
    else:
        got = c.recv(5)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        c.close()
        out({"got": got.decode()})


def refused(addr, port, seconds=10.0):
    started = time.monotonic()
    try:
        connect(addr, port, timeout=seconds).close()
        result = "connected"
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e))
    out({"result": result, "seconds": round(time.monotonic() - started, 3)})


# --- UDP ---------------------------------------------------------------------------------

def udp_echo(bind, port, ready_path):
    """Echoes until 2 s pass without a datagram after the first (or 30 s without any)."""
    s = listener(bind, port, socket.SOCK_DGRAM)
    ready(ready_path)
    s.settimeout(30)
    echoed = 0
    while True:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            break
        s.sendto(data, peer)
        echoed += 1
        s.settimeout(2)
    out({"echoed": echoed})


def udp_ping(addr, port):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.settimeout(1)
    for attempt in range(3):
        msg = f"ping-{attempt}-{os.getpid()}".encode()
        s.sendto(msg, (addr, port))
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        out({"reply": data.decode(errors="replace"), "same": data == msg, "from": peer[0],
             "port": peer[1], "attempts": attempt + 1})
        return
    out({"reply": None})


def udp_count(bind, port, count, ready_path):
    s = listener(bind, port, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root in the netns)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    ready(ready_path)
    seen = bytearray(count)
    received = 0
    corrupt = 0
    deadline = time.monotonic() + 60
    s.settimeout(5)  # the sender starts within seconds; then idle 2 s means done
    while time.monotonic() < deadline:
        try:
            data = s.recv(65535)
        except socket.timeout:
            break
        s.settimeout(2)
        received += 1
        seq = struct.unpack("!I", data[:4])[0] if len(data) >= 4 else count
        if seq < count and data == datagram(seq):
            seen[seq] = 1
        else:
            corrupt += 1
        if received >= count and sum(seen) == count:
            break
    out({"received": received, "distinct": sum(seen), "corrupt": corrupt})


def datagram(seq):
    return struct.pack("!I", seq) + bytes((seq + i) & 0xFF for i in range(60))


def udp_burst(addr, port, count):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    chunk = 50
    started = time.monotonic()
    for seq in range(count):
        s.sendto(datagram(seq), (addr, port))
        if seq % chunk == chunk - 1:
            # About 10 000 datagrams a second, in chunks of 50.
            target = started + (seq + 1) / 10000
            pause = target - time.monotonic()
            time.sleep(max(pause, 0.001))
    out({"sent": count, "seconds": round(time.monotonic() - started, 3)})


def dns_stub(bind, ready_path):
    s = listener(bind, 53, socket.SOCK_DGRAM)
    ready(ready_path)
    s.settimeout(30)
    while True:
        try:
            q, peer = s.recvfrom(512)
        except socket.timeout:
            break
        s.settimeout(2)
        if len(q) < 12:
            continue
        # Header: same id, response + recursion available; question copied; one A answer.
        end = 12
        while end < len(q) and q[end] != 0:
            end += q[end] + 1
        question = q[12:end + 5]
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("198.51.100.77")
        s.sendto(q[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0) + question + answer, peer)


def dns_query(addr):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.settimeout(2)
    qid = os.getpid() & 0xFFFF
    name = b"".join(bytes([len(p)]) + p for p in b"example.test".split(b".")) + b"\0"
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
    for attempt in range(3):
        s.sendto(query, (addr, 53))
        try:
            data, peer = s.recvfrom(512)
        except socket.timeout:
            continue
        rid = struct.unpack("!H", data[:2])[0]
        answer = socket.inet_ntoa(data[-4:]) if len(data) >= 16 else None
        out({"from": peer[0], "port": peer[1], "id_ok": rid == qid, "answer": answer})
        return
    out({"from": None})


# --- auto forwarding ---------------------------------------------------------------------

def auto_listener(port, ready_path, stop_path, closed_path):
    socks = [listener("0.0.0.0", port), listener("::", port)]
    for s in socks:
        s.setblocking(False)
    ready(ready_path)
    served = 0
    deadline = time.monotonic() + 60
    while not os.path.exists(stop_path) and time.monotonic() < deadline:
        for s in socks:
            try:
                c, _ = s.accept()
            except BlockingIOError:
                continue
            c.setblocking(True)
            c.sendall(BANNER)
            c.close()
            served += 1
        time.sleep(0.02)
    for s in socks:
        s.close()
    ready(closed_path)
    out({"served": served})


def wait_banner(addr, port, seconds):
    started = time.monotonic()
    last = None
    while time.monotonic() - started < seconds:
        try:
            c = connect(addr, port, timeout=1)
            got = recv_all(c, len(BANNER))
            c.close()
            if got == BANNER:
                out({"ok": True, "seconds": round(time.monotonic() - started, 3)})
                return
            last = f"got {got!r}"
        except OSError as e:
            last = errno.errorcode.get(e.errno, str(e)) if e.errno else str(e)
        time.sleep(0.05)
    out({"ok": False, "last": last})


def wait_free(addr, port, seconds):
    started = time.monotonic()
    last = None
    while time.monotonic() - started < seconds:
        s = socket.socket(family_of(addr), socket.SOCK_STREAM)
        # As a server would: a TIME_WAIT left by a connection that went through
        # the port does not count, only a socket still listening on it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
            s.listen(1)
            s.close()
            out({"ok": True, "seconds": round(time.monotonic() - started, 3)})
            return
        except OSError as e:
            last = errno.errorcode.get(e.errno, str(e))
        s.close()
        time.sleep(0.05)
    out({"ok": False, "last": last})


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "many-server":
        asyncio.run(many_server(args[0], int(args[1]), int(args[2]), args[3]))
    elif cmd == "many-client":
        asyncio.run(many_client(args[0], int(args[1]), int(args[2]), int(args[3])))
    elif cmd == "half-server":
        half_server(args[0], int(args[1]), args[2], args[3])
    elif cmd == "half-client":
        half_client(args[0], int(args[1]), args[2])
    elif cmd == "rst-server":
        rst_server(args[0], int(args[1]), args[2], args[3])
    elif cmd == "rst-client":
        rst_client(args[0], int(args[1]), args[2])
    elif cmd == "refused":
        refused(args[0], int(args[1]), *(float(a) for a in args[2:3]))
    elif cmd == "udp-echo":
        udp_echo(args[0], int(args[1]), args[2])
    elif cmd == "udp-ping":
        udp_ping(args[0], int(args[1]))
    elif cmd == "udp-count":
        udp_count(args[0], int(args[1]), int(args[2]), args[3])
    elif cmd == "udp-burst":
        udp_burst(args[0], int(args[1]), int(args[2]))
    elif cmd == "dns-stub":
        dns_stub(args[0], args[1])
    elif cmd == "dns-query":
        dns_query(args[0])
    elif cmd == "auto-listener":
        auto_listener(int(args[0]), args[1], args[2], args[3])
    elif cmd == "wait-banner":
        wait_banner(args[0], int(args[1]), float(args[2]))
    elif cmd == "wait-free":
        wait_free(args[0], int(args[1]), float(args[2]))
    else:
        sys.exit(f"unknown command {cmd}")


main()
