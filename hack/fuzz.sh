#!/usr/bin/env bash
# Runs every fuzz target (func Fuzz... in *_test.go under the given
# directories) for FUZZTIME each, one after the other.
#
# Go 1.26's fuzz coordinator can end a duration-bounded run with a bare
# "context deadline exceeded" when a worker is still busy as -fuzztime
# expires (go.dev/issue/75804, fixed in Go 1.27). That failure writes no
# reproducer. A real finding always does ("Failing input written to ..."),
# so only a failure without one is treated as the race: the target's seed
# corpus is then replayed as a plain test, which must pass.
set -euo pipefail

go_cmd=${GO:-go}
fuzztime=${FUZZTIME:-8s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for file in $(grep -rl --include='*_test.go' '^func Fuzz' "$@" | sort); do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $pkg $target ($fuzztime)"
		if "$go_cmd" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			continue
		fi
		if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			echo "fuzz $pkg $target: stopped by the -fuzztime shutdown race (go.dev/issue/75804), no failing input; replaying its corpus"
			"$go_cmd" test -count=1 -run "^${target}\$" "$pkg"
			continue
		fi
		exit 1
	done
done
