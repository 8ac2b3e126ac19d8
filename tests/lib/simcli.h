/* simcli.h - the command line shared by the seeded simulators (test_sim, test_nodesim). */
#ifndef TESTS_LIB_SIMCLI_H
#define TESTS_LIB_SIMCLI_H

#include <stdbool.h>

/*
 *   PROG [SUITE[:TEST]]                      the CUnit suites (one selected)
 *   PROG --seed=N [--mix=M] [--nodes=K] [--trace | --trace-msgs]   replay one seed
 *   PROG --soak [--seeds=N] [--start=S]      many seeds of every mix
 */
struct simcli {
	bool replay; /* --seed given */
	bool soak;
	unsigned long long seed;
	int mix; /* -1: not given */
	unsigned nodes; /* 0: not given */
	int trace; /* 0; 1 --trace; 2 --trace-msgs */
	unsigned long long seeds; /* --seeds (the caller's default when not given) */
	unsigned long long start; /* --start (default 1) */
	bool suites; /* neither replay nor soak: run the CUnit suites */
};

/* Parses argv into c (c->seeds holds the default on entry). mixes: the number of mixes (--mix
 * must be below it); trace_msgs: whether --trace-msgs exists. -1 on a bad or misplaced
 * argument: the caller prints its usage. */
int simcli_parse(int argc, char **argv, struct simcli *c, int mixes, bool trace_msgs);

#endif
