#!/bin/sh
# The scenario, inside the enforcing guest, through the real svirt CLI (svirt_manager_t) with the
# SELinux driver in kernel mode. Every check prints SVTEST-PASS or SVTEST-FAIL.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
S=/mnt/svirt; P=/mnt/svirt-probe; C=/mnt/selinux.toml; K=/mnt/stack.toml
I=/var/lib/libvirt/images
ok=0; bad=0
pass() { echo "SVTEST-PASS $*"; ok=$((ok+1)); }
fail() { echo "SVTEST-FAIL $*"; bad=$((bad+1)); }
ctx() { stat -c %C "$1"; }
state() { for f in "$@"; do echo "$f $(ctx "$f") $(stat -c '%u:%g %a' "$f")"; done; }
label_of() { "$S" --config "$1" --json status "$2" | grep -o '"label": "[^"]*"' | head -n1 | cut -d'"' -f4; }
# expect REPORT PATH READ WRITE WHO
expect() {
  line=$(grep "^path $2 " "$1")
  case "$line" in
    *"read=$3 write=$4") pass "$5: $2 read=$3 write=$4";;
    *) fail "$5: $2 wanted read=$3 write=$4, got: $line";;
  esac
}

# ---- svirt audit (issue 13): helpers -------------------------------------------------------
# audit_pairs JSON: one line per listed (subject, path): "SUBJECT PATH read=ok|EACCES write=..."
# (svirt prints a report's fields in declaration order: a subject's name before its entries),
# and "UNREADABLE PATH" for every entry the audit could not read.
audit_pairs() {
  awk '
    /^ *"name": / { s=$0; sub(/^ *"name": "/, "", s); sub(/",?$/, "", s); subj=s }
    /^ *"path": / { p=$0; sub(/^ *"path": "/, "", p); sub(/",?$/, "", p); path=p }
    /^ *"error": / { bad=1 }
    /^ *"read": / { r = ($0 ~ /true/) ? "ok" : "EACCES" }
    /^ *"write": / { w = ($0 ~ /true/) ? "ok" : "EACCES" }
    /^ *},?$/ { if (bad) print "UNREADABLE", path; else if (r != "" && w != "") print subj, path, "read=" r, "write=" w; r=""; w=""; bad=0 }
  ' "$1"
}
# audit_agrees PAIRS SUBJECT REPORT PATH...: the audit's prediction for every PATH equals what
# the kernel did in the probe's REPORT (a path the audit does not list is predicted unreachable).
audit_agrees() {
  pairs=$1; who=$2; rep=$3; shift 3; diff=""
  for p in "$@"; do
    want=$(awk -v s="$who" -v p="$p" '$1 == s && $2 == p { print $3, $4 }' "$pairs")
    [ -n "$want" ] || want="read=EACCES write=EACCES"
    grep -q "^UNREADABLE $p\$" "$pairs" && want="unreadable"
    got=$(grep "^path $p " "$rep" | cut -d' ' -f3-)
    [ "$want" = "$got" ] || diff="$diff [$p: audit $want, kernel $got]"
  done
  if [ -z "$diff" ]; then pass "svirt audit predicted all $# opens of $who as the kernel decided them"
  else fail "svirt audit disagrees with the kernel for $who:$diff"; fi
}
# ---- end of svirt audit helpers -------------------------------------------------------------

read -r me < /proc/self/attr/current; echo "SVTEST runner context=$me"
mkdir -p "$I/share1"
for f in vm1 vm2 vm3 shared content r1 r2 r3 static rs dac4 r4 other4 world4; do echo "data $f" > "$I/$f.img"; done
echo "share file" > "$I/share1/f"
FILES="$I/vm1.img $I/vm2.img $I/vm3.img $I/shared.img $I/content.img $I/share1 $I/share1/f $I/r1.img $I/r2.img $I/r3.img"
BEFORE=$(state $FILES)
echo "$BEFORE" | sed 's/^/SVTEST before: /'

