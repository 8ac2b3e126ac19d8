/* crc32c.c - CRC-32C: slicing-by-8 tables, and the SSE4.2 instruction where the CPU has it. */
#include "raft/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY_REFLECTED 0x82f63b78u

/* tables[k][b]: CRC of byte b followed by k zero bytes; built once, on first use. */
static uint32_t crc_tables[8][256];
static pthread_once_t crc_tables_once = PTHREAD_ONCE_INIT;

static void crc_tables_build(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc_tables[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			crc_tables[k][b] = (crc_tables[k - 1][b] >> 8) ^
			        crc_tables[0][crc_tables[k - 1][b] & 0xff];
}

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint32_t raft_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	pthread_once(&crc_tables_once, crc_tables_build);
	while (len >= 8) {
		uint64_t v = load_le64(p) ^ c;
		c = crc_tables[7][v & 0xff] ^ crc_tables[6][(v >> 8) & 0xff] ^
		        crc_tables[5][(v >> 16) & 0xff] ^ crc_tables[4][(v >> 24) & 0xff] ^
		        crc_tables[3][(v >> 32) & 0xff] ^ crc_tables[2][(v >> 40) & 0xff] ^
		        crc_tables[1][(v >> 48) & 0xff] ^ crc_tables[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ crc_tables[0][(c ^ *p++) & 0xff];
	return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HW 1

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                            size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

static pthread_once_t crc_hw_once = PTHREAD_ONCE_INIT;
static int crc_have_hw;

static void crc_hw_detect(void)
{
	__builtin_cpu_init();
	crc_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
}
#endif

uint32_t raft_crc32c(uint32_t crc, const void *buf, size_t len)
{
#ifdef CRC32C_HW
	pthread_once(&crc_hw_once, crc_hw_detect);
	if (crc_have_hw)
		return crc32c_hw(crc, buf, len);
#endif
	return raft_crc32c_sw(crc, buf, len);
}
