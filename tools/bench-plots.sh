#!/usr/bin/env bash
# The plots of docs/benchmarks.md, from troupe-bench's CSV output, with
# Debian's gnuplot (installed if missing):
#   docs/bench/rtt.svg         the distribution of a request's round trip,
#                              troupe across processes against the anchors
#   docs/bench/throughput.svg  one-way messages per second against the anchors
#   docs/bench/flood.svg       peak memory of a flood into a bounded queue and
#                              into a raw CAF mailbox
#
#   tools/bench-plots.sh [troupe-bench options]   runs the ipc and pool suites
#                                                 (--csv into docs/bench/), then plots
#   tools/bench-plots.sh --plot-only              plots the CSV files already there
#
# TROUPE_BUILD_DIR overrides the build directory (build/).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TROUPE_BUILD_DIR:-$root/build}
dir=$root/docs/bench
mkdir -p "$dir"

if [ "${1:-}" != --plot-only ]; then
  [ -x "$build/bin/troupe-bench" ] || "$root/tools/bootstrap.sh" >/dev/null
  "$build/bin/troupe-bench" ipc "$@" --csv "$dir/ipc.csv"
  "$build/bin/troupe-bench" pool "$@" --csv "$dir/pool.csv"
fi
for f in ipc.csv pool.csv; do
  [ -s "$dir/$f" ] || { echo "bench-plots: no $dir/$f (run without --plot-only)" >&2; exit 1; }
done
if ! command -v gnuplot >/dev/null; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq gnuplot-nox >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# value CSV NAME: a figure's value.
value() { awk -F, -v n="$2" '$1 != "dist" && $2 == n { print $3 }' "$1"; }

# The round trips: percentile over microseconds, one curve per figure.
curves=()
for spec in "ipc_rtt_us:troupe, request across processes" \
  "manager_dict_set_us:troupe, managed_dict set across processes" \
  "caf_local_same_sched_rtt_us:CAF, request inside one process (troupe scheduler setting)" \
  "caf_tcp_same_sched_rtt_us:CAF, request over loopback TCP (the same)" \
  "zmq_rtt_us:ZeroMQ REQ/REP over ipc://"; do
  name=${spec%%:*}
  awk -F, -v n="$name" '$1 == "dist" && $2 == n { print $4, $3 }' "$dir/ipc.csv" >"$work/$name.dat"
  [ -s "$work/$name.dat" ] && curves+=("'$work/$name.dat' using 1:2 with lines lw 2 title '${spec#*:}'")
done
py=$(value "$dir/ipc.csv" py_manager_rtt_us)
extra=
[ -n "$py" ] && extra="set arrow from $py, graph 0 to $py, graph 1 nohead dt 2 lc rgb 'gray'; set label 'Python Manager().dict(): median' at $py, graph 0.5 left offset 0.5,0 tc rgb 'gray'"
plot=$(IFS=,; echo "${curves[*]}")
gnuplot <<GP
set terminal svg size 900,560 dynamic noenhanced font 'sans,12'
set output '$dir/rtt.svg'
set title 'Round trip of a blocking request: distribution of every sample'
set xlabel 'microseconds (log scale)'
set ylabel 'percentile'
set logscale x
set yrange [0:100]
set grid
set key below
$extra
plot $plot
GP

# bars DATA OUT WIDTH TITLE YLABEL COLOR FORMAT: a bar chart of DATA's
# `"label" value` lines, each bar with its value printed in FORMAT.
bars() {
  gnuplot <<GP
set terminal svg size $3,450 dynamic noenhanced font 'sans,12'
set output '$2'
set title '$4'
set ylabel '$5'
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set grid ytics
unset key
plot '$1' using 0:2:xtic(1) with boxes lc rgb '$6', \
     '' using 0:2:(sprintf('$7', \$2)) with labels offset 0,0.7 notitle
GP
}

# Throughput: one bar per figure, in millions of messages a second.
: >"$work/tput.dat"
for spec in "ipc_msgs_per_s:troupe" "ipc_fanin_4_msgs_per_s:troupe, 4 senders" \
  "zmq_msgs_per_s:ZeroMQ" "caf_local_same_sched_msgs_per_s:CAF in-process" \
  "bip_mq_msgs_per_s:Boost mq" "py_queue_msgs_per_s:Python Queue"; do
  v=$(value "$dir/ipc.csv" "${spec%%:*}")
  [ -n "$v" ] && printf '"%s" %s\n' "${spec#*:}" "$(awk -v x="$v" 'BEGIN { print x / 1e6 }')" >>"$work/tput.dat"
done
bars "$work/tput.dat" "$dir/throughput.svg" 900 \
  'One-way 64-byte messages: across two processes, and CAF inside one' \
  'million messages per second' '#4477aa' '%.2f'

# The flood: peak resident memory of the receiving process.
printf '"bounded_queue of 1,000" %s\n"raw CAF mailbox" %s\n' \
  "$(value "$dir/pool.csv" flood_rss_bounded_mb)" "$(value "$dir/pool.csv" flood_rss_caf_mb)" \
  >"$work/flood.dat"
bars "$work/flood.dat" "$dir/flood.svg" 700 \
  'Four producers flooding one consumer: peak resident memory' 'MiB' '#aa4466' '%.0f MiB'
echo "bench-plots: $dir/rtt.svg, $dir/throughput.svg, $dir/flood.svg"
