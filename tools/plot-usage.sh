#!/usr/bin/env bash
# Plots the samples of a long run (troupe-soak --samples FILE.csv) with
# Debian's gnuplot: the resident memory of each process and the group's
# /dev/shm usage over time, in MiB, as an SVG (installs gnuplot-nox if it is
# missing).
#
#   tools/plot-usage.sh SAMPLES.csv OUT.svg [TITLE]
set -euo pipefail

if (($# < 2)); then
  echo "usage: tools/plot-usage.sh SAMPLES.csv OUT.svg [TITLE]" >&2
  exit 2
fi
csv=$1
out=$2
title=${3:-resident memory and /dev/shm over time}
if ! command -v gnuplot >/dev/null; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq gnuplot-nox >/dev/null
fi

# Minutes on the x axis, or seconds for a run under five minutes.
last=$(tail -n 1 "$csv" | cut -d, -f1)
unit=minutes scale=60
if awk -v t="$last" 'BEGIN { exit !(t < 300) }'; then
  unit=seconds scale=1
fi
# One curve per column named *_rss_kib, and one for shm_kib.
IFS=, read -r -a columns <"$csv"
curves=()
for i in "${!columns[@]}"; do
  name=${columns[$i]}
  col=$((i + 1))
  case $name in
  *_rss_kib) curves+=("'$csv' using (\$1/$scale):(\$$col/1024) with lines lw 2 title '${name%_rss_kib} resident'") ;;
  shm_kib) curves+=("'$csv' using (\$1/$scale):(\$$col/1024) with lines lw 2 title '/dev/shm of the group'") ;;
  esac
done
plot=$(IFS=,; echo "${curves[*]}")
gnuplot <<GNUPLOT
set terminal svg size 900,460 dynamic font 'sans,12' background rgb 'white'
set output '$out'
set datafile separator ','
set title '$title'
set xlabel '$unit'
set ylabel 'MiB'
set yrange [0:*]
set key outside below horizontal
set grid
plot $plot
GNUPLOT
echo "$out"
