#!/bin/sh
# init of the passt test guest (see build.sh): brings up eth0 through passt's
# DHCP and SLAAC, then exercises ICMP, TCP, UDP and a host-to-guest forward,
# printing one "GUEST: ..." line per result on the console, and powers off.
# Parameters come from the kernel command line: guest.http=PORT (a file served
# at /blob on the host's loopback), guest.tcp=PORT (where to listen for the
# host's connection through passt -t), guest.name=NAME (resolved through the
# host's DNS responder), guest.gw6=ADDR (an IPv6 address to ping).
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec >/dev/console 2>&1
say() { echo "GUEST: $*"; }
for w in $(cat /proc/cmdline); do
  case $w in
  guest.*=*) k=${w#guest.} && eval "G_${k%%=*}='${k#*=}'" ;;
  esac
done
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || say "insmod $m failed"
done
ip link set lo up
ip link set eth0 up || say "no eth0"
say "link $(cat /sys/class/net/eth0/address)"

cat >/tmp/udhcpc.script <<'SCRIPT'
#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
for r in $router; do ip route add default via "$r" dev "$interface"; break; done
echo "lease ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu domain=$domain search=$search" >/tmp/lease
SCRIPT
chmod 755 /tmp/udhcpc.script
udhcpc -i eth0 -n -q -f -t 5 -T 2 -s /tmp/udhcpc.script -O mtu -O dns -O search >/tmp/udhcpc.log 2>&1 ||
  { say "udhcpc failed"; cat /tmp/udhcpc.log; }
[ -f /tmp/lease ] && say "$(cat /tmp/lease)"
router=$(ip -4 route show default | awk '{print $3; exit}')

addr6=
for i in $(seq 1 50); do
  addr6=$(ip -6 addr show dev eth0 scope global | awk '/inet6/ {print $2; exit}')
  [ -n "$addr6" ] && break
  sleep 0.2
done
say "slaac ${addr6:-none} via $(ip -6 route show default | awk '{print $3; exit}')"
say "dhcpv6 $(dhcp6c eth0 2>&1)"

ping -c 1 -W 5 "$router" >/dev/null 2>&1 && say "ping4 $router ok" || say "ping4 $router failed"
[ -n "$G_gw6" ] && { ping -c 1 -W 5 "$G_gw6" >/dev/null 2>&1 && say "ping6 $G_gw6 ok" || say "ping6 $G_gw6 failed"; }

sum=$(wget -q -O - "http://$router:$G_http/blob" | sha256sum | cut -d' ' -f1)
say "sha256 $sum"

answer=$(nslookup "$G_name" "$router" 2>&1 | awk '/^Address/ {a=$NF} END {print a}')
say "dns $G_name $answer"

cat >/tmp/serve.sh <<'SCRIPT'
#!/bin/sh
read line
echo "GUEST: tcp got $line" >/dev/console
echo "reply:$line"
SCRIPT
chmod 755 /tmp/serve.sh
nc -l -p "$G_tcp" -e /tmp/serve.sh &
server=$!
say "listening $G_tcp"
for i in $(seq 1 100); do
  kill -0 $server 2>/dev/null || break
  sleep 0.2
done
kill -0 $server 2>/dev/null && { say "tcp timed out"; kill $server; }
sleep 0.3
say "done"
poweroff -f
