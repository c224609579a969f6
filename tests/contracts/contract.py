"""Stand-ins for the tools that start passt and pasta, for tests/contracts_test.ts.

Run inside the test sandbox only; every address and path comes from the command line.
Each subcommand prints one JSON object on stdout (its result) and bounds every wait.

    tcp-sink BIND PORT READY          accept one connection, read a size (8 bytes) and
                                      that many bytes, answer their SHA-256 (hex), close
    tcp-send ADDR PORT SIZE           send SIZE random bytes (after their size), compare
                                      the answer with their SHA-256; no half-close, which
                                      the transport tests cover
    qemu-fd PIDFILE PROGRAM ARGS...   as QEMU's -netdev passt: a socketpair, one end as
                                      fd 3 of PROGRAM ARGS (which say --fd 3), wait for
                                      it to exit, read PIDFILE, DHCP over our end, then
                                      SIGTERM to the PID and wait for it to go
    stream-dhcp SOCKET                as QEMU's -netdev stream: connect to SOCKET, DHCP,
                                      disconnect
    tool-run SECONDS PROGRAM ARGS...  as podman, rootlesskit and libvirt run it: wait for
                                      the exit status, and read stdout and stderr to EOF
                                      (which a daemon that kept them open never gives;
                                      bounded by SECONDS)

The DHCP client speaks the qemu stream framing (a 4-byte big-endian length before each
frame) and reports the lease: address, netmask, router, name servers and MTU.
"""

import fcntl
import selectors
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

TIMEOUT = 20.0
GUEST_MAC = bytes.fromhex("525400123456")


def out(obj):
    print(json.dumps(obj), flush=True)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


# --- TCP ----------------------------------------------------------------------------------


