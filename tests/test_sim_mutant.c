/* test_sim_mutant.c - proves the simulator can fail: a core built with a broken commit rule
 * (RAFT_MUTANT_COMMIT_OLD_TERMS: entries of earlier terms committed by counting replicas,
 * paper Figure 8) must be caught by the same seeds that make check runs on the real core. */
#include <CUnit/CUnit.h>
#include <stdio.h>

#include "tests/lib/cu.h"
#include "tests/lib/sim.h"

#ifndef RAFT_MUTANT_COMMIT_OLD_TERMS
#error "test_sim_mutant must be linked with the mutant core (see Makefile.in)"
#endif

#define PLAN_SEEDS_PER_MIX 1000 /* as tests/test_sim.c runs in make check */

static void test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds(void)
{
	unsigned caught = 0, runs = 0;

	for (int m = 0; m < SIM_MIX_COUNT; m++) {
		for (unsigned k = 0; k < PLAN_SEEDS_PER_MIX; k++) {
			struct sim_options opt;
			struct sim_result res;
			sim_plan((enum sim_mix)m, k, &opt);
			runs++;
			if (!sim_run(&opt, &res)) {
				caught++;
				if (caught <= 3)
					printf("\n  caught by seed %llu (%s, %u nodes): %s",
					       (unsigned long long)opt.seed, sim_mix_name(m),
					       opt.nodes, res.error);
			}
		}
	}
	printf("\n  mutant caught by %u of %u runs\n", caught, runs);
	CU_ASSERT_TRUE(caught > 0);
}

static CU_TestInfo mutant_tests[] = {
        {"test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds",
         test_broken_figure_8_commit_rule_is_caught_by_make_check_seeds},
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
