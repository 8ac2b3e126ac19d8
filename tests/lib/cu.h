/* cu.h - the shared CUnit runner: runs suites, prints a summary line, exits non-zero on failure. */
#ifndef TESTS_LIB_CU_H
#define TESTS_LIB_CU_H

#include <CUnit/CUnit.h>

/*
 * Registers suites (a CU_SuiteInfo array ending with CU_SUITE_INFO_NULL), runs them and returns
 * the process exit status: 0 when every test passed, 1 when a test failed, 2 on a framework error.
 * argv[1], when given, selects one suite by name ("suite" or "suite:test").
 * Prints "tests: P passed, F failed" as its last line (tests/run-tests.sh adds those up).
 */
int cu_main(int argc, char **argv, CU_SuiteInfo *suites);

#endif
