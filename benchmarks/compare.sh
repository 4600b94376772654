#!/usr/bin/env bash
# plume against uWebSockets on the Phoenix workload, side by side: the chat
# example (examples/chat) and the echo server (examples/echo) against
# benchmarks/reference/uws_phoenix (a minimal Phoenix V2 + echo server on
# uWebSockets v20.79.0), same load programs, runs alternating plume / uWS.
# Prints each run's figures, then the medians and the plume/uWS ratios
# (benchmarks/plot.mjs), and writes build/compare/results.csv and the SVG
# charts in docs/benchmarks/. Not part of CI (it needs the uWebSockets sources).
#
#   benchmarks/compare.sh                 # RUNS=3, ~20 minutes on 2 cores
#   QUICK=1 benchmarks/compare.sh         # one run each, smaller: a smoke test
#   RUNS=5 benchmarks/compare.sh          # or --runs 5; --quick; --no-build
#   ONLY="ping echo" benchmarks/compare.sh   # some workloads only (and no plots
#                                            # of the others)
#
# Workloads (every program spawns its server with --port 0 and stops it by PID):
#   fanout   channel_fanout, 10,000 subscribers joined to room:lobby, the epoll
#            load generator, 1,000 64-byte bodies pushed at once (--rate 0
#            --window 1000: all on their way, as issue 14 measured it), server
#            --threads 1 and --threads 2
#   memory   channel_fanout with 15,000 subscribers: bytes per joined idle
#            connection, and joins/s (first phx_join sent to last reply)
#   ping     ping_rpc: 100 sockets, one `ping` push in flight each, 10 s
#   echo     echo_throughput: 100 connections, 64-byte binary messages, 10 s
#   sweep    the fan-out at 1,000, 5,000, 10,000 and 20,000 subscribers (20,000
#            only if RLIMIT_NOFILE allows; else as many as it does)
# The chat runs with --history 0: the reference keeps no message history, so
# neither does the chat (the rest of the chat's defaults stay: --no-presence
# and --no-rate-limits come from the load programs, as for every benchmark).
# shellcheck disable=SC2016  # the single-quoted $N are awk's fields
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
QUICK="${QUICK:-0}"
BUILD=1
ONLY="${ONLY:-fanout memory ping echo sweep}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --no-build) BUILD=0; shift ;;
        *) echo "compare.sh: unknown argument $1 (--runs N, --quick, --no-build)" >&2; exit 2 ;;
    esac
done
[[ "$QUICK" == 1 ]] && RUNS=1

bench=build/release/benchmarks
chat=build/release/examples/chat/chat
echo_server=build/release/examples/echo/echo_server
uws=build/reference/uws_phoenix
out=build/compare
results="$out/results.csv"

if [[ "$BUILD" == 1 ]]; then
    cmake --preset release >/dev/null
    cmake --build --preset release -j2 --target chat echo_server channel_fanout echo_throughput \
        ping_rpc
    benchmarks/reference/build_uws.sh
fi
for f in "$chat" "$echo_server" "$bench/channel_fanout" "$bench/echo_throughput" \
    "$bench/ping_rpc" "$uws"; do
    [[ -x "$f" ]] || { echo "compare.sh: $f is missing (run without --no-build)" >&2; exit 1; }
done

# Every subscriber is a socket in this process and one in the server's.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)

# Sizes. Fan-out runs push 10,000,000 / N messages (ten million deliveries:
# 1,000 messages at 10,000 subscribers) so every point takes about as long;
# QUICK pushes a twentieth of that.
deliveries=10000000
seconds=10
memory_n=15000
sweep_n="1000 5000 10000 20000"
if [[ "$QUICK" == 1 ]]; then
    deliveries=500000
    seconds=3
    sweep_n="1000 5000 10000"
fi
fanout_n=10000
top=20000
if ((fd_limit < top + 100)); then
    top=$(((fd_limit - 100) / 500 * 500))
    echo "compare.sh: RLIMIT_NOFILE is $fd_limit: the sweep stops at $top subscribers" >&2
    sweep_n="${sweep_n/20000/$top}"
