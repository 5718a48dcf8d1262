#!/bin/sh
# find_and_replay.sh WEFT_SIM PLUGIN STRATEGY PROGRAM
# The planted bug of PROGRAM is found by `weft-sim explore` within 1000 seeds, and its
# replay command (`weft-sim replay`, trace on), run twice, fails the same way: the same
# output and trace, the same exit status.
set -u
sim=$1 plugin=$2 strategy=$3 program=$4
export WEFT_PLATFORM="$plugin"
out=$(mktemp -d) || exit 1
trap 'rm -rf "$out"' EXIT
"$sim" explore --seeds 1000 --jobs 1 --timeout 20 --strategy "$strategy" -- "$program" >"$out/seed" 2>"$out/explore"
status=$?
cat "$out/explore"
if [ "$status" -ne 1 ]; then
  echo "FAIL: explore did not find the bug (status $status)"
  exit 1
fi
seed=$(cat "$out/seed")
# The exact replay command explore printed: the seed and, for pct, its step estimate.
args=$(sed -n 's/^  weft-sim replay \(.*\) -- .*$/\1/p' "$out/explore")
[ -n "$args" ] || { echo "FAIL: explore printed no replay command"; exit 1; }
# AddressSanitizer's one-time warning about the coroutine stacks (`./dev sanitize`) holds
# addresses that differ from run to run: it is not the program's output.
not_asan() {
  grep -v -e '^==[0-9]*==' -e '^False positive error reports may follow$' -e 'google/sanitizers/issues/189$'
}
for run in 1 2; do
  # shellcheck disable=SC2086 # the options explore printed, split on purpose
  "$sim" replay $args -- "$program" >"$out/raw$run" 2>&1
  status=$?
  not_asan <"$out/raw$run" >"$out/run$run"
  echo "exit $status" >>"$out/run$run"
done
if ! cmp -s "$out/run1" "$out/run2"; then
  echo "FAIL: replay $args gave two different runs:"
  diff "$out/run1" "$out/run2"
  exit 1
fi
if grep -q '^exit 0$' "$out/run1"; then
  echo "FAIL: replay $args did not fail"
  exit 1
fi
echo "replay $args fails the same way each time; its last lines:"
tail -n 8 "$out/run1"
