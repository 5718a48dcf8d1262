/* The plugin contract: deadlines, cancellation points, blocking regions, writer
 * preference, task handles. */
WEFT_TEST(plugin_sleep_deadlines)
WEFT_TEST(plugin_timeouts)
WEFT_TEST(plugin_cancel_wakes_sleep)
WEFT_TEST(plugin_cancel_wakes_cond_wait)
WEFT_TEST(plugin_cancel_wakes_join)
WEFT_TEST(plugin_cancel_before_wait)
WEFT_TEST(plugin_cond_turns)
WEFT_TEST(plugin_rwlock_prefers_writers)
WEFT_TEST(plugin_blocked_tasks_let_world_stop)
WEFT_TEST(plugin_spawn_options_and_detach)
WEFT_TEST(plugin_spawn_failure)