# --- the manager itself is confined
drv=$("$S" --config "$C" drivers 2>&1)
echo "$drv" | sed 's/^/SVTEST drivers: /'
case "$drv" in *svirt_manager_t*) pass "svirt runs confined in svirt_manager_t";; *) fail "svirt is not in svirt_manager_t";; esac
out=$("$S" --config "$C" verify /etc/shadow 2>&1); rc=$?
echo "$out" | sed 's/^/SVTEST verify-shadow: /'
if [ $rc != 0 ] && echo "$out" | grep -q 'Permission denied'; then
  pass "svirt_manager_t is denied reading /etc/shadow"
else
  fail "svirt_manager_t read /etc/shadow (rc=$rc)"
fi

# --- three dynamic domains: private disks, one shared disk, read-only content, a share
for n in 1 2 3; do
  if "$S" --config "$C" start "/mnt/vm$n.toml" > "/tmp/start$n" 2>&1; then pass "start vm$n"; else fail "start vm$n: $(tr "\n" " " < /tmp/start$n)"; fi
done
echo "SVTEST labels: $(state $FILES | tr '\n' ';')"
# ---- svirt audit (issue 13): predict every open before any VM process runs ------------------
# svirt_manager_t may not write the runner's /tmp files: its output comes back through a pipe.
out=$("$S" --config "$C" --json audit --root "$I" --root /etc 2>&1); arc=$?
printf '%s\n' "$out" > /tmp/audit1.json
audit_pairs /tmp/audit1.json > /tmp/audit1.pairs
grep -v ' /etc/' /tmp/audit1.pairs | sed 's/^/SVTEST audit1: /'
echo "SVTEST audit1: $(grep -c ' /etc/' /tmp/audit1.pairs) entries under /etc, $(grep -c '^UNREADABLE' /tmp/audit1.pairs) unreadable"
[ $arc = 0 ] && grep -q '"violations": 0' /tmp/audit1.json && pass "svirt audit runs confined in the guest and finds no violation" \
  || fail "svirt audit (rc=$arc) before the probes: $(grep -c '"class"' /tmp/audit1.json) entries"
# ---- end of svirt audit block ---------------------------------------------------------------
for n in 1 2 3; do
  L=$(label_of "$C" "vm$n")
  echo "SVTEST vm$n label $L"
  "$S" --config "$C" exec "vm$n" -- "$P" "$I/r$n.img" "$I/vm1.img" "$I/vm2.img" "$I/vm3.img" \
       "$I/shared.img" "$I/content.img" /etc/shadow "$I/share1/f"
  R="$I/r$n.img"
  sed "s/^/SVTEST vm$n report: /" "$R"
  # ---- svirt audit (issue 13): the prediction made before the probe equals the kernel's answer
  audit_agrees /tmp/audit1.pairs "vm$n" "$R" "$I/vm1.img" "$I/vm2.img" "$I/vm3.img" \
    "$I/shared.img" "$I/content.img" /etc/shadow "$I/share1/f"
  [ $n = 1 ] && L1=$L
  got=$(grep '^context ' "$R" | cut -d' ' -f2)
  [ -n "$L" ] && [ "$got" = "$L" ] && pass "vm$n runs as its label $L" || fail "vm$n runs as '$got', want '$L'"
  for m in 1 2 3; do
    if [ $m = $n ]; then expect "$R" "$I/vm$m.img" ok ok "vm$n own disk"
    else expect "$R" "$I/vm$m.img" EACCES EACCES "vm$n other VM's disk"; fi
  done
  expect "$R" "$I/shared.img" ok ok "vm$n shared disk"
  expect "$R" "$I/content.img" ok EACCES "vm$n read-only content"
  expect "$R" /etc/shadow EACCES EACCES "vm$n host file"
  if [ $n = 1 ]; then expect "$R" "$I/share1/f" ok ok "vm1 own directory share"
  else expect "$R" "$I/share1/f" EACCES EACCES "vm$n other VM's directory share"; fi
