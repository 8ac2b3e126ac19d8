/* test_sim.c - thousands of seeded cluster simulations of the Raft core under every fault mix. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/lib/cu.h"
#include "tests/lib/sim.h"
#include "tests/lib/simcli.h"

/* make check runs SIM_SEEDS_PER_MIX seeds of each of the 7 mixes (3 and 5 nodes alternating):
 * 7,000 seeds in all. SIM_SEEDS_SCALE (environment) multiplies it. */
#define SIM_SEEDS_PER_MIX 1000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned seeds_per_mix(void)
{
	const char *scale = getenv("SIM_SEEDS_SCALE");
	double f = scale ? atof(scale) : 1.0;
	unsigned n = (unsigned)(SIM_SEEDS_PER_MIX * (f > 0 ? f : 1.0));
	return n ? n : 1;
}

/* Runs seeds of one mix; returns the number of failures (each printed with its replay command). */
static unsigned run_mix(enum sim_mix mix, uint64_t first, unsigned count)
{
	unsigned failures = 0;
	uint64_t events = 0, acked = 0, reads = 0, installs = 0, refused = 0, crashes = 0, disk = 0,
	         cuts = 0;
	double t0 = now_s();

	for (unsigned k = 0; k < count; k++) {
		struct sim_options opt;
		struct sim_result res;
		sim_plan(mix, k, &opt);
		if (first)
			opt.seed = first + k; /* soak: seeds beyond the plan */
		if (!sim_run(&opt, &res)) {
			failures++;
			printf("\nsim: seed %llu (%s, %u nodes) FAILED: %s\n"
			       "  replay: tests/test_sim --seed=%llu --mix=%d --nodes=%u --trace\n",
			       (unsigned long long)opt.seed, sim_mix_name(mix), opt.nodes,
			       res.error, (unsigned long long)opt.seed, (int)mix, opt.nodes);
			if (failures >= 5)
				break;
		}
		events += res.events;
		acked += res.proposals_acked;
		reads += res.reads_ok;
		installs += res.snapshots_installed;
		refused += res.snapshots_refused;
		crashes += res.crashes;
		disk += res.disk_faults;
		cuts += res.tails_cut;
	}
	double dt = now_s() - t0;
	printf("\n  sim %-9s %4u seeds in %5.2fs (%6.1f seeds/s): %llu events, %llu writes acked, "
	       "%llu reads, %llu snapshot installs (%llu refused), %llu crashes (%llu disk faults, "
	       "%llu synced tails cut)",
	       sim_mix_name(mix), count, dt, count / (dt > 0 ? dt : 1e-9),
	       (unsigned long long)events, (unsigned long long)acked, (unsigned long long)reads,
	       (unsigned long long)installs, (unsigned long long)refused,
	       (unsigned long long)crashes, (unsigned long long)disk, (unsigned long long)cuts);
	return failures;
}

#define MIX_TEST(name, mix, base)                                                                  \
	static void name(void)                                                                     \
	{                                                                                          \
		CU_ASSERT_EQUAL(run_mix(mix, base, seeds_per_mix()), 0);                           \
	}

MIX_TEST(test_clean_network_elects_and_commits, SIM_MIX_CLEAN, 0)
MIX_TEST(test_lossy_network_keeps_every_safety_property, SIM_MIX_LOSSY, 0)
MIX_TEST(test_symmetric_partitions_keep_every_safety_property, SIM_MIX_PARTITION, 0)
MIX_TEST(test_one_way_partitions_keep_every_safety_property, SIM_MIX_ONE_WAY, 0)
MIX_TEST(test_crashes_and_restarts_lose_nothing_acknowledged, SIM_MIX_CRASH, 0)
MIX_TEST(test_all_faults_at_once_keep_every_safety_property, SIM_MIX_ALL, 0)
MIX_TEST(test_leader_churn_keeps_every_safety_property, SIM_MIX_CHURN, 0)

