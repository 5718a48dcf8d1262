#!/bin/sh
# pfor_workers.sh PLUGIN PROGRAM
# weft_parallel_for on sim runs on a fixed number of participants (3 workers and the
# caller) whatever CPUs the machine has or the process may use: one seed, one log, on
# one CPU (taskset) as on all of them.
set -u
plugin=$1 program=$2
export WEFT_PLATFORM="$plugin" WEFT_SEED=7
all=$("$program") || { echo "FAIL: the run on every CPU failed"; exit 1; }
one=$(taskset -c 0 "$program") || { echo "FAIL: the run on one CPU failed"; exit 1; }
echo "every CPU: $all"
echo "one CPU:   $one"
[ "$all" = "$one" ] || { echo "FAIL: the seed ran another schedule on one CPU"; exit 1; }
ids=$(printf '%s\n' $all | sort -u | wc -l)
[ "$ids" -eq 4 ] || { echo "FAIL: $ids participants, expected 4 (3 workers and the caller)"; exit 1; }
