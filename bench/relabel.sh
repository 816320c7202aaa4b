#!/usr/bin/env bash
# Recursive relabel of a directory share, side by side in one run (root; needs gcc and chcon):
#   - CLI start and stop of a domain whose only resource is a share of FILES regular files in
#     100 directories, offline SELinux driver, against `chcon -R` there and back;
#   - a raw floor (bench/rawlabel.c: nftw + one lsetxattr per entry, one core) against `chcon -R`;
#   - the same SELinux start and stop on one thread (`relabel_threads = 1`);
#   - the same start and stop with the DAC driver, against `chown -R` there and back;
#   - the floor of a journaled walk (bench/rawfloor.c: only the calls svirt's walk cannot do
#     without, reading each entry before changing it; Linux 6.13), on one and two threads,
#     against `chcon -R` and `chown -R`: what no safe walk on this machine can beat.
# Every measure is taken once per round, rounds interleaved; medians over ROUNDS. Every entry
# starts each SELinux start at default_t and each DAC start at root:root with its mode as
# created; after each stop one deep file (and its directory) is checked to be back.
# Machines are noisy: read the ratios, not the times. The last line is for scripts.
#   bench/relabel.sh [SVIRT_BINARY] [FILES=100000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SVIRT=${1:-}
N=${2:-100000}
R=${3:-3}
[[ $N =~ ^[0-9]+$ && $N -ge 100 && $R =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SVIRT_BINARY] [FILES>=100] [ROUNDS>=1]" >&2; exit 2; }
if [ -z "$SVIRT" ]; then
  cargo build --release -q -p svirt-cli
  SVIRT=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/svirt
fi
[ -x "$SVIRT" ] || { echo "$0: $SVIRT is not an executable" >&2; exit 2; }
d=$(mktemp -d /var/tmp/svbench-relabel.XXXX); trap 'rm -rf "$d"' EXIT
BASE=system_u:object_r:default_t:s0
LAB=system_u:object_r:svirt_image_t:s0:c1,c2
gcc -O2 -Wall -Werror -o "$d/rawlabel" bench/rawlabel.c
gcc -O2 -Wall -Werror -pthread -o "$d/rawfloor" bench/rawfloor.c

# The share: N/100 files in each of 100 directories, modes from a known umask.
umask 022
share=$d/share per=$((N / 100))
for i in $(seq 1 100); do mkdir -p "$share/d$i"; (cd "$share/d$i" && seq 1 "$per" | xargs touch); done
entries=$(find "$share" | wc -l)
[ "$entries" -eq $((per * 100 + 101)) ] || { echo "$0: built $entries entries, expected $((per * 100 + 101))" >&2; exit 1; }
deep=$share/d100/$per
owner() { python3 -c 'import os,sys; s=os.lstat(sys.argv[1]); print("%d:%d:%o" % (s.st_uid, s.st_gid, s.st_mode & 0o7777))' "$1"; }
label() { python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "security.selinux", follow_symlinks=False).rstrip(b"\0").decode())' "$1"; }
file0=$(owner "$deep") dir0=$(owner "$share/d100")
[ "$file0" = 0:0:644 ] && [ "$dir0" = 0:0:755 ] || { echo "$0: unexpected owner/mode $file0 $dir0 as created" >&2; exit 1; }

cat > "$d/selinux.toml" <<T
state_dir = "$d/state-selinux"
[[driver]]
driver = "selinux"
offline = true
manager_context = "system_u:system_r:virtd_t:s0-s0:c0.c1023"
T
{ echo 'relabel_threads = 1'; sed 's/state-selinux/state-selinux1/' "$d/selinux.toml"; } > "$d/selinux1.toml"
cat > "$d/dac.toml" <<T
state_dir = "$d/state-dac"
[[driver]]
driver = "dac"
uid_range = "40000-59999"
T
printf 'name = "bench"\n[[filesystem]]\npath = "%s"\n' "$share" > "$d/vm.toml"

# run CMD..., failing loudly with its output; tm ARRAY CMD... also appends its wall time in s.
run() { "$@" > "$d/out" 2>&1 || { echo "$0: failed ($?): $*" >&2; cat "$d/out" >&2; exit 1; }; }
tm() {
  local -n _tm_into=$1; shift
  local s e
  s=$(date +%s.%N); run "$@"; e=$(date +%s.%N)
  _tm_into+=("$(echo "$e - $s" | bc)")
}
want() { [ "$2" = "$3" ] || { echo "$0: $1: $4 is $3, expected $2" >&2; exit 1; }; }
differ() { [ "$2" != "$3" ] || { echo "$0: $1: $4 is still $3" >&2; exit 1; }; }
dac_reset() { run chown -R -h 0:0 "$share"; run chmod -R a=rX,u+w "$share"; }

