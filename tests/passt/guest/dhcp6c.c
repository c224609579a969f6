/*
 * dhcp6c: the smallest DHCPv6 client the passt test guest needs (busybox has
 * none): one SOLICIT with Rapid Commit on IFNAME to ff02::1:2, then the
 * address of the first IA_NA in the REPLY (or ADVERTISE) is printed.
 * Retries three times, 2 s each.
 * Built statically by build.sh; test tooling only, never part of the product.
 *
 *   dhcp6c IFNAME          prints "ADDR" or "none", exit 0 / 1
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static size_t put_opt(unsigned char *p, unsigned code, const void *data, unsigned len)
{
	p[0] = code >> 8;
	p[1] = code & 0xff;
	p[2] = len >> 8;
	p[3] = len & 0xff;
	if (len)
		memcpy(p + 4, data, len);
	return 4 + len;
}

int main(int argc, char **argv)
{
	unsigned char msg[128], reply[1500], duid[10], ia[12] = { 0, 0, 0, 1 };
	struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(546) };
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_port = htons(547) };
	struct timeval tv = { .tv_sec = 2 };
	struct ifreq ifr = { 0 };
	unsigned short zero = 0;
	char text[INET6_ADDRSTRLEN];
	size_t n;
	int s, attempt;

	if (argc != 2)
		return 2;
	s = socket(AF_INET6, SOCK_DGRAM, 0);
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr) ||
	    setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, argv[1], strlen(argv[1])) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(s, (struct sockaddr *)&any, sizeof(any))) {
		perror("dhcp6c");
		return 1;
	}
	inet_pton(AF_INET6, "ff02::1:2", &to.sin6_addr);
	to.sin6_scope_id = if_nametoindex(argv[1]);
	duid[0] = 0, duid[1] = 3, duid[2] = 0, duid[3] = 1; /* DUID-LL, Ethernet */
	memcpy(duid + 4, ifr.ifr_hwaddr.sa_data, 6);

	for (attempt = 0; attempt < 3; attempt++) {
		size_t len = 4;
		ssize_t got;

		msg[0] = 1; /* SOLICIT */
		msg[1] = 0x12, msg[2] = 0x34, msg[3] = attempt;
		len += put_opt(msg + len, 1, duid, sizeof(duid)); /* CLIENTID */
		len += put_opt(msg + len, 3, ia, sizeof(ia));      /* IA_NA */
		len += put_opt(msg + len, 8, &zero, 2);            /* ELAPSED_TIME */
		len += put_opt(msg + len, 14, NULL, 0);            /* RAPID_COMMIT */
		if (sendto(s, msg, len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			continue;
		got = recv(s, reply, sizeof(reply), 0);
		if (got < 4 || (reply[0] != 7 && reply[0] != 2) ||
		    memcmp(reply + 1, msg + 1, 3))
			continue;
		for (n = 4; n + 4 <= (size_t)got;) {
			unsigned code = reply[n] << 8 | reply[n + 1];
			unsigned olen = reply[n + 2] << 8 | reply[n + 3];
			size_t sub;

			if (n + 4 + olen > (size_t)got)
				break;
			for (sub = n + 16; code == 3 && sub + 4 <= n + 4 + olen;) {
				unsigned scode = reply[sub] << 8 | reply[sub + 1];
				unsigned slen = reply[sub + 2] << 8 | reply[sub + 3];
				if (scode == 5 && slen >= 24) { /* IAADDR */
					inet_ntop(AF_INET6, reply + sub + 4, text, sizeof(text));
					printf("%s\n", text);
					return 0;
				}
				sub += 4 + slen;
			}
			n += 4 + olen;
		}
	}
	printf("none\n");
	return 1;
}
