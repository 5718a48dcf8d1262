#!/bin/sh
# determinism.sh PLUGIN PROGRAM [trace]
# One seed gives the same output every time (with "trace": the same trace, objects'
# numbers included, too); different seeds give different outputs.
set -u
plugin=$1 program=$2 trace=${3:-}
export WEFT_PLATFORM="$plugin"
run_seed_1() {
  if [ "$trace" = trace ]; then
    WEFT_SEED=1 WEFT_SIM_TRACE=1 "$program" 2>&1
  else
    WEFT_SEED=1 "$program"
  fi
}
first=$(run_seed_1) || { echo "FAIL: seed 1 failed"; exit 1; }
for i in 1 2 3; do
  again=$(run_seed_1)
  if [ "$again" != "$first" ]; then
    printf 'FAIL: seed 1 gave\n%s\nthen\n%s\n' "$first" "$again"
    exit 1
  fi
done
distinct=$(for seed in 1 2 3 4 5 6 7 8; do WEFT_SEED=$seed "$program"; done | sort -u | wc -l)
echo "seed 1: $(WEFT_SEED=1 "$program")"
echo "$distinct distinct outputs over 8 seeds"
[ "$distinct" -ge 4 ] || { echo "FAIL: seeds do not change the schedule"; exit 1; }