done
for n in 1 2 3; do "$S" --config "$C" stop "vm$n" > /dev/null 2>&1 || fail "stop vm$n"; done
# ---- svirt audit (issue 13): a file left with a stopped VM's label is found -------------------
stale=$(echo "$L1" | sed 's/:system_r:svirt_t:/:object_r:svirt_image_t:/')
echo stale > "$I/stale1.img"; chcon "$stale" "$I/stale1.img"
out=$("$S" --config "$C" --json audit --root "$I" 2>&1); arc=$?
printf '%s\n' "$out" > /tmp/audit2.json
if [ $arc = 1 ] && grep -A2 "\"path\": \"$I/stale1.img\"" /tmp/audit2.json | grep -q '"class": "stale-mark"'; then
  pass "svirt audit finds $I/stale1.img left with stopped vm1's label $stale"
else fail "svirt audit missed the stale label (rc=$arc): $(tr '\n' ' ' < /tmp/audit2.json | cut -c1-600)"; fi
rm -f "$I/stale1.img"
# ---- end of svirt audit block ---------------------------------------------------------------
AFTER=$(state $FILES)
if [ "$BEFORE" = "$AFTER" ]; then pass "every label, owner and mode is back after stop"
else fail "not restored:"; echo "$AFTER" | sed 's/^/SVTEST after: /'; fi

# --- a static label: exactly that label, files untouched
chcon system_u:object_r:svirt_image_t:s0:c100,c200 "$I/rs.img"
SB=$(state "$I/static.img" "$I/rs.img")
if "$S" --config "$C" start /mnt/static.toml > /tmp/st 2>&1; then pass "start static"; else fail "start static: $(tr "\n" " " < /tmp/st)"; fi
[ "$(state "$I/static.img" "$I/rs.img")" = "$SB" ] && pass "static domain's files untouched at start" || fail "static start relabeled files"
"$S" --config "$C" exec static -- "$P" "$I/rs.img" "$I/static.img" "$I/vm1.img"
sed "s/^/SVTEST static report: /" "$I/rs.img"
got=$(grep '^context ' "$I/rs.img" | cut -d' ' -f2)
[ "$got" = "system_u:system_r:svirt_t:s0:c100,c200" ] && pass "static domain runs as exactly its label" || fail "static domain runs as '$got'"
expect "$I/rs.img" "$I/vm1.img" EACCES EACCES "static domain"
"$S" --config "$C" stop static > /dev/null 2>&1 || fail "stop static"
[ "$(state "$I/static.img" "$I/rs.img")" = "$SB" ] && pass "static domain's files untouched at stop" || fail "static stop changed files"

# --- SELinux and DAC stacked: both walls hold
chcon system_u:object_r:svirt_image_t:s0 "$I/other4.img"; chmod 600 "$I/other4.img"              # SELinux allows, DAC denies
chcon system_u:object_r:svirt_image_t:s0:c1022,c1023 "$I/world4.img"; chmod 666 "$I/world4.img"   # DAC allows, SELinux denies
KB=$(state "$I/dac4.img" "$I/r4.img" "$I/other4.img" "$I/world4.img")
if "$S" --config "$K" start /mnt/vm4.toml > /tmp/s4 2>&1; then pass "start vm4 (selinux+dac)"; else fail "start vm4: $(tr "\n" " " < /tmp/s4)"; fi
# ---- svirt audit (issue 13): predict vm4's opens with both walls (SELinux and DAC) ------------
out=$("$S" --config "$K" --json audit --domain vm4 --root "$I" --root /etc 2>&1)
printf '%s\n' "$out" > /tmp/audit4.json
audit_pairs /tmp/audit4.json > /tmp/audit4.pairs
grep -q '"walls": \[' /tmp/audit4.json && sed -n '/"walls"/,/]/p' /tmp/audit4.json | tr -d ' \n' | sed 's/^/SVTEST audit4 /'; echo
# ---- end of svirt audit block ---------------------------------------------------------------
"$S" --config "$K" exec vm4 -- "$P" "$I/r4.img" "$I/dac4.img" "$I/other4.img" "$I/world4.img" /etc/shadow
# ---- svirt audit (issue 13): vm4's prediction equals the kernel's; a private disk labeled shared
audit_agrees /tmp/audit4.pairs vm4 "$I/r4.img" "$I/dac4.img" "$I/other4.img" "$I/world4.img" /etc/shadow
own4=$(ctx "$I/dac4.img")
chcon system_u:object_r:svirt_image_t:s0 "$I/dac4.img"
out=$("$S" --config "$K" --json audit --root "$I" 2>&1); arc=$?
printf '%s\n' "$out" > /tmp/audit5.json
if [ $arc = 1 ] && grep -A2 "\"path\": \"$I/dac4.img\"" /tmp/audit5.json | grep -q '"class": "private-labeled-shared"'; then
  pass "svirt audit finds vm4's private disk labeled shared"
