/* raftops.h - the steps of fuzz_raft's programs, shared with the seed generator (mkcorpus.c). */
#ifndef TESTS_FUZZ_RAFTOPS_H
#define TESTS_FUZZ_RAFTOPS_H

/* A program is byte 0 (the seed) then steps: an opcode byte (modulo FUZZ_OP_COUNT) and its
 * operand bytes, as tests/fuzz/fuzz_raft.c reads them. */
enum fuzz_raft_op {
	FUZZ_OP_TICK, /* node */
	FUZZ_OP_TICK_ALL, /* count: 1 + count % 16 ticks of every node */
	FUZZ_OP_RUN, /* k: runs the k-th (modulo) waiting delivery or persist */
	FUZZ_OP_RUN_FIRST, /* runs the oldest */
	FUZZ_OP_RUN_MANY, /* count: the oldest, 1 + count % 64 times */
	FUZZ_OP_DROP, /* k */
	FUZZ_OP_DUPLICATE, /* k */
	FUZZ_OP_REPLAY, /* k: the k-th newest message sent, again */
	FUZZ_OP_PROPOSE, /* node */
	FUZZ_OP_READ, /* node */
	FUZZ_OP_TRANSFER, /* node, target (0: any) */
	FUZZ_OP_CRASH, /* node */
	FUZZ_OP_RESTART, /* node */
	FUZZ_OP_FORGE, /* node, type, from, to, term, the type's fields (fuzz_raft.c forge()) */
	FUZZ_OP_LEADER_APPEND, /* leader, follower, back, commit, count */
	FUZZ_OP_LEADER_HEARTBEAT, /* leader, follower, commit, read round */
	FUZZ_OP_LEADER_SNAPSHOT, /* leader, follower, offset, len */
	FUZZ_OP_COUNT
};

#endif /* TESTS_FUZZ_RAFTOPS_H */
