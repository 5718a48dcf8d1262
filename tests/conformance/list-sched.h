/* Scheduling: what an M:N platform (green) must keep and every platform keeps. */
WEFT_TEST(sched_many_parked_tasks)
WEFT_TEST(sched_identity_follows_task)
WEFT_TEST(sched_foreign_threads_share_objects)
WEFT_TEST(sched_host_blocking_region_hands_off)
WEFT_TEST(sched_polling_spinner_yields)
WEFT_TEST(sched_yielding_spinner_starves_nobody)
WEFT_TEST(sched_deep_stack)
WEFT_TEST(sched_stack_overflow_reported)