static void test_same_seed_replays_identically(void)
{
	struct sim_options opt = {.seed = 42, .mix = SIM_MIX_ALL, .nodes = 5};
	struct sim_result a, b;

	CU_ASSERT_TRUE(sim_run(&opt, &a));
	CU_ASSERT_TRUE(sim_run(&opt, &b));
	CU_ASSERT_EQUAL(a.events, b.events);
	CU_ASSERT_EQUAL(a.committed, b.committed);
	CU_ASSERT_EQUAL(a.proposals_acked, b.proposals_acked);
	CU_ASSERT_EQUAL(a.elections, b.elections);
	CU_ASSERT_TRUE(a.committed > 0);
}

static CU_TestInfo sim_tests[] = {
        {"test_same_seed_replays_identically", test_same_seed_replays_identically},
        {"test_clean_network_elects_and_commits", test_clean_network_elects_and_commits},
        {"test_lossy_network_keeps_every_safety_property",
         test_lossy_network_keeps_every_safety_property},
        {"test_symmetric_partitions_keep_every_safety_property",
         test_symmetric_partitions_keep_every_safety_property},
        {"test_one_way_partitions_keep_every_safety_property",
         test_one_way_partitions_keep_every_safety_property},
        {"test_crashes_and_restarts_lose_nothing_acknowledged",
         test_crashes_and_restarts_lose_nothing_acknowledged},
        {"test_all_faults_at_once_keep_every_safety_property",
         test_all_faults_at_once_keep_every_safety_property},
        {"test_leader_churn_keeps_every_safety_property",
         test_leader_churn_keeps_every_safety_property},
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        {"sim", NULL, NULL, NULL, NULL, sim_tests},
        CU_SUITE_INFO_NULL,
};

static int usage(void)
{
	fprintf(stderr,
	        "usage: tests/test_sim [SUITE[:TEST]]\n"
	        "       tests/test_sim --seed=N [--mix=M] [--nodes=3|5] [--trace]\n"
	        "       tests/test_sim --soak [--seeds=N] [--start=S]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sim_options opt = {.mix = -1};
	struct simcli cli = {.seeds = 20000};

	if (simcli_parse(argc, argv, &cli, SIM_MIX_COUNT, true) != 0)
		return usage();
	if (cli.suites)
		return cu_main(argc, argv, suites);
	opt.seed = cli.seed;
	opt.mix = cli.mix;
	opt.nodes = cli.nodes;
	opt.trace = cli.trace;
	if (cli.replay) {
		struct sim_result res;
		bool ok = sim_run(&opt, &res);
		printf("seed %llu (%s, %u nodes): %s%s\n  %llu events, committed %llu, %llu writes "
		       "acked, %llu reads, %llu elections, %llu snapshot installs (%llu refused), %llu "
		       "crashes (%llu disk faults, %llu synced tails cut)\n",
		       (unsigned long long)opt.seed, sim_mix_name(res.mix), res.nodes,
		       ok ? "ok" : "FAILED: ", ok ? "" : res.error, (unsigned long long)res.events,
		       (unsigned long long)res.committed, (unsigned long long)res.proposals_acked,
		       (unsigned long long)res.reads_ok, (unsigned long long)res.elections,
		       (unsigned long long)res.snapshots_installed,
		       (unsigned long long)res.snapshots_refused, (unsigned long long)res.crashes,
		       (unsigned long long)res.disk_faults, (unsigned long long)res.tails_cut);
		return ok ? 0 : 1;
	}
	if (cli.soak) {
		unsigned failures = 0;
		unsigned long long per = cli.seeds / SIM_MIX_COUNT + 1;
		for (int m = 0; m < SIM_MIX_COUNT; m++)
			failures += run_mix((enum sim_mix)m, cli.start + m * 100000000ULL,
			                    (unsigned)per);
		printf("\nsoak: %llu seeds, %u failed\n", per * SIM_MIX_COUNT, failures);
		return failures ? 1 : 0;
	}
	return cu_main(argc, argv, suites);
}
