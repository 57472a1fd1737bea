/* net-job: plays a restored job on a proxied connection. Given the socket at fd FD and where
 * the old job stopped (bytes it had sent and read), it sends the rest of its stream and checks
 * that what it reads continues exactly where the old job's reading stopped.
 * usage: net-job FD TOTAL SENT RECVD SEED_OUT SEED_IN; exit 0 when all is exact. */
#include "net-stream.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: net-job FD TOTAL SENT RECVD SEED_OUT SEED_IN\n");
		return 2;
	}
	struct ns_peer p = {
		.fd = atoi(argv[1]),
		.total = strtoull(argv[2], NULL, 0),
		.sent = strtoull(argv[3], NULL, 0),
		.recvd = strtoull(argv[4], NULL, 0),
		.seed_out = strtoull(argv[5], NULL, 0),
		.seed_in = strtoull(argv[6], NULL, 0),
	};
	int r = ns_peer_run(&p);
	if (r != 0) {
		fprintf(stderr, "net-job: failed (%d) at sent %llu recvd %llu\n", r,
			(unsigned long long)p.sent, (unsigned long long)p.recvd);
		return 1;
	}
	return 0;
}
