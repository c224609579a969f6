#!/bin/sh
# Runs every test under tests/ with Deno and ends with the summary line CI reads,
# "N passed, N failed", after a line "N skipped" counting the tests that could not
# run here. Exits nonzero if any test failed; a run that Deno ends in error without
# a failed test (a module that does not load, say) counts as one failed test.
# Usage: tests/run.sh [DENO]
deno=${1:-deno}
log=$(mktemp)
trap 'rm -f "$log" "$log.status"' EXIT
{
  NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 "$deno" test --allow-all --no-prompt tests/
  echo $? >"$log.status"
} 2>&1 | tee "$log"
code=$(cat "$log.status" 2>/dev/null || echo 1)
status=$(grep -E '^(ok|FAILED) \| ' "$log" | tail -n 1)
passed=$(printf '%s\n' "$status" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
failed=$(printf '%s\n' "$status" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
ignored=$(printf '%s\n' "$status" | grep -oE '[0-9]+ ignored' | grep -oE '[0-9]+')
if [ -z "$status" ]; then
  echo "tests/run.sh: deno test printed no summary (exit status $code)"
  passed=0 failed=1
elif [ "$code" -ne 0 ] && [ "${failed:-0}" -eq 0 ]; then
  echo "tests/run.sh: deno test exited with status $code"
  failed=1
fi
echo
echo "${ignored:-0} skipped"
echo "${passed:-0} passed, ${failed:-0} failed"
[ "${failed:-0}" -eq 0 ]
