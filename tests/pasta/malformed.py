"""Feeds malformed ARP, DHCP, NDP and DHCPv6 frames to pasta from inside its namespace.

Run by pasta_test.ts inside a namespace that pasta made (never on a real interface):
    malformed.py IFNAME
Frames go out on IFNAME (pasta's tap) from a made-up MAC address, so that anything
pasta sends back to that address is an answer to them. One valid ARP request is sent
last as a control: its reply shows that answers are seen at all.

Prints one JSON object: {"replies": [...descriptions of answers to malformed frames],
"control": true|false}.
"""

import json
import socket
import struct
import sys
import time

IFNAME = sys.argv[1]
FAKE_MAC = bytes.fromhex("020000c0ff99")
BROADCAST = b"\xff" * 6
IP6_ALL_ROUTERS = bytes.fromhex("333300000002")
IP6_DHCP_SERVERS = bytes.fromhex("333300010002")
HOST4 = socket.inet_aton("192.0.2.2")
GW4 = socket.inet_aton("192.0.2.1")
LL6 = socket.inet_pton(socket.AF_INET6, "fe80::c0ff:99")
ALL_ROUTERS6 = socket.inet_pton(socket.AF_INET6, "ff02::2")
DHCP6_SERVERS = socket.inet_pton(socket.AF_INET6, "ff02::1:2")
GW6 = socket.inet_pton(socket.AF_INET6, "2001:db8:1::1")


def eth(dst, ethertype, payload):
    return dst + FAKE_MAC + struct.pack("!H", ethertype) + payload


def ipv4_udp(sport, dport, payload, claimed_total=None, claimed_udp=None):
    udp_len = claimed_udp if claimed_udp is not None else 8 + len(payload)
    total = claimed_total if claimed_total is not None else 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
                     b"\0\0\0\0", b"\xff\xff\xff\xff")
    return ip + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload


def ipv6(next_header, dst, payload, claimed_len=None, hop_limit=255):
    plen = claimed_len if claimed_len is not None else len(payload)
    return struct.pack("!IHBB", 0x60000000, plen, next_header, hop_limit) + LL6 + dst + payload


def arp(op=1, hlen=6, plen=4, target=GW4):
    return struct.pack("!HHBBH", 1, 0x0800, hlen, plen, op) + FAKE_MAC + HOST4 + b"\0" * 6 + target


def bootp(options):
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0x1234, 0, 0x8000,
                        b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                        FAKE_MAC + b"\0" * 10, b"\0" * 64, b"\0" * 128)
    return fixed + options


DISCOVER_OPTS = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"

MALFORMED = {
    "ethernet header only (ARP)": eth(BROADCAST, 0x0806, b""),
    "ARP cut at 10 bytes": eth(BROADCAST, 0x0806, arp()[:10]),
    "ARP cut before the target address": eth(BROADCAST, 0x0806, arp()[:24]),
    "ARP with hlen 255 plen 255": eth(BROADCAST, 0x0806, arp(hlen=255, plen=255)),
    "ARP with opcode 9": eth(BROADCAST, 0x0806, arp(op=9)),
    "IPv4 header cut at 12 bytes": eth(BROADCAST, 0x0800, ipv4_udp(68, 67, b"")[:12]),
    "DHCP cut inside BOOTP": eth(BROADCAST, 0x0800,
                                ipv4_udp(68, 67, bootp(DISCOVER_OPTS)[:40],
                                         claimed_total=20 + 8 + 300, claimed_udp=8 + 300)),
    "DHCP without magic cookie": eth(BROADCAST, 0x0800,
                                     ipv4_udp(68, 67, bootp(b"\0\0\0\0\x35\x01\x01\xff"))),
    "DHCP option longer than the frame": eth(BROADCAST, 0x0800,
                                             ipv4_udp(68, 67, bootp(b"\x63\x82\x53\x63\x35\xc8\x01"))),
    "DHCP message type option of length 0": eth(BROADCAST, 0x0800,
                                                ipv4_udp(68, 67, bootp(b"\x63\x82\x53\x63\x35\x00\xff"))),
    "IPv6 header cut at 20 bytes": eth(IP6_ALL_ROUTERS, 0x86DD, ipv6(58, ALL_ROUTERS6, b"")[:20]),
    "NDP RS cut at 4 bytes, claiming 16": eth(IP6_ALL_ROUTERS, 0x86DD,
                                             ipv6(58, ALL_ROUTERS6, b"\x85\x00\x00\x00",
                                                  claimed_len=16)),
    "NDP RS with a zero-length option": eth(IP6_ALL_ROUTERS, 0x86DD,
                                           ipv6(58, ALL_ROUTERS6,
                                                b"\x85\x00\x00\x00" + b"\0" * 4 + b"\x01\x00" + b"\0" * 6)),
    "NDP NS cut before its target": eth(IP6_ALL_ROUTERS, 0x86DD,
                                       ipv6(58, ALL_ROUTERS6, b"\x87\x00\x00\x00\0\0\0\0" + GW6[:6])),
    "DHCPv6 Solicit cut inside its header": eth(IP6_DHCP_SERVERS, 0x86DD,
                                               ipv6(17, DHCP6_SERVERS,
                                                    struct.pack("!HHHH", 546, 547, 10, 0) + b"\x01\x00",
                                                    hop_limit=1)),
    "DHCPv6 Solicit with an option longer than the message": eth(
        IP6_DHCP_SERVERS, 0x86DD,
        ipv6(17, DHCP6_SERVERS,
             struct.pack("!HHHH", 546, 547, 8 + 4 + 4 + 2, 0) + b"\x01\x00\x00\x01"
             + struct.pack("!HH", 1, 1000) + b"\0\x01", hop_limit=1)),
    "DHCPv6 Solicit with a client ID option of length 0 and a truncated IA_NA": eth(
        IP6_DHCP_SERVERS, 0x86DD,
        ipv6(17, DHCP6_SERVERS,
             struct.pack("!HHHH", 546, 547, 8 + 4 + 4 + 4 + 3, 0) + b"\x01\x00\x00\x02"
             + struct.pack("!HH", 1, 0) + struct.pack("!HH", 3, 12) + b"\0\0\0", hop_limit=1)),
}

CONTROL = eth(BROADCAST, 0x0806, arp())


def describe(frame):
    ethertype = struct.unpack("!H", frame[12:14])[0]
    return f"ethertype 0x{ethertype:04x}, {len(frame)} bytes: {frame[14:60].hex()}"


def answers(sock, seconds):
    """Frames addressed to FAKE_MAC, or DHCP/DHCPv6 server replies, within `seconds`."""
    found = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return found
        sock.settimeout(left)
        try:
            frame, addr = sock.recvfrom(65535)
        except socket.timeout:
            return found
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if frame[:6] == FAKE_MAC:
            found.append(describe(frame))
        elif frame[12:14] == b"\x08\x00" and frame[23] == 17 and frame[34:36] == b"\x00\x43":
            found.append("DHCP server reply: " + describe(frame))
        elif frame[12:14] == b"\x86\xdd" and frame[20] == 17 and frame[54:56] == b"\x02\x23":
            found.append("DHCPv6 server reply: " + describe(frame))


def main():
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((IFNAME, 0))
    replies = []
    for name, frame in MALFORMED.items():
        sock.send(frame)
        replies += [f"{name} -> {r}" for r in answers(sock, 0.15)]
    replies += [f"(late) {r}" for r in answers(sock, 1.0)]
    sock.send(CONTROL)
    control = any("0x0806" in r for r in answers(sock, 2.0))
    print(json.dumps({"replies": replies, "control": control}))


main()
