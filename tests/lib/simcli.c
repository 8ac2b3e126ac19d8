/* simcli.c - the command line shared by the seeded simulators. */
#include "tests/lib/simcli.h"

#include <stdlib.h>
#include <string.h>

/* A decimal number after prefix, the whole rest of the argument. */
static bool num_arg(const char *a, const char *prefix, unsigned long long *v)
{
	size_t n = strlen(prefix);
	char *end;

	if (strncmp(a, prefix, n) != 0 || a[n] == '\0')
		return false;
	*v = strtoull(a + n, &end, 10);
	return *end == '\0';
}

int simcli_parse(int argc, char **argv, struct simcli *c, int mixes, bool trace_msgs)
{
	unsigned long long seeds = c->seeds, v;

	memset(c, 0, sizeof(*c));
	c->mix = -1;
	c->seeds = seeds;
	c->start = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (num_arg(a, "--seed=", &c->seed)) {
			c->replay = true;
		} else if (num_arg(a, "--mix=", &v)) {
			if (v >= (unsigned long long)mixes)
				return -1;
			c->mix = (int)v;
		} else if (num_arg(a, "--nodes=", &v)) {
			if (v > 1000)
				return -1;
			c->nodes = (unsigned)v;
		} else if (strcmp(a, "--trace") == 0) {
			c->trace = 1;
		} else if (trace_msgs && strcmp(a, "--trace-msgs") == 0) {
			c->trace = 2;
		} else if (strcmp(a, "--soak") == 0) {
			c->soak = true;
		} else if (num_arg(a, "--seeds=", &c->seeds)) {
		} else if (num_arg(a, "--start=", &c->start)) {
		} else if (a[0] == '-' || i != argc - 1) {
			return -1;
		}
	}
	c->suites = !c->replay && !c->soak;
	/* a suite selector goes alone (cu_main reads argv[1]); options go without one */
	if (c->suites ? argc > 2 || (argc == 2 && argv[1][0] == '-') : argv[argc - 1][0] != '-')
		return -1;
	return 0;
}
