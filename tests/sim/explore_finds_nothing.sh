#!/bin/sh
# explore_finds_nothing.sh WEFT_SIM PLUGIN SEEDS PROGRAM
# `weft-sim explore` runs PROGRAM (a correct host) under SEEDS seeds of each strategy
# and finds no failing one.
set -u
sim=$1 plugin=$2 seeds=$3 program=$4
export WEFT_PLATFORM="$plugin"
for strategy in random pct; do
  "$sim" explore --seeds "$seeds" --jobs 1 --timeout 20 --strategy "$strategy" -- "$program"
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "FAIL: explore ($strategy) found a failing seed, or could not run (status $status)"
    exit 1
  fi
done