else fail "svirt audit missed vm4's private disk labeled shared (rc=$arc): $(tr '\n' ' ' < /tmp/audit5.json | cut -c1-600)"; fi
chcon "$own4" "$I/dac4.img"
# ---- end of svirt audit block ---------------------------------------------------------------
sed "s/^/SVTEST vm4 report: /" "$I/r4.img"
# real, effective, saved and filesystem uids: all the VM's own
uids=$(grep '^uid ' "$I/r4.img")
uid=$(echo "$uids" | awk '{ print ($2 == $3 && $3 == $4 && $4 == $5) ? $2 : "mixed" }')
[ "${uid:-0}" -ge 64000 ] 2>/dev/null && [ "$uid" -le 64999 ] && pass "vm4 runs as its own uid $uid (real, effective, saved)" || fail "vm4 uids '$uids'"
grep -q '^context system_u:system_r:svirt_t:s0:c' "$I/r4.img" && pass "vm4 runs in svirt_t with an MCS pair" || fail "vm4 context"
grep -q '^nonewprivs 1' "$I/r4.img" && pass "vm4 has no_new_privs" || fail "vm4 no_new_privs"
expect "$I/r4.img" "$I/dac4.img" ok ok "vm4 own disk"
expect "$I/r4.img" "$I/other4.img" EACCES EACCES "vm4 (DAC wall)"
expect "$I/r4.img" "$I/world4.img" EACCES EACCES "vm4 (SELinux wall)"
"$S" --config "$K" stop vm4 > /dev/null 2>&1 || fail "stop vm4"
[ "$(state "$I/dac4.img" "$I/r4.img" "$I/other4.img" "$I/world4.img")" = "$KB" ] && pass "vm4's labels, owners and modes are back" || fail "vm4 not restored"

# ==== issue 14: libvirt fidelity (nvram, sockets, pipes, a chain under relabel='no') ==========
# A libvirt domain (/mnt/vm5.xml): nvram gets the VM's image label, a connect-mode socket the
# image label, a listen-mode socket QEMU would create is skipped (the start does not fail), a
# pipe's PATH.in and PATH.out both get the image label, a chain whose top says relabel='no' keeps
# its labels, a normal chain gets image label + content, the loader is never touched.
V=/mnt/vm5.xml
for f in vm5_VARS.fd vm5.qcow2 vm5-base.qcow2 vm5-keep.qcow2 vm5-keepbase.qcow2 vm5-loader.fd r5.img; do echo "data $f" > "$I/$f"; done
rm -f "$I/vm5-connect.sock" "$I/vm5-agent.sock" "$I/vm5-pipe.in" "$I/vm5-pipe.out"
perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 1) or exit 1' "$I/vm5-connect.sock"
mkfifo "$I/vm5-pipe.in" "$I/vm5-pipe.out"
F5="$I/vm5_VARS.fd $I/vm5.qcow2 $I/vm5-base.qcow2 $I/vm5-keep.qcow2 $I/vm5-keepbase.qcow2 $I/vm5-loader.fd $I/r5.img $I/vm5-connect.sock $I/vm5-pipe.in $I/vm5-pipe.out"
B5=$(state $F5)
echo "$B5" | sed 's/^/SVTEST vm5 before: /'
# Outputs are captured through pipes: svirt_manager_t may not write the runner's /tmp files.
v5=$("$S" --config "$C" verify "$V" 2>&1)
echo "$v5" | sed 's/^/SVTEST vm5 verify: /'
if echo "$v5" | grep -q "vm5-agent.sock skip: a listen-mode socket" && echo "$v5" | grep -q "vm5-loader.fd skip: the firmware loader"; then
  pass "vm5 verify shows the listen socket and the loader skipped, with why"
