#!/usr/bin/env bash
# Lifecycle cost, side by side in one run (root; needs qemu-system-x86_64 and strace):
#   - CLI start+stop of a 4-disk domain (private, private, shared, read-only; offline SELinux +
#     DAC) against a `qemu-system-x86_64 -machine none` start-and-quit, interleaved;
#   - fsyncs per start and per stop (strace), and over 100 consecutive operations (the
#     intent's sync, plus the WAL checkpoint about one operation in ten);
#   - start+stop with 10, 1,000 and 10,000 domains running.
# Machines are noisy: read the ratios, not the times.
#   bench/lifecycle.sh [SVIRT_BINARY] [MAX_RUNNING=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
SVIRT=${1:-}
MAX=${2:-10000}
if [ -z "$SVIRT" ]; then
  cargo build --release -q -p svirt-cli
  SVIRT=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/svirt
fi
d=$(mktemp -d /var/tmp/svbench-life.XXXX); trap 'rm -rf "$d"' EXIT
cat > "$d/svirt.toml" <<T
state_dir = "$d/state"
[[driver]]
driver = "selinux"
offline = true
manager_context = "system_u:system_r:virtd_t:s0-s0:c0.c1023"
[[driver]]
driver = "dac"
uid_range = "40000-59999"
T
mk() { for k in 1 2 3 4; do echo x > "$d/$1-$k.img"; done
  printf 'name = "%s"\n[[disk]]\npath = "%s"\n[[disk]]\npath = "%s"\n[[disk]]\npath = "%s"\nshareable = true\n[[disk]]\npath = "%s"\nreadonly = true\n' \
    "$1" "$d/$1-1.img" "$d/$1-2.img" "$d/$1-3.img" "$d/$1-4.img" > "$d/$1.toml"; }
S=("$SVIRT" --config "$d/svirt.toml")
cycle() { "${S[@]}" start "$d/$1.toml" >/dev/null && "${S[@]}" stop "$1" >/dev/null; }
ns() { date +%s%N; }
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mk probe; cycle probe
strace -f -qq -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$d/st1" "${S[@]}" start "$d/probe.toml" >/dev/null
strace -f -qq -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$d/st2" "${S[@]}" stop probe >/dev/null
f1=$(grep -c sync "$d/st1"); f2=$(grep -c sync "$d/st2")
A=(); B=()
for i in $(seq 1 15); do
  s=$(ns); cycle probe; e=$(ns); A+=($((e-s)))
  s=$(ns); echo quit | qemu-system-x86_64 -machine none -display none -monitor stdio -serial none -nodefaults >/dev/null 2>&1; e=$(ns); B+=($((e-s)))
done
a=$(printf '%s\n' "${A[@]}" | med); b=$(printf '%s\n' "${B[@]}" | med)
printf '| CLI start+stop, 4 disks | %.1f ms | %.2fx a qemu -machine none start-and-quit (%.1f ms) |\n' \
  "$(echo "$a/1000000" | bc -l)" "$(echo "$a/$b" | bc -l)" "$(echo "$b/1000000" | bc -l)"
printf '| fsyncs | start %s, stop %s | |\n' "$f1" "$f2"
F=(); for i in $(seq 1 50); do
  strace -f -qq -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$d/st" "${S[@]}" start "$d/probe.toml" >/dev/null; F+=($(grep -c sync "$d/st"))
  strace -f -qq -e trace=fsync,fdatasync,sync_file_range,syncfs -o "$d/st" "${S[@]}" stop probe >/dev/null; F+=($(grep -c sync "$d/st"))
done
printf '%s\n' "${F[@]}" | sort -n | uniq -c | awk '{printf "%s ops with %s, ", $1, $2} END {print ""}' | sed 's/, $//' |
  xargs -I{} printf '| fsyncs over 100 operations | %s | |\n' "{}"
n=0; base=""
for target in 10 1000 10000; do
  [ "$target" -le "$MAX" ] || break
  while [ $n -lt $target ]; do n=$((n+1)); mk r$n; "${S[@]}" start "$d/r$n.toml" >/dev/null; done
  C=(); for i in $(seq 1 7); do s=$(ns); cycle probe; e=$(ns); C+=($((e-s))); done
  c=$(printf '%s\n' "${C[@]}" | med); [ -n "$base" ] || base=$c
  printf '| start+stop with %s running | %.1f ms | %.2fx with 10 running |\n' "$target" "$(echo "$c/1000000" | bc -l)" "$(echo "$c/$base" | bc -l)"
done