fi

mkdir -p "$out/logs"
rm -f "$out"/logs/*.txt
{
    echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "# deliveries: $deliveries"
    echo "# runs: $RUNS, quick: $QUICK, plume $(git rev-parse --short HEAD 2>/dev/null || echo '?'), uWebSockets v20.79.0"
    echo "workload,server,threads,subscribers,run,metric,value"
} >"$results"

# record WORKLOAD SERVER THREADS SUBSCRIBERS RUN METRIC VALUE
record() {
    [[ -n "$7" ]] && echo "$1,$2,$3,$4,$5,$6,$7" >>"$results"
    return 0
}

# field LOG PATTERN AWK-EXPR: the first line matching PATTERN, through awk.
field() { grep -m1 -E "$2" "$1" | awk "$3" || true; }

# run WORKLOAD SERVER THREADS SUBSCRIBERS RUN COMMAND...: runs it, keeps its
# output in build/compare/logs, records its figures and prints a line.
run() {
    local workload=$1 server=$2 threads=$3 n=$4 r=$5
    shift 5
    local log="$out/logs/$workload-$server-t$threads-n$n-r$r.txt"
    local status=0
    "$@" >"$log" 2>&1 || status=$?
    record "$workload" "$server" "$threads" "$n" "$r" ok "$((status == 0))"
    local line="" other
    other=$(field "$log" '^  other load' '{print $3}')
    record "$workload" "$server" "$threads" "$n" "$r" other_load_pct "${other%\%}"
    case "$workload" in
        fanout | memory | sweep)
            local rate p50 p99 lost lostc cpu mem joins
            rate=$(field "$log" '^  deliveries/s' '{print $2}')
            p50=$(field "$log" '^  latency us' '{print $4}')
            p99=$(field "$log" '^  latency us' '{print $8}')
            lost=$(field "$log" '^  lost  ' '{print $2}')
            lostc=$(field "$log" '^  lost  ' '{print $11}')
            cpu=$(field "$log" '^  server CPU' '{for (i = 1; i < NF; i++) if ($(i + 1) == "us") print $i}')
            mem=$(field "$log" 'bytes per joined idle connection' '{print $NF}')
            joins=$(field "$log" '^  joins/s' '{print $2}')
            record "$workload" "$server" "$threads" "$n" "$r" deliveries_per_s "$rate"
            record "$workload" "$server" "$threads" "$n" "$r" p50_us "$p50"
            record "$workload" "$server" "$threads" "$n" "$r" p99_us "$p99"
            record "$workload" "$server" "$threads" "$n" "$r" lost_messages "$lost"
            record "$workload" "$server" "$threads" "$n" "$r" lost_connections "$lostc"
            record "$workload" "$server" "$threads" "$n" "$r" server_us_per_delivery "$cpu"
            record "$workload" "$server" "$threads" "$n" "$r" bytes_per_joined_conn "$mem"
            record "$workload" "$server" "$threads" "$n" "$r" joins_per_s "$joins"
            if [[ "$workload" == memory ]]; then
                line="$mem bytes/joined idle connection, $joins joins/s"
            else
                line="$rate deliveries/s, p99 $p99 us, lost $lost, server $cpu us/delivery"
            fi
            ;;
        ping)
            local rate p50 p99 cpu
            rate=$(field "$log" '^  replies/s' '{print $2}')
            p50=$(field "$log" '^  latency us' '{print $4}')
            p99=$(field "$log" '^  latency us' '{print $8}')
            cpu=$(field "$log" '^  server CPU' '{for (i = 1; i < NF; i++) if ($(i + 1) == "us") print $i}')
            record "$workload" "$server" "$threads" "$n" "$r" replies_per_s "$rate"
            record "$workload" "$server" "$threads" "$n" "$r" p50_us "$p50"
            record "$workload" "$server" "$threads" "$n" "$r" p99_us "$p99"
            record "$workload" "$server" "$threads" "$n" "$r" server_us_per_reply "$cpu"
            line="$rate replies/s, p99 $p99 us, server $cpu us/reply"
            ;;
        echo)
            local rate p50 p99 cpu
            rate=$(field "$log" '^  round trips/s' '{print $3}')
            p50=$(field "$log" '^  latency us' '{print $4}')
            p99=$(field "$log" '^  latency us' '{print $8}')
            cpu=$(field "$log" '^  server CPU' '{for (i = 1; i < NF; i++) if ($(i + 1) == "us") print $i}')
            record "$workload" "$server" "$threads" "$n" "$r" round_trips_per_s "$rate"
            record "$workload" "$server" "$threads" "$n" "$r" p50_us "$p50"
            record "$workload" "$server" "$threads" "$n" "$r" p99_us "$p99"
            record "$workload" "$server" "$threads" "$n" "$r" server_us_per_round_trip "$cpu"
            line="$rate round trips/s, p99 $p99 us, server $cpu us/round trip"
            ;;
    esac
    [[ $status == 0 ]] || line="$line (FAILED, exit $status: see $log)"
    printf '  %-7s %-5s threads %d  %6d  run %d  %s  (other load %s)\n' "$workload" "$server" \
        "$threads" "$n" "$r" "$line" "${other:-?}"
}

binary() { [[ "$1" == plume ]] && echo "$chat" || echo "$uws"; }

fanout() {  # SERVER THREADS SUBSCRIBERS RUN WORKLOAD
    local messages=$((deliveries / $3))
    run "$5" "$1" "$2" "$3" "$4" "$bench/channel_fanout" --server "$(binary "$1")" \
        --connections "$3" --messages "$messages" --window "$messages" --size 64 --rate 0 \
        --driver epoll \
        --server-threads "$2" --timeout 300 -- --history 0
}

has() { [[ " $ONLY " == *" $1 "* ]]; }

echo
echo "plume ($chat, $echo_server) against uWebSockets ($uws): $RUNS run(s) each, alternating"
echo "raw figures: $results, logs: $out/logs/"
for ((r = 1; r <= RUNS; r++)); do
    # Odd runs start with plume, even runs with uWS: neither always goes first.
    if ((r % 2)); then order="plume uws"; else order="uws plume"; fi
    echo
    echo "run $r of $RUNS"
    for s in $order; do
        if has fanout || has sweep; then fanout "$s" 1 "$fanout_n" "$r" fanout; fi
    done
    if has fanout; then
        for s in $order; do fanout "$s" 2 "$fanout_n" "$r" fanout; done
    fi
    if has memory; then
        for s in $order; do
            run memory "$s" 1 "$memory_n" "$r" "$bench/channel_fanout" --server "$(binary "$s")" \
                --connections "$memory_n" --messages 10 --rate 0 --driver epoll -- --history 0
        done
    fi
    if has ping; then
        for s in $order; do
            run ping "$s" 1 100 "$r" "$bench/ping_rpc" --server "$(binary "$s")" \
                --connections 100 --seconds "$seconds" --warmup 2 -- --history 0
        done
    fi
    if has echo; then
        for s in $order; do
            if [[ "$s" == plume ]]; then
                run echo "$s" 1 100 "$r" "$bench/echo_throughput" --server "$echo_server" \
                    --connections 100 --size 64 --seconds "$seconds" --warmup 2
            else
                run echo "$s" 1 100 "$r" "$bench/echo_throughput" --server "$uws" --path /echo \
                    --connections 100 --size 64 --seconds "$seconds" --warmup 2
            fi
        done
    fi
    if has sweep; then
        for n in $sweep_n; do
            ((n == fanout_n)) && continue  # the fan-out workload's run is this point
            for s in $order; do fanout "$s" 1 "$n" "$r" sweep; done
        done
    fi
done

echo
node benchmarks/plot.mjs "$results" docs/benchmarks