else fail "vm5 verify plan"; fi
if s5=$("$S" --config "$C" start "$V" 2>&1); then pass "start vm5 (a listen socket that does not exist yet)"; else fail "start vm5"; fi
echo "$s5" | sed 's/^/SVTEST vm5 start: /'
IMG5=$("$S" --config "$C" --json status vm5 | grep -o '"imagelabel": "[^"]*"' | head -n1 | cut -d'"' -f4)
echo "SVTEST vm5 image label $IMG5 now: $(state $F5 | tr '\n' ';')"
case "$IMG5" in system_u:object_r:svirt_image_t:s0:c*) ;; *) IMG5=unknown;; esac
[ "$(ctx "$I/vm5_VARS.fd")" = "$IMG5" ] && pass "vm5 nvram has the image label" || fail "vm5 nvram is $(ctx "$I/vm5_VARS.fd")"
[ "$(ctx "$I/vm5-connect.sock")" = "$IMG5" ] && pass "vm5 connect-mode socket has the image label" || fail "vm5 connect socket is $(ctx "$I/vm5-connect.sock")"
[ ! -e "$I/vm5-agent.sock" ] && pass "vm5 listen-mode socket left for QEMU to create" || fail "vm5 listen socket exists"
[ "$(ctx "$I/vm5-pipe.in")" = "$IMG5" ] && [ "$(ctx "$I/vm5-pipe.out")" = "$IMG5" ] && pass "vm5 pipe halves .in and .out have the image label" || fail "vm5 pipe halves $(ctx "$I/vm5-pipe.in") $(ctx "$I/vm5-pipe.out")"
[ "$(ctx "$I/vm5.qcow2")" = "$IMG5" ] && [ "$(ctx "$I/vm5-base.qcow2")" = "system_u:object_r:virt_content_t:s0" ] && pass "vm5 chain: top image label, backing layer content" || fail "vm5 chain $(ctx "$I/vm5.qcow2") $(ctx "$I/vm5-base.qcow2")"
if [ "$(state "$I/vm5-keep.qcow2" "$I/vm5-keepbase.qcow2" "$I/vm5-loader.fd")" = "$(echo "$B5" | grep -e vm5-keep.qcow2 -e vm5-keepbase.qcow2 -e vm5-loader.fd)" ]; then
  pass "vm5 chain under relabel='no' and the loader are untouched"
else fail "vm5 relabel='no' chain or loader changed"; fi
"$S" --config "$C" exec vm5 -- "$P" "$I/r5.img" "$I/vm5_VARS.fd" "$I/vm5-base.qcow2"
sed "s/^/SVTEST vm5 report: /" "$I/r5.img"
if grep -q "^path $I/vm5_VARS.fd read=ok write=ok" "$I/r5.img" && grep -q "^path $I/vm5-base.qcow2 read=ok write=EACCES" "$I/r5.img"; then
  pass "vm5 under enforcing: nvram read-write, backing layer read-only"
else fail "vm5 access under enforcing"; fi
"$S" --config "$C" stop vm5 > /dev/null 2>&1 || fail "stop vm5"
[ "$(state $F5)" = "$B5" ] && pass "vm5: every label is back after stop" || { fail "vm5 not restored"; state $F5 | sed 's/^/SVTEST vm5 after: /'; }
# ==== end of issue 14 ===========================================================================

echo "SVTEST-SUMMARY $ok passed, $bad failed"
