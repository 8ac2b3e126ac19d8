/* cu.c - the shared CUnit runner (see cu.h). */
#include "tests/lib/cu.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

int cu_main(int argc, char **argv, CU_SuiteInfo *suites)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	char suite_name[256] = "";
	const char *test_name = NULL;
	unsigned run, failed, asserts_failed;
	int status;

	if (only) {
		const char *colon = strchr(only, ':');
		size_t n = colon ? (size_t)(colon - only) : strlen(only);
		if (n >= sizeof(suite_name))
			n = sizeof(suite_name) - 1;
		memcpy(suite_name, only, n);
		suite_name[n] = '\0';
		test_name = colon ? colon + 1 : NULL;
	}
	if (CU_initialize_registry() != CUE_SUCCESS) {
		fprintf(stderr, "cunit: %s\n", CU_get_error_msg());
		return 2;
	}
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "cunit: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_NORMAL);
	if (only) {
		CU_pSuite s = CU_get_suite(suite_name);
		if (!s) {
			fprintf(stderr, "cunit: no suite named %s\n", suite_name);
			CU_cleanup_registry();
			return 2;
		}
		if (test_name) {
			CU_pTest t = CU_get_test(s, test_name);
			if (!t) {
				fprintf(stderr, "cunit: no test %s in suite %s\n", test_name,
				        suite_name);
				CU_cleanup_registry();
				return 2;
			}
			CU_basic_run_test(s, t);
		} else {
			CU_basic_run_suite(s);
		}
	} else {
		CU_basic_run_tests();
	}
	/* Read the counts before CU_cleanup_registry(), which clears them. */
	run = CU_get_number_of_tests_run();
	failed = CU_get_number_of_tests_failed();
	asserts_failed = CU_get_number_of_failures();
	status = CU_get_error() != CUE_SUCCESS ? 2 : 0;
	if (failed > 0 || asserts_failed > 0)
		status = 1;
	if (CU_get_number_of_suites_failed() > 0) {
		/* a suite whose init or cleanup failed ran none of its tests */
		status = 1;
		failed += CU_get_number_of_suites_failed();
	}
	CU_cleanup_registry();
	printf("\ntests: %u passed, %u failed\n", run - (failed > run ? run : failed), failed);
	return status;
}
