/* netpolicy_bench: (1) sandbox network set-up time per sandbox (namespace,
 * veth, addresses, routes) for 50 sandboxes; (2) replacing the whole
 * ruleset of 50 sandboxes x 20 CIDRs in one transaction, median of 20.
 * Run it in a throwaway network + mount namespace (bench_netpolicy.sh). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netpolicy/netpolicy.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	enum { NS = 50, NR = 20, ROUNDS = 20 };
	static struct netpolicy_sandbox sbs[NS];
	static struct netpolicy_rule rules[NS][NR];
	static char names[NS][16];
	static uint16_t port = 5432;
	for (int i = 0; i < NS; i++) {
		snprintf(names[i], sizeof(names[i]), "b%02d", i);
		for (int k = 0; k < NR; k++) {
			struct netpolicy_rule *r = &rules[i][k];
			r->to.family = AF_INET;
			r->to.addr[0] = 10;
			r->to.addr[1] = (uint8_t)i;
			r->to.addr[2] = (uint8_t)k;
			r->to.prefix = 24;
			r->proto = 6;
			r->ports = &port;
			r->n_ports = 1;
		}
		sbs[i] =
		    (struct netpolicy_sandbox){.name = names[i], .rules = rules[i], .n_rules = NR};
	}
	struct netpolicy_config cfg = {.table = "pstbench",
	                               .ifprefix = "pst",
	                               .state_dir = "/tmp/postern-bench-np",
	                               .sandboxes = sbs,
	                               .n_sandboxes = NS};
	inet_pton(AF_INET, "100.127.0.0", cfg.pool4.addr);
	cfg.pool4.family = AF_INET, cfg.pool4.prefix = 16;
	inet_pton(AF_INET6, "fd70:6f73::", cfg.pool6.addr);
	cfg.pool6.family = AF_INET6, cfg.pool6.prefix = 48;

	struct netpolicy *np;
	struct netpolicy_error err = {0};
	double t = now_ms();
	if (netpolicy_create(&cfg, &np, &err) < 0) {
		fprintf(stderr, "netpolicy_bench: %s\n", err.msg);
		return 1;
	}
	double create = now_ms() - t;
	double r[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		rules[0][0].to.addr[3] = 0;
		rules[0][0].to.addr[2] = (uint8_t)(100 + i); /* a real change each time */
		t = now_ms();
		if (netpolicy_reload(np, &cfg, &err) < 0) {
			fprintf(stderr, "netpolicy_bench: %s\n", err.msg);
			return 1;
		}
		r[i] = now_ms() - t;
	}
	qsort(r, ROUNDS, sizeof(r[0]), cmpd);
	printf("network set-up, %d sandboxes with egress: %.1f ms total, %.2f ms per sandbox "
	       "(target < 5 ms)\n",
	       NS, create, create / NS);
	printf("ruleset of %d sandboxes x %d CIDRs in one transaction: median %.1f ms, max %.1f ms "
	       "over %d (target < 50 ms)\n",
	       NS, NR, r[ROUNDS / 2], r[ROUNDS - 1], ROUNDS);
	netpolicy_destroy(np, &err);
	return 0;
}
