#!/usr/bin/env bash
# CPU the daemon spends while idle (issue #13): nothing queued, launch mode, one tick per
# INTERVAL (default 1s). With SITE=sandbox the bundled sandbox site is served (by the same
# binary, in its own process, not counted) and the daemon holds its account and checks its
# session as it would for a real site; otherwise there is no site (`--site none`).
#
# Prints the ticks, the CPU time of the daemon's process (all its threads) over SECONDS after the
# first tick, per tick, and as CPU-seconds per hour. The CPU time is perf's task-clock
# (nanoseconds) where `perf` is installed, else user + kernel time from /proc/PID/stat (clock
# ticks of 10 ms: run for minutes). Compare two builds by running it on each, in turn:
#   bench/idle.sh target/release/executor 120
#   SITE=sandbox bench/idle.sh target/release/executor 120
#   bench/idle.sh target/release/executor 600 60s
# With DATABASE=postgres://… the store is that PostgreSQL database (empty, or the daemon's own),
# and the figures add what the daemon asked of that database per tick: transactions (each
# statement outside one counts as one) and rows of its tables inserted and updated
# (pg_stat_database, pg_stat_user_tables, read with psql; the server publishes these counts
# about once a second):
#   DATABASE=postgres://postgres@127.0.0.1:5432/idlebench SITE=sandbox bench/idle.sh BIN 120
# With SYSCALLS=1 it counts the daemon's system calls per idle tick instead (strace), a figure
# that does not move with the machine's noise:
#   SYSCALLS=1 SITE=sandbox bench/idle.sh target/release/executor 60
set -euo pipefail
bin="${1:?usage: [SITE=sandbox] bench/idle.sh EXECUTOR_BINARY [SECONDS] [INTERVAL]}"
seconds="${2:-60}"
interval="${3:-1s}"
site="${SITE:-none}"
database="${DATABASE:-}"
profile="$(mktemp -d /tmp/executor-idle-XXXXXX)"
pids=()
cleanup() {
  touch "$profile/STOP_EXECUTOR"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$profile"
}
trap cleanup EXIT

site_args=(--site none)
if [ "$site" = sandbox ]; then
  "$bin" --profile "$profile" sandbox --port 0 >"$profile/sandbox.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "http://" "$profile/sandbox.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o "http://[0-9.:]*" "$profile/sandbox.out" | head -1)
  # Logged in, as an operator would be: the login form's cookie, set by `executor login`.
  curl -s -o /dev/null -c "$profile/cookies.txt" --data "username=bench" "$url/i/flow/login"
  "$bin" --profile "$profile" --browser-mode launch --cdp-port 0 --site sandbox \
    login --cookies "$profile/cookies.txt" >"$profile/login.out" 2>&1 \
    || { echo "could not log in to the sandbox:" >&2; cat "$profile/login.out" >&2; exit 1; }
  site_args=(--site sandbox)
elif [ "$site" != none ]; then
  echo "SITE is none or sandbox, not $site" >&2
  exit 2
fi

store_args=()
[ -n "$database" ] && store_args=(--database "$database")
pg_counts() {
  if [[ "$database" == postgres* ]]; then
    psql -qAtX -F' ' "$database" -c "SELECT pg_stat_clear_snapshot();" \
      -c "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
            sum(n_tup_ins), sum(n_tup_upd) FROM pg_stat_user_tables"
  else
    echo 0 0 0
  fi
}
"$bin" --profile "$profile" --browser-mode launch --cdp-port 0 --tick-interval "$interval" \
  ${store_args[@]+"${store_args[@]}"} "${site_args[@]}" daemon >"$profile/out" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do grep -q "pages=" "$profile/out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "pages=" "$profile/out"; then
  echo "the daemon did not tick:" >&2
  cat "$profile/out" >&2
  exit 1
fi

