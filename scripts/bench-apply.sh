#!/usr/bin/env bash
# apply against the write quota, two builds in one run: the figure BENCHMARKS.md's apply
# section gives (`cargo bench --bench graph -- apply`), measured for BEFORE and AFTER
# alternately, ROUNDS rounds each, so that both meet the same machine.
#
#     scripts/bench-apply.sh BEFORE AFTER [ROUNDS]     (BEFORE, AFTER: release binaries)
#
# Each run: a fresh `AFTER emulator` (the same emulator for both) with the bench's tenant,
# 10,000 cloud-only users, latency 30-250 ms, time scale 10; then `apply` of the matching
# export at `--write-rate` 200 (the 20/s quota, time-scaled). Prints each run's stamped rows,
# wall time and writes per second of Graph time (stamped / wall / 10), and each build's median.
# Loopback only.
set -euo pipefail

before=${1:?usage: bench-apply.sh BEFORE AFTER [ROUNDS]}
after=${2:?usage: bench-apply.sh BEFORE AFTER [ROUNDS]}
rounds=${3:-3}
users=${HARDMATCH_BENCH_USERS:-10000}
scale=10
port=${HARDMATCH_BENCH_PORT:-18733}
token=bench-apply-token
dir=$(mktemp -d)
emulator_pid=
trap '[ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null; rm -rf "$dir"' EXIT

# The tenant and export of src/emulator/synthetic.rs (`tenant`, `export_csv`).
python3 - "$dir" "$users" <<'EOF'
import json, sys, uuid
out, n = sys.argv[1], int(sys.argv[2])
users = [{
    "id": str(uuid.UUID(int=0xAAAA0000000040008000000000000000 + i)),
    "userPrincipalName": f"user{i}@contoso.com",
    "mail": f"user{i}@contoso.com",
    "proxyAddresses": [f"SMTP:user{i}@contoso.com"],
} for i in range(n)]
tenant = {"tenantId": "generated", "domains": [{"id": "contoso.com"}], "users": users}
json.dump(tenant, open(f"{out}/tenant.json", "w"))
with open(f"{out}/input.csv", "w", newline="") as f:
    f.write('"UserPrincipalName","ObjectGUID"\r\n')
    for i in range(n):
        guid = uuid.UUID(int=0x12340000000040008000000000000000 + i)
        f.write(f'"user{i}@contoso.com","{guid}"\r\n')
EOF

# One apply by binary $1 against a fresh emulator; prints its writes/s of Graph time.
apply_once() {
    local binary=$1
    "$after" emulator --tenant "$dir/tenant.json" --listen "127.0.0.1:$port" \
        --time-scale "$scale" --latency-ms 30..250 --access-token "$token" \
        >"$dir/emulator.log" 2>&1 &
    emulator_pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
    rm -f "$dir/report.csv" "$dir/report.csv.journal"
    local started ended code=0
    started=$(date +%s.%N)
    HARDMATCH_ACCESS_TOKEN=$token "$binary" apply "$dir/input.csv" -o "$dir/report.csv" \
        --yes -q --write-rate $((20 * scale)) --graph-url "http://127.0.0.1:$port" \
        >/dev/null 2>"$dir/apply.log" || code=$?
    ended=$(date +%s.%N)
    kill "$emulator_pid"
    wait "$emulator_pid" 2>/dev/null || true
    emulator_pid=
    local stamped
    stamped=$(grep -c ',stamped,' "$dir/report.csv" || true)
    python3 -c "
wall = $ended - $started
rate = $stamped / wall / $scale
print(f'$binary: {$stamped} of $users stamped in {wall:.1f} s (exit $code): {rate:.2f} writes/s = {rate / 20:.3f} of the quota', file=__import__('sys').stderr)
print(f'{rate:.2f}')"
}

declare -a figures_before figures_after
echo "$(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$rounds"); do
    figures_before+=("$(apply_once "$before")")
    figures_after+=("$(apply_once "$after")")
done
echo "$(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "before ($before): median $(median "${figures_before[@]}") writes/s of ${figures_before[*]}"
echo "after ($after): median $(median "${figures_after[@]}") writes/s of ${figures_after[*]}"
