/* Task groups and weft_parallel_for. */
WEFT_TEST(parallel_for_covers_exactly)
WEFT_TEST(parallel_for_grain_and_edges)
WEFT_TEST(parallel_for_failure_and_nesting)
WEFT_TEST(parallel_for_from_several_tasks)
WEFT_TEST(group_success_and_failure)
WEFT_TEST(group_timeout_free_and_errors)
