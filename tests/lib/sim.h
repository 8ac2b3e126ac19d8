/* sim.h - deterministic cluster simulator for the Raft core: one seed drives every choice. */
#ifndef TESTS_LIB_SIM_H
#define TESTS_LIB_SIM_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A run simulates 3 or 5 cores over a network that drops, duplicates, reorders and delays
 * messages and partitions nodes (symmetric and one-way), with crashes that lose everything not
 * yet synced, restarts from what was synced, snapshots, InstallSnapshot, ReadIndex reads and
 * leadership transfers. Each node keeps its durable state in a real struct raft_storage over its
 * own in-memory file system (raft_vfs_mem): a crash keeps exactly what was synced, sometimes
 * with a torn last record, and a restart recovers through raft_storage_open. The crash mixes
 * also cut power in the middle of persists, arm I/O errors (EIO, ENOSPC) that stop a node, give
 * some nodes a slow disk, and cut synced records off the end of a crashed node's log (entries it
 * acknowledged; only ones a majority of the other nodes hold: sim.c cut_acknowledged_tail). The
 * lossy mixes spoil a few snapshot chunks on their way. Time is simulated milliseconds; events at the same instant run in the
 * order they were scheduled. After every event the safety properties are checked:
 *   - election safety: at most one leader per term;
 *   - state-machine safety: no two nodes apply different entries at one index, and each node
 *     applies indexes in order without gaps;
 *   - leader completeness: a new leader holds every entry any node has applied;
 *   - log matching (every 64 events and at the end): two logs with an entry of the same index and
 *     term agree on every term before it;
 *   - read safety: a read index is at least every commit index known when the read was asked.
 * After the fault phase everything heals and liveness is checked: a leader within a bounded
 * time, and a proposal committed on every node.
 */

enum sim_mix {
	SIM_MIX_CLEAN = 0, /* no faults: a baseline */
	SIM_MIX_LOSSY, /* drop, duplicate, reorder, delay */
	SIM_MIX_PARTITION, /* symmetric partitions, isolated leaders */
	SIM_MIX_ONE_WAY, /* one-way links */
	SIM_MIX_CRASH, /* kill and restart (unsynced state lost), disk faults, leadership transfer */
	SIM_MIX_ALL, /* all of the above at once */
	SIM_MIX_CHURN, /* new leaders crash or are cut off within milliseconds (Figure 8) */
	SIM_MIX_COUNT
};

const char *sim_mix_name(enum sim_mix mix);

struct sim_options {
	uint64_t seed;
	int mix; /* enum sim_mix, or -1: chosen from the seed */
	unsigned nodes; /* 3 or 5; 0: chosen from the seed */
	unsigned fault_ms; /* length of the fault phase (default 3000) */
	int trace; /* 1: print events to stderr; 2: also every message delivered */
};

struct sim_result {
	bool ok;
	char error[512]; /* first violated property, with the time and nodes involved */
	uint64_t events;
	uint64_t committed; /* highest index applied by every node at the end */
	uint64_t proposals_acked;
	uint64_t reads_ok;
	uint64_t elections; /* terms that had a leader */
	uint64_t snapshots_installed;
	uint64_t snapshots_refused; /* images spoiled on their way and refused by their CRC */
	uint64_t tails_cut; /* crashes whose disk also lost a synced (acknowledged) tail */
	uint64_t crashes; /* including nodes stopped by a disk fault */
	uint64_t
	        disk_faults; /* nodes stopped by an injected I/O error or a power cut mid-persist */
	unsigned mix;
	unsigned nodes;
};

/* The k-th run of mix in the plan that make check follows (seed, mix, 3 or 5 nodes). */
void sim_plan(enum sim_mix mix, unsigned k, struct sim_options *opt);

/* Runs one seed. Returns res->ok. */
bool sim_run(const struct sim_options *opt, struct sim_result *res);

#endif