if grep -q "AUTH_REQUIRED" "$profile/out"; then
  echo "the daemon is not logged in to the site: an idle tick would check the session each time" >&2
  exit 1
fi
[[ "$database" == postgres* ]] && sleep 2 # the counts of the daemon's start published first
ticks1=$(grep -c "pages=" "$profile/out")
read -r xacts1 inserted1 updated1 < <(pg_counts | tail -1)
if [ -n "${SYSCALLS:-}" ]; then
  # The system calls of the daemon's process (all its threads) per idle tick: a count, not a
  # time, so it compares two builds on a noisy machine (strace slows the daemon: no CPU figure).
  timeout -s INT "$seconds" strace -f -c -q -o "$profile/strace" -p "$daemon" >/dev/null 2>"$profile/strace.err" || true
  ticks=$(( $(grep -c "pages=" "$profile/out") - ticks1 ))
  if ! grep -q "total$" "$profile/strace" 2>/dev/null || [ "$ticks" -le 0 ]; then
    echo "strace could not count the daemon's system calls (ticks=$ticks):" >&2
    cat "$profile/strace.err" >&2
    exit 1
  fi
  # The calls column of each system call's row (the total row's layout differs between versions).
  awk -v site="$site" -v interval="$interval" -v seconds="$seconds" -v ticks="$ticks" '
    $NF == "total" { next }
    $1 ~ /^[0-9.]+$/ && NF >= 5 { calls[$NF] = $4; total += $4 }
    END {
      printf "site=%s interval=%s seconds=%d ticks=%d syscalls=%d syscalls_per_tick=%.1f",
        site, interval, seconds, ticks, total, total / ticks
      n = split("pwrite64 pread64 fdatasync fsync futex epoll_wait read write openat sendto recvfrom", top, " ")
      for (i = 1; i <= n; i++) if (calls[top[i]] > 0) printf " %s=%.1f", top[i], calls[top[i]] / ticks
      printf "\n"
    }' "$profile/strace"
  exit 0
fi
if command -v perf >/dev/null && perf stat -e task-clock -p "$daemon" -- true >/dev/null 2>&1; then
  how=perf
  cpu_ms=$(perf stat -x, -e task-clock -p "$daemon" -- sleep "$seconds" 2>&1 \
    | awk -F, '/task-clock/ { printf "%.1f", $1 }')
else
  how=proc
  hz=$(getconf CLK_TCK)
  read -r user1 sys1 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  sleep "$seconds"
  read -r user2 sys2 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  cpu_ms=$(( ((user2 - user1) + (sys2 - sys1)) * 1000 / hz ))
fi
ticks2=$(grep -c "pages=" "$profile/out")
ticks=$((ticks2 - ticks1))
sleep 1 # the server publishes its counts about once a second
read -r xacts2 inserted2 updated2 < <(pg_counts | tail -1)
pg="$((xacts2 - xacts1 - 2)) $((inserted2 - inserted1)) $((updated2 - updated1))" # less psql's own
failed=$(grep -c "last_error=[^ ]" "$profile/out" || true)
awk -v how="$how" -v site="$site" -v interval="$interval" -v seconds="$seconds" -v ticks="$ticks" \
  -v cpu="$cpu_ms" -v failed="$failed" -v pg="$pg" -v store="${database:0:8}" 'BEGIN {
  per_tick = ticks > 0 ? cpu / ticks : 0
  printf "site=%s interval=%s seconds=%d ticks=%d failed_ticks=%d cpu_ms=%.1f (%s) cpu_per_tick_ms=%.3f cpu_s_per_hour=%.2f\n",
    site, interval, seconds, ticks, failed, cpu, how, per_tick, cpu * 3600 / seconds / 1000
  split(pg, n, " ")
  if (store == "postgres" && ticks > 0)
    printf "postgres per tick: transactions=%.2f rows_inserted=%.2f rows_updated=%.2f\n",
      n[1] / ticks, n[2] / ticks, n[3] / ticks
}'
