/* VM integration for conservative collectors: parked stack pointers, saved registers,
 * stack bounds, weft_blocking_call, tasks not started yet, ending the process with the
 * world held. */
WEFT_TEST(vm_scan_finds_parked_stack_values)
WEFT_TEST(vm_scan_finds_register_at_blocking_begin)
WEFT_TEST(vm_scan_starting_tasks_have_their_arg)
WEFT_TEST(vm_task_stack_bounds)
WEFT_TEST(vm_blocking_call_nests)
WEFT_TEST(vm_region_tasks_keep_their_identity)
WEFT_TEST(vm_scan_errors)
WEFT_TEST(vm_exit_with_world_held)
