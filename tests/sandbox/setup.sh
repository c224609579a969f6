#!/bin/sh
# Builds the test network inside a fresh sandbox, then holds it open.
#
# Run by sandbox.ts as process 1 of `unshare --user --map-root-user --net --mount
# --pid --fork --mount-proc`: new user, network, mount and PID namespaces, so nothing
# done here can reach the machine's real interfaces, routes or /run. With
# SANDBOX_ROOT=1 (sandbox.ts's root mode, for a caller that is real root) there is no
# user namespace: the same network, mount and PID namespaces, and root here is the
# machine's root. It builds:
#
#   HOST (this namespace; pasta runs here)        REMOTE (/run/netns/remote)
#   eth0 192.0.2.2/24 2001:db8:1::2/64  <-veth->  eth0 192.0.2.1/24 2001:db8:1::1/64
#   default via 192.0.2.1, 2001:db8:1::1          lo 203.0.113.1/32 2001:db8:2::1/128
#                                                 (a host one hop beyond the gateway)
#
# plus /etc/resolv.conf (a bind mount, seen only in here), ping sockets allowed for
# every mapped group in both namespaces, and (not in root mode) a second user namespace
# at /run/sandbox/userns in which sandbox uid $SANDBOX_USER_ID (default 1000) is
# mapped, so that pasta can run as an ordinary unprivileged user would.
#
# Before anything else it checks that its network and mount namespaces are not those
# of the caller (SANDBOX_OUTER_NET, SANDBOX_OUTER_MNT: what /proc/self/ns/net and mnt
# read there), and refuses to run if they are.
#
# It prints "ready" on stdout, then becomes a small init (perl is in every Debian):
# it reaps orphans, so that a finished daemon never lingers as a zombie, and reads
# stdin until the test closes the pipe (or dies). Then it exits, and the kernel kills
# everything left in the PID namespace: the sandbox's guaranteed cleanup.
set -eu

user_id=${SANDBOX_USER_ID:-1000}
root_mode=${SANDBOX_ROOT:-0}

# Refuses to go on unless /proc/self/ns/$1 differs from $2, the caller's.
must_differ() {
  mine=$(readlink "/proc/self/ns/$1")
  if [ -z "$2" ] || [ "$2" = "$mine" ]; then
    echo "setup.sh: $1 namespace $mine is not a new one: refusing to run" >&2
    exit 1
  fi
}
must_differ net "${SANDBOX_OUTER_NET:-}"
must_differ mnt "${SANDBOX_OUTER_MNT:-}"

mount -t tmpfs -o mode=0755 sandbox-run /run
mkdir -p /run/netns /run/sandbox
chmod 1777 /run/sandbox

# The remote namespace, held by a bind mount as `ip netns add` would.
touch /run/netns/remote
unshare --net=/run/netns/remote true
in_remote() { nsenter --net=/run/netns/remote "$@"; }

ip link set lo up
ip link add eth0 mtu 1500 type veth peer name veth-remote mtu 1500 netns /run/netns/remote
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad
ip route add default via 192.0.2.1 dev eth0
ip -6 route add default via 2001:db8:1::1 dev eth0

in_remote ip link set lo up
in_remote ip link set veth-remote name eth0
in_remote ip link set eth0 up
in_remote ip addr add 192.0.2.1/24 dev eth0
in_remote ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad
in_remote ip addr add 203.0.113.1/32 dev lo
in_remote ip -6 addr add 2001:db8:2::1/128 dev lo
in_remote sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/forwarding'

# ping_group_range can only name groups mapped in our user namespace: with
# --map-root-user that is group 0 alone (the real group of whoever runs the tests);
# in root mode, every group up to the largest the kernel takes there (2^31 - 1).
groups=$(awk 'NR == 1 { h = $1 + $3 - 1; if (h > 2147483647) h = 2147483647; print $1, h }' \
  /proc/self/gid_map)
echo "$groups" > /proc/sys/net/ipv4/ping_group_range
in_remote sh -c "echo '$groups' > /proc/sys/net/ipv4/ping_group_range"

printf 'nameserver 192.0.2.1\nnameserver 2001:db8:1::1\nsearch example.test\n' \
  > /run/sandbox/resolv.conf
resolv=/etc/resolv.conf
[ -L "$resolv" ] && resolv=$(readlink -m "$resolv")
if [ ! -e "$resolv" ]; then
  # A link into /run (systemd-resolved's) dangles in our new tmpfs: make its directory
  # there, and only there (elsewhere is the machine's file system).
  case $resolv in /run/*) mkdir -p "$(dirname "$resolv")" ;; esac
  touch "$resolv"
fi
mount --bind /run/sandbox/resolv.conf "$resolv"

if [ "$root_mode" = 1 ] && [ -c /dev/net/tun ]; then
  # Distributions ship /dev/net/tun mode 0666; this machine's is 0600. For the
  # machine's uid 1000 to run pasta, a 0666 node of the same device covers it,
  # in this mount namespace only.
  mknod -m 0666 /run/sandbox/tun c 10 200
  mount --bind /run/sandbox/tun /dev/net/tun
fi

if [ "$root_mode" != 1 ]; then
  # The unprivileged user's namespace: its uid and gid map to ours (0 here, the real
  # uid outside). A process holds it until the bind mount does.
  unshare --user --map-user="$user_id" --map-group="$user_id" sleep 30 &
  holder=$!
  touch /run/sandbox/userns
  i=0
  until [ "$(readlink "/proc/$holder/ns/user")" != "$(readlink /proc/self/ns/user)" ]; do
    i=$((i + 1))
    [ "$i" -le 200 ] || { echo "setup.sh: user namespace holder did not start" >&2; exit 1; }
    sleep 0.01
  done
  until grep -q "$user_id" "/proc/$holder/uid_map"; do
    i=$((i + 1))
    [ "$i" -le 400 ] || { echo "setup.sh: user namespace was not mapped" >&2; exit 1; }
    sleep 0.01
  done
  mount --bind "/proc/$holder/ns/user" /run/sandbox/userns
  kill "$holder"
fi

echo ready
exec perl -e 'use POSIX ":sys_wait_h";
  $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
  1 while sysread(STDIN, my $buf, 4096) // $!{EINTR};' 