def tcp_sink(bind, port, ready_path):
    s = socket.socket(family_of(bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(4)
    with open(ready_path + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(ready_path + ".tmp", ready_path)
    s.settimeout(TIMEOUT)
    conn, peer = s.accept()
    conn.settimeout(TIMEOUT)
    digest = hashlib.sha256()
    (expected,) = struct.unpack("!Q", recv_exact(conn, 8))
    size = 0
    while size < expected:
        chunk = conn.recv(min(1 << 16, expected - size))
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    conn.sendall(digest.hexdigest().encode())
    conn.close()
    out({"received": size, "peer": peer[0]})


def tcp_send(addr, port, size):
    data = os.urandom(size)
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect((addr, port))
        s.sendall(struct.pack("!Q", size) + data)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError as e:
        out({"ok": False, "error": str(e)})
        return
    out({"ok": answer.decode(errors="replace") == hashlib.sha256(data).hexdigest(),
         "sent": size})


# --- DHCP over the qemu stream framing ----------------------------------------------------


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dhcp_frame(xid, msg_type, extra=b""):
    """A broadcast DHCP message from GUEST_MAC, as an Ethernet frame."""
    bootp = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    bootp += b"\0" * 16 + GUEST_MAC + b"\0" * 10 + b"\0" * 192
    bootp += bytes.fromhex("63825363")
    bootp += bytes([53, 1, msg_type]) + extra + bytes([55, 4, 1, 3, 6, 26, 255])
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + GUEST_MAC + b"\x08\x00" + ip + udp


def send_frame(sock, frame):
    sock.sendall(struct.pack("!I", len(frame)) + frame)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the peer closed the stream")
        buf += chunk
    return buf


def dhcp_reply(sock, xid, deadline):
    """The next DHCP message for `xid` (other frames are skipped) as (type, yiaddr, opts)."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        (length,) = struct.unpack("!I", recv_exact(sock, 4))
        frame = recv_exact(sock, length)
        if len(frame) < 42 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl:]
        if struct.unpack("!H", udp[2:4])[0] != 68:
            continue
        bootp = udp[8:]
        if struct.unpack("!I", bootp[4:8])[0] != xid or bootp[236:240] != bytes.fromhex("63825363"):
            continue
        opts, at = {}, 240
        while at < len(bootp) and bootp[at] != 255:
            if bootp[at] == 0:
                at += 1
                continue
            opts[bootp[at]] = bootp[at + 2:at + 2 + bootp[at + 1]]
            at += 2 + bootp[at + 1]
        return opts.get(53, b"\0")[0], socket.inet_ntoa(bootp[16:20]), opts
    raise TimeoutError("no DHCP reply")


def dhcp_exchange(sock):
    """DISCOVER, OFFER, REQUEST, ACK: the lease as a dict (or the error)."""
    xid = int.from_bytes(os.urandom(4), "big")
    deadline = time.monotonic() + 10
    try:
        send_frame(sock, dhcp_frame(xid, 1))
        kind, offered, opts = dhcp_reply(sock, xid, deadline)
        if kind != 2:
            return {"error": f"DHCP message type {kind} instead of an OFFER"}
        server = opts.get(54, b"")
        send_frame(sock, dhcp_frame(xid, 3, bytes([50, 4]) + socket.inet_aton(offered) +
                                    bytes([54, len(server)]) + server))
        kind, address, opts = dhcp_reply(sock, xid, deadline)
    except (OSError, EOFError, TimeoutError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    if kind != 5:
        return {"error": f"DHCP message type {kind} instead of an ACK"}
    addrs = lambda b: [socket.inet_ntoa(b[i:i + 4]) for i in range(0, len(b) - 3, 4)]
    return {
        "address": address,
        "netmask": socket.inet_ntoa(opts[1]) if 1 in opts else None,
        "router": addrs(opts.get(3, b"")),
        "dns": addrs(opts.get(6, b"")),
        "mtu": struct.unpack("!H", opts[26])[0] if 26 in opts else None,
    }


# --- the tools ----------------------------------------------------------------------------


def alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def qemu_fd(pid_file, argv):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # Neither end may already be fd 3: move both above it, then put theirs at 3.
    ours = socket.socket(fileno=fcntl.fcntl(ours.detach(), fcntl.F_DUPFD_CLOEXEC, 10))
    theirs_fd = fcntl.fcntl(theirs.detach(), fcntl.F_DUPFD_CLOEXEC, 10)
    os.dup2(theirs_fd, 3)
    os.close(theirs_fd)
    started = time.monotonic()
    child = subprocess.Popen(argv, pass_fds=(3,), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(3)
    try:
        stdout, stderr = child.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        out({"error": "the program did not exit (and close its output) in time"})
        return
    result = {"status": child.returncode, "stdout": stdout.decode(errors="replace"),
              "stderr": stderr.decode(errors="replace"),
              "startup_s": round(time.monotonic() - started, 2)}
    pid = read_pid(pid_file)
    result["pid"] = pid
    result["alive"] = pid is not None and alive(pid)
    result["lease"] = dhcp_exchange(ours)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        result["gone_after_term"] = wait_gone(pid, 10)
    out(result)


def stream_dhcp(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(path)
    except OSError as e:
        out({"error": f"connect: {e}"})
        return
    lease = dhcp_exchange(s)
    s.close()
    out({"lease": lease})


def tool_run(seconds, argv):
    started = time.monotonic()
    deadline = started + seconds
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    texts = {child.stdout: b"", child.stderr: b""}
    open_pipes = set(texts)
    sel = selectors.DefaultSelector()
    for pipe in texts:
        sel.register(pipe, selectors.EVENT_READ)
    while open_pipes and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.01, deadline - time.monotonic())):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if chunk:
                texts[key.fileobj] += chunk
            else:
                sel.unregister(key.fileobj)
                open_pipes.discard(key.fileobj)
    eof_s = round(time.monotonic() - started, 2)
    try:
        status = child.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()
        status = None
    out({"status": status, "eof": not open_pipes, "seconds": eof_s,
         "stdout": texts[child.stdout].decode(errors="replace"),
         "stderr": texts[child.stderr].decode(errors="replace")})


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "tcp-sink":
        tcp_sink(args[0], int(args[1]), args[2])
    elif cmd == "tcp-send":
        tcp_send(args[0], int(args[1]), int(args[2]))
    elif cmd == "qemu-fd":
        qemu_fd(args[0], args[1:])
    elif cmd == "tool-run":
        tool_run(float(args[0]), args[1:])
    elif cmd == "stream-dhcp":
        stream_dhcp(args[0])
    else:
        sys.exit(f"unknown command {cmd}")


main()
