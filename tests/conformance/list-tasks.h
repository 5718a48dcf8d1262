/* Tasks: spawn, join, detach, cancel, identity, task-local slots. */
WEFT_TEST(spawn_join_code_and_result)
