#!/bin/sh
# Runs every test under tests/ with Deno and ends with the summary line CI reads:
# "N passed, N failed" (and ", N skipped" for tests that could not run here).
# Usage: tests/run.sh [DENO]
deno=${1:-deno}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 "$deno" test --allow-all --no-prompt tests/ 2>&1 | tee "$log"
status=$(grep -E '^(ok|FAILED) \| ' "$log" | tail -n 1)
passed=$(printf '%s\n' "$status" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
failed=$(printf '%s\n' "$status" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
ignored=$(printf '%s\n' "$status" | grep -oE '[0-9]+ ignored' | grep -oE '[0-9]+')
if [ -z "$status" ]; then
  echo "0 passed, 1 failed"
  echo "tests/run.sh: deno test printed no summary" >&2
  exit 1
fi
echo
echo "${passed:-0} passed, ${failed:-0} failed, ${ignored:-0} skipped"
[ "${failed:-0}" -eq 0 ]
