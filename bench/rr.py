#!/usr/bin/python3
"""TCP request/response and connection-rate probes for bench/run.ts.

  rr.py server ADDR PORT          echo server: echoes what it reads, closes on EOF
  rr.py rr ADDR PORT SECONDS      1-byte ping-pong on one connection (TCP_NODELAY)
  rr.py crr ADDR PORT SECONDS     connect, then close, in a loop

Clients print one JSON line: {"count": N, "seconds": S}. Standard library only.
"""

import json
import selectors
import socket
import sys
import time


def server(addr, port):
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, port))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(conn, selectors.EVENT_READ, 1)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                try:
                    conn.sendall(data)
                except OSError:
                    data = b""
            if not data:
                sel.unregister(conn)
                conn.close()


def rr(addr, port, seconds):
    s = socket.create_connection((addr, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(100):  # warm-up
        s.sendall(b"x")
        s.recv(1)
    count = 0
    start = time.monotonic()
    deadline = start + seconds
    while True:
        s.sendall(b"x")
        if not s.recv(1):
            raise SystemExit("server closed")
        count += 1
        if count % 64 == 0 and time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - start
    s.close()
    print(json.dumps({"count": count, "seconds": elapsed}))


def crr(addr, port, seconds):
    count = 0
    start = time.monotonic()
    deadline = start + seconds
    error = None
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((addr, port), timeout=5)
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
            break
        s.close()
        count += 1
    result = {"count": count, "seconds": time.monotonic() - start}
    if error:
        result["error"] = error
    print(json.dumps(result))


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "server":
        server(addr, port)
    elif mode == "rr":
        rr(addr, port, float(sys.argv[4]))
    elif mode == "crr":
        crr(addr, port, float(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
