#!/usr/bin/env python3
"""A DNS responder for the passt guest test: answers every A query with the
address given on the command line (and every other type with no records), on
UDP at 127.0.0.1:PORT, until killed.

Usage: dns_responder.py PORT ADDRESS
"""
import socket
import struct
import sys

port, address = int(sys.argv[1]), socket.inet_aton(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
print("ready", flush=True)
while True:
    query, peer = sock.recvfrom(2048)
    if len(query) < 12:
        continue
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    # The question: labels up to the zero byte, then type and class.
    end = query.index(0, 12) + 5
    question = query[12:end]
    qtype = struct.unpack("!H", question[-4:-2])[0]
    answers = b""
    count = 0
    if qdcount == 1 and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + address
        count = 1
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, count, 0, 0)
    sock.sendto(header + question + answers, peer)
