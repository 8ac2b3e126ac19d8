/* test_sim_mutant.c - proves the simulator can fail: a core with a deliberately broken rule
 * (raft.h enum raft_mutant, compiled only into this program) must be caught by the same seeds
 * that make check runs on the real core. */
#include <CUnit/CUnit.h>
#include <stdio.h>

#include "raft/raft.h"
#include "tests/lib/cu.h"
#include "tests/lib/sim.h"

#ifndef RAFT_MUTANTS
#error "test_sim_mutant must be linked with the mutant core (see Makefile.in)"
#endif

#define PLAN_SEEDS_PER_MIX 1000 /* as tests/test_sim.c runs in make check */

/* Runs the plan's seeds of the given mixes with mutant on, all of them or (enough != 0) until
 * that many caught it; returns how many did. */
static unsigned catch_mutant(enum raft_mutant mutant, const enum sim_mix *mixes, size_t n_mixes,
                             unsigned enough)
{
	unsigned caught = 0, runs = 0;

	raft_mutant = mutant;
	for (size_t m = 0; m < n_mixes && (!enough || caught < enough); m++) {
		for (unsigned k = 0; k < PLAN_SEEDS_PER_MIX && (!enough || caught < enough); k++) {
			struct sim_options opt;
			struct sim_result res;
			sim_plan(mixes[m], k, &opt);
			runs++;
			if (!sim_run(&opt, &res)) {
				caught++;
				if (caught <= 3)
					printf("\n  caught by seed %llu (%s, %u nodes): %s",
					       (unsigned long long)opt.seed, sim_mix_name(mixes[m]),
					       opt.nodes, res.error);
			}
		}
	}
	raft_mutant = RAFT_MUTANT_NONE;
	printf("\n  mutant caught by %u of %u runs\n", caught, runs);
	return caught;
}

/* Paper Figure 8: entries of an earlier term committed by counting replicas. */
static void test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds(void)
{
	static const enum sim_mix all[] = {SIM_MIX_CLEAN,   SIM_MIX_LOSSY, SIM_MIX_PARTITION,
	                                   SIM_MIX_ONE_WAY, SIM_MIX_CRASH, SIM_MIX_ALL,
	                                   SIM_MIX_CHURN};

	CU_ASSERT_TRUE(catch_mutant(RAFT_MUTANT_COMMIT_OLD_TERMS, all, sizeof(all) / sizeof(all[0]),
	                            0) > 0);
}

/* A leader that never lowers a follower's match: a follower whose disk lost an acknowledged
 * tail (the crash mixes cut some) never gets it back under that leader. The seeds run until five
 * caught it (of all 3000, 133 did), to keep make check short. */
static void test_a_leader_that_never_backs_off_below_match_is_caught_by_make_check_seeds(void)
{
	static const enum sim_mix cut[] = {SIM_MIX_CRASH, SIM_MIX_ALL, SIM_MIX_CHURN};

	CU_ASSERT_EQUAL(catch_mutant(RAFT_MUTANT_KEEP_MATCH, cut, sizeof(cut) / sizeof(cut[0]), 5),
	                5);
}

static CU_TestInfo mutant_tests[] = {
        {"test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds",
         test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds},
        {"test_a_leader_that_never_backs_off_below_match_is_caught_by_make_check_seeds",
         test_a_leader_that_never_backs_off_below_match_is_caught_by_make_check_seeds},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"sim_mutant", NULL, NULL, NULL, NULL, mutant_tests},
        CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
	return cu_main(argc, argv, suites);
}
