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
#
# After each target, and for all of them at the end, it prints how many
# inputs the engine ran per second (from go's last "fuzz: elapsed: Ns,
# execs: N" line): a target that runs a handful per second explores nothing.
#
# Each new interesting input is minimized for at most FUZZMINIMIZETIME
# (default 1s; go's own default is 60s). The engine stops fuzzing while it
# minimizes, so with go's default one early find froze a short run: FuzzApply
# ran 10 inputs in 8 s, and 1458 with a 1 s bound. A failing input is still
# written, minimized within the same bound.
set -euo pipefail

go_cmd=${GO:-go}
fuzztime=${FUZZTIME:-8s}
minimizetime=${FUZZMINIMIZETIME:-1s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

summary=()
# rate prints and records the execs per second of the run logged in $log.
rate() {
	local pkg=$1 target=$2 line elapsed execs per_second
	line=$(grep -E '^fuzz: elapsed: [0-9]+s, execs: [0-9]+ ' "$log" | tail -n 1 || true)
	if [[ -z $line ]]; then
		summary+=("$(printf '%-36s %-26s no execs reported' "$pkg" "$target")")
	else
		elapsed=$(sed -E 's/^fuzz: elapsed: ([0-9]+)s.*/\1/' <<<"$line")
		execs=$(sed -E 's/^.*execs: ([0-9]+) .*/\1/' <<<"$line")
		per_second=$((execs / (elapsed > 0 ? elapsed : 1)))
		summary+=("$(printf '%-36s %-26s %10d execs in %3ds = %7d execs/s' "$pkg" "$target" "$execs" "$elapsed" "$per_second")")
	fi
	echo "fuzz rate: ${summary[-1]}"
}

# modroot is the directory of the go.mod that holds directory $1: the
# gateway distribution (cmd/gateway) is a module of its own, whose packages
# go test finds only from inside it.
modroot() {
	local d=$1
	while [[ ! -f $d/go.mod && $d != . && $d != / ]]; do
		d=$(dirname "$d")
	done
	echo "$d"
}

for file in $(grep -rl --include='*_test.go' '^func Fuzz' "$@" | sort); do
	dir=$(dirname "$file")
	mod=$(modroot "$dir")
	if [[ $mod == . ]]; then
		pkg=./$dir
	else
		pkg=./${dir#"$mod"/}
	fi
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $pkg $target ($fuzztime, module $mod)"
		if (cd "$mod" && GOWORK=off "$go_cmd" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg") 2>&1 | tee "$log"; then
			rate "$pkg" "$target"
			continue
		fi
		rate "$pkg" "$target"
		if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			echo "fuzz $pkg $target: stopped by the -fuzztime shutdown race (go.dev/issue/75804), no failing input; replaying its corpus"
			(cd "$mod" && GOWORK=off "$go_cmd" test -count=1 -run "^${target}\$" "$pkg")
			continue
		fi
		exit 1
	done
done

echo "fuzz summary ($fuzztime per target):"
printf '  %s\n' "${summary[@]}"
