/* mutate.c - libFuzzer mutation that keeps checksums right (fuzzlib.h); fuzz targets only. */
#include "tests/fuzz/fuzzlib.h"

size_t fuzz_mutate_fixing(uint8_t *data, size_t size, size_t max_size, unsigned int seed,
                          void (*fix)(uint8_t *data, size_t size))
{
	size = LLVMFuzzerMutate(data, size, max_size);
	if (seed % 16 != 0)
		fix(data, size);
	return size;
}
