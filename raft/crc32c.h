/* crc32c.h - CRC-32C (Castagnoli), the checksum of every framed record and message. */
#ifndef RAFT_CRC32C_H
#define RAFT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc (0 to start) with len bytes at buf and returns the new value, so that
 * raft_crc32c(raft_crc32c(0, a, n), b, m) equals the CRC of a followed by b.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; both give the same
 * result (the standard CRC-32C: raft_crc32c(0, "123456789", 9) == 0xe3069283).
 */
uint32_t raft_crc32c(uint32_t crc, const void *buf, size_t len);

/* The table implementation alone (for tests comparing the two). */
uint32_t raft_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif /* RAFT_CRC32C_H */
