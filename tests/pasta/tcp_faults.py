"""Malformed and hostile TCP segments, sent to pasta from inside its namespace.

Run by transport_test.ts in a namespace pasta made (never on a real interface):
    tcp_faults.py IFNAME GATEWAY ECHO_PORT FLOOD_ADDR FLOOD_COUNT
It opens a real connection to GATEWAY:ECHO_PORT (an echo server on the host's
loopback), learns its addresses and sequence numbers by watching its own frames on
IFNAME, then injects with the same MAC addresses: a SYN with a bad checksum, TCP
headers cut short or with impossible data offsets, and, on the live connection's
4-tuple, data, RST and FIN far outside the window and an ACK of data never sent.
The live connection must still echo 1 MiB intact afterwards. Last, FLOOD_COUNT SYNs
from distinct source ports go to FLOOD_ADDR:80, paced in chunks.

Prints one JSON object: {"echo_ok", "bad_checksum_answered", "flood_sent", ...}.
"""

import hashlib
import json
import os
import socket
import struct
import sys
import time

IFNAME, GATEWAY, ECHO_PORT, FLOOD_ADDR, FLOOD_COUNT = sys.argv[1:6]
ECHO_PORT = int(ECHO_PORT)
FLOOD_COUNT = int(FLOOD_COUNT)
SYN, RST, ACK, FIN, PSH = 0x02, 0x04, 0x10, 0x01, 0x08


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_segment(src, dst, sport, dport, seq, ack, flags, payload=b"", offset_words=5,
                window=65535, bad_checksum=False):
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset_words << 4, flags, window, 0, 0)
    segment = header + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    check = csum(pseudo + segment)
    if bad_checksum:
        check ^= 0x5A5A
    return segment[:16] + struct.pack("!H", check) + segment[18:]


def ipv4(src, dst, payload, claimed_total=None):
    total = claimed_total if claimed_total is not None else 20 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    header = header[:10] + struct.pack("!H", csum(header)) + header[12:]
    return header + payload


class Wire:
    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL: only it sees outgoing frames
        self.sock.bind((IFNAME, 0))
        self.eth = None  # dst MAC (pasta) + src MAC (ours) + type, from our own frames

    def learn(self, sport, timeout=5.0):
        """The last outgoing segment of our connection: (eth header, src, dst, seq, ack)."""
        deadline = time.monotonic() + timeout
        found = None
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                frame, addr = self.sock.recvfrom(70000)
            except socket.timeout:
                if found:
                    return found
                continue
            if addr[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            tcp = frame[14 + ihl:]
            if struct.unpack("!H", tcp[:2])[0] != sport:
                continue
            seq, ack = struct.unpack("!II", tcp[4:12])
            payload = len(frame) - 14 - ihl - (tcp[12] >> 4) * 4
            found = (frame[:14], frame[26:30], frame[30:34], (seq + payload) & 0xFFFFFFFF, ack)
        return found

    def send(self, ip_packet):
        self.sock.send(self.eth + ip_packet)

    def synack_for(self, sport, seconds):
        """Whether pasta answered our port `sport` (SYN-ACK or RST) within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                frame, addr = self.sock.recvfrom(70000)
            except socket.timeout:
                return False
            if addr[2] == socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            if struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0] == sport:
                return True
        return False


def recv_exactly(s, n):
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(1 << 16, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def main():
    result = {}
    wire = Wire()
    live = socket.create_connection((GATEWAY, ECHO_PORT), timeout=10)
    sport = live.getsockname()[1]
    live.sendall(b"hello")
    assert recv_exactly(live, 5) == b"hello"
    learned = wire.learn(sport)
    if learned is None:
        print(json.dumps({"error": "could not see our own frames"}))
        return
    wire.eth, src, dst, seq, ack = learned
    dport = ECHO_PORT

    # A SYN with a bad checksum to the open port: a checksum-verifying pasta ignores it.
    wire.send(ipv4(src, dst, tcp_segment(src, dst, 40001, dport, 1000, 0, SYN, bad_checksum=True)))
    result["bad_checksum_answered"] = wire.synack_for(40001, 1.0)

    truncated = [
        ipv4(src, dst, tcp_segment(src, dst, 40002, dport, 1, 0, SYN)[:10]),
        ipv4(src, dst, tcp_segment(src, dst, 40003, dport, 1, 0, SYN)[:19]),
        ipv4(src, dst, tcp_segment(src, dst, 40004, dport, 1, 0, SYN, offset_words=15)),
        ipv4(src, dst, tcp_segment(src, dst, 40005, dport, 1, 0, SYN, offset_words=2)),
        ipv4(src, dst, tcp_segment(src, dst, 40006, dport, 1, 0, SYN), claimed_total=1400),
        ipv4(src, dst, b""),
        ipv4(src, dst, tcp_segment(src, dst, sport, dport, seq, ack, ACK | PSH, b"x" * 30,
                                   offset_words=15)),
    ]
    for packet in truncated:
        wire.send(packet)
    hostile = [
        # Data, RST and FIN far outside the window, on the live 4-tuple.
        tcp_segment(src, dst, sport, dport, seq + (1 << 30), ack, ACK | PSH, b"OUT-OF-WINDOW"),
        tcp_segment(src, dst, sport, dport, seq - (1 << 30), ack, ACK | PSH, b"OLD-DATA"),
        tcp_segment(src, dst, sport, dport, seq + (1 << 30), ack, RST),
        tcp_segment(src, dst, sport, dport, seq + 100000, ack, RST),
        tcp_segment(src, dst, sport, dport, seq + (1 << 30), ack, FIN | ACK),
        # An acknowledgement of data pasta never sent.
        tcp_segment(src, dst, sport, dport, seq, ack + (1 << 30), ACK),
        # A SYN on the established 4-tuple.
        tcp_segment(src, dst, sport, dport, seq + 5000, 0, SYN),
    ]
    only = os.environ.get("TCP_FAULTS_ONLY")  # for bisecting: indices into `hostile`
    if only:
        hostile = [hostile[int(i)] for i in only.split(",")]
    for seg in hostile:
        wire.send(ipv4(src, dst, seg))
        time.sleep(0.02)
    time.sleep(0.5)

    # The live connection still works, both ways, byte for byte.
    data = os.urandom(1 << 20)
    try:
        live.sendall(data)
        echo = recv_exactly(live, len(data))
        result["echo_ok"] = hashlib.sha256(echo).digest() == hashlib.sha256(data).digest()
        result["echo_received"] = len(echo)
    except OSError as e:
        result["echo_ok"] = False
        result["echo_error"] = str(e)
    live.close()

    # A flood of SYNs from distinct ports to an address that never answers.
    flood_dst = socket.inet_aton(FLOOD_ADDR)
    sent = 0
    for i in range(FLOOD_COUNT):
        port = 1024 + i
        wire.send(ipv4(src, flood_dst, tcp_segment(src, flood_dst, port, 80, i * 7919, 0, SYN)))
        sent += 1
        if i % 500 == 499:
            time.sleep(0.02)
    result["flood_sent"] = sent
    print(json.dumps(result), flush=True)


main()