# The floor needs getxattrat/setxattrat (Linux 6.13); without them its rows are left out.
floor=1; "$d/rawfloor" selinux "$BASE" "$share" 1 2>/dev/null || floor=0
FSEL1=() FSEL2=() FDAC1=() FDAC2=()
SEL1_START=() SEL1_STOP=() SEL_START=() SEL_STOP=() CHCON=() CHCON_BACK=() RAW=() DAC_START=() DAC_STOP=() CHOWN=() CHOWN_BACK=()
for r in $(seq 1 "$R"); do
  # 1. SELinux driver, from default_t everywhere.
  run "$d/rawlabel" "$BASE" "$share"
  tm SEL_START "$SVIRT" --config "$d/selinux.toml" start "$d/vm.toml"
  differ "svirt start (SELinux) did not relabel" "$BASE" "$(label "$deep")" "$deep"
  tm SEL_STOP "$SVIRT" --config "$d/selinux.toml" stop bench
  want "svirt stop (SELinux) did not restore" "$BASE" "$(label "$deep")" "$deep"
  want "svirt stop (SELinux) did not restore" "$BASE" "$(label "$share/d100")" "$share/d100"
  # 1b. The same on one thread (relabel_threads = 1).
  run "$d/rawlabel" "$BASE" "$share"
  tm SEL1_START "$SVIRT" --config "$d/selinux1.toml" start "$d/vm.toml"
  differ "svirt start (SELinux, 1 thread) did not relabel" "$BASE" "$(label "$deep")" "$deep"
  tm SEL1_STOP "$SVIRT" --config "$d/selinux1.toml" stop bench
  want "svirt stop (SELinux, 1 thread) did not restore" "$BASE" "$(label "$deep")" "$deep"
  # 2. chcon -R there and back.
  tm CHCON chcon -R -h "$LAB" "$share"
  tm CHCON_BACK chcon -R -h "$BASE" "$share"
  # 3. The raw floor, from default_t everywhere.
  run "$d/rawlabel" "$BASE" "$share"
  tm RAW "$d/rawlabel" "$LAB" "$share"
  want "rawlabel did not label" "$LAB" "$(label "$deep")" "$deep"
  # 4. DAC driver, from root:root and the modes as created.
  dac_reset
  tm DAC_START "$SVIRT" --config "$d/dac.toml" start "$d/vm.toml"
  differ "svirt start (DAC) did not chown" "$file0" "$(owner "$deep")" "$deep"
  tm DAC_STOP "$SVIRT" --config "$d/dac.toml" stop bench
  want "svirt stop (DAC) did not restore" "$file0" "$(owner "$deep")" "$deep"
  want "svirt stop (DAC) did not restore" "$dir0" "$(owner "$share/d100")" "$share/d100"
  # 5. chown -R there and back.
  tm CHOWN chown -R 40000:40000 "$share"
  tm CHOWN_BACK chown -R 0:0 "$share"
  # 6. The floor of a journaled walk, from default_t and from root:root with the modes as made.
  if [ $floor = 1 ]; then
    for t in 1 2; do
      run "$d/rawlabel" "$BASE" "$share"
      tm "FSEL$t" "$d/rawfloor" selinux "$LAB" "$share" "$t"
      want "rawfloor did not label" "$LAB" "$(label "$deep")" "$deep"
      dac_reset
      tm "FDAC$t" "$d/rawfloor" dac 40000 40000 "$share" "$t"
      want "rawfloor did not chown" 40000:40000:600 "$(owner "$deep")" "$deep"
    done
    dac_reset
  fi
done

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ss=$(med "${SEL_START[@]}") sp=$(med "${SEL_STOP[@]}") cf=$(med "${CHCON[@]}") cb=$(med "${CHCON_BACK[@]}")
rw=$(med "${RAW[@]}") ds=$(med "${DAC_START[@]}") dp=$(med "${DAC_STOP[@]}") of=$(med "${CHOWN[@]}") ob=$(med "${CHOWN_BACK[@]}")
s1=$(med "${SEL1_START[@]}") p1=$(med "${SEL1_STOP[@]}")
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
row() { printf '| %s | %.3f | %s |\n' "$1" "$2" "$3"; }
echo "entries: $entries ($((per * 100)) files in 100 directories and the share root); rounds: $R"
echo
echo '| operation | median s | vs baseline (>1 = faster) |'
echo '| --- | --- | --- |'
row '`svirt start` (SELinux) vs `chcon -R`' "$ss" "$(ratio "$cf" "$ss")"
row '`svirt stop` (SELinux) vs `chcon -R` back' "$sp" "$(ratio "$cb" "$sp")"
row '`svirt start` (SELinux, 1 thread) vs `chcon -R`' "$s1" "$(ratio "$cf" "$s1")"
row '`svirt stop` (SELinux, 1 thread) vs `chcon -R` back' "$p1" "$(ratio "$cb" "$p1")"
row 'raw `lsetxattr` loop vs `chcon -R`' "$rw" "$(ratio "$cf" "$rw")"
row '`svirt start` (DAC) vs `chown -R`' "$ds" "$(ratio "$of" "$ds")"
row '`svirt stop` (DAC) vs `chown -R` back' "$dp" "$(ratio "$ob" "$dp")"
if [ $floor = 1 ]; then
  f1=$(med "${FSEL1[@]}") f2=$(med "${FSEL2[@]}") g1=$(med "${FDAC1[@]}") g2=$(med "${FDAC2[@]}")
  row 'floor of a journaled walk (SELinux, 1 thread) vs `chcon -R`' "$f1" "$(ratio "$cf" "$f1")"
  row 'floor of a journaled walk (SELinux, 2 threads) vs `chcon -R`' "$f2" "$(ratio "$cf" "$f2")"
  row 'floor of a journaled walk (DAC, 1 thread) vs `chown -R`' "$g1" "$(ratio "$of" "$g1")"
  row 'floor of a journaled walk (DAC, 2 threads) vs `chown -R`' "$g2" "$(ratio "$of" "$g2")"
fi
row 'baseline: `chcon -R`' "$cf" 1
row 'baseline: `chcon -R` back' "$cb" 1
row 'baseline: `chown -R`' "$of" 1
row 'baseline: `chown -R` back' "$ob" 1
echo
echo "ratios: start vs chcon $(ratio "$cf" "$ss"); stop vs chcon back $(ratio "$cb" "$sp"); dac start vs chown $(ratio "$of" "$ds"); dac stop vs chown back $(ratio "$ob" "$dp")"
