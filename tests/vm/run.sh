#!/usr/bin/env bash
# Prove isolation on a real SELinux-enforcing kernel: build a Debian 12 guest with Debian's
# policy plus svirt's module (policy/), label it offline, put the release svirt and the probe on
# a per-run payload disk, boot it under QEMU (TCG), and run tests/vm/guest.sh inside.
# Exits 0 only when every check passes. Needs root and the Debian archive (apt, debootstrap).
#
#   tests/vm/run.sh                      # full run (about 5 minutes on a fresh machine)
#   SVIRT_VM_REUSE=1 tests/vm/run.sh     # reuse the debootstrapped tree from an earlier run
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${SVIRT_VM_WORK:-/var/tmp/svirt-vm}
ROOT=$WORK/rootfs
mkdir -p "$WORK"
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
step() { echo "== $(( $(date +%s) - t0 ))s: $*"; }

# ---- host tools
need=()
for t in debootstrap:debootstrap setfiles:policycoreutils semodule:policycoreutils \
         mkfs.ext4:e2fsprogs setfattr:attr /usr/share/selinux/devel/Makefile:selinux-policy-dev; do
  p=${t%%:*}
  if [ "${p#/}" != "$p" ]; then [ -e "$p" ] || need+=("${t##*:}"); else command -v "$p" >/dev/null || need+=("${t##*:}"); fi
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
  v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
  apt-get install -y -qq --no-install-recommends --allow-downgrades "qemu-system-x86=$v" "qemu-utils=$v" >/dev/null
fi

# ---- what goes in: the release binary, the probe, the policy module
step "building svirt, the probe and the policy module"
# Two builds: in one, the test crate's crash-injection feature would reach the svirt binary.
(cd "$repo" && cargo build --release -q -p svirt-cli --bin svirt \
  && cargo build --release -q -p svirt-tests --bin svirt-probe)
PP=$("$repo/policy/build.sh" "$WORK/policy" | tail -n1)

# ---- the guest tree
if [ "${SVIRT_VM_REUSE:-0}" = 1 ] && [ -f "$ROOT/.svirt-complete" ]; then
  step "reusing $ROOT"
else
  MIRROR=${MIRROR:-$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$MIRROR" ] || { echo "no Debian mirror in the apt sources; set MIRROR" >&2; exit 2; }
  rm -rf "$ROOT"
  step "debootstrap bookworm from $MIRROR"
  debootstrap --variant=minbase \
    --include=linux-image-amd64,initramfs-tools,selinux-basics,selinux-policy-default,selinux-utils,policycoreutils,kmod,procps,e2fsprogs,udev \
    bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log"; exit 1; }
  rm -f "$ROOT"/var/cache/apt/archives/*.deb
  touch "$ROOT/.svirt-complete"
fi
step "configuring the guest, installing svirt_manager.pp, labeling offline"
sed -i 's/^SELINUX=.*/SELINUX=enforcing/' "$ROOT/etc/selinux/config"
mkdir -p "$ROOT/var/lib/libvirt/images"
install -m 0755 "$repo/tests/vm/init.sh" "$ROOT/usr/local/sbin/svirt-test-init"
semodule -p "$ROOT" -s default -n -i "$PP" 2>&1 | grep -v 'not in password file' || true
semodule -p "$ROOT" -s default -l | grep -qx svirt_manager || { echo "svirt_manager not installed in the guest policy" >&2; exit 1; }
setfiles -m -r "$ROOT" "$ROOT/etc/selinux/default/contexts/files/file_contexts" "$ROOT"
setfattr -n security.selinux -v system_u:object_r:init_exec_t:s0 "$ROOT/usr/local/sbin/svirt-test-init"
KVER=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n1 | sed 's/.*vmlinuz-//')
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"; cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
rm -f "$WORK/root.img"
mkfs.ext4 -q -F -L svroot -I 256 -d "$ROOT" "$WORK/root.img" "$(( $(du -sm "$ROOT" | cut -f1) + 400 ))M"

# ---- the payload: binaries, scenario, configs and domains, labeled for the guest policy
step "payload disk"
PAY=$WORK/payload; rm -rf "$PAY"; mkdir -p "$PAY"
TGT=${CARGO_TARGET_DIR:-$repo/target}
cp "$TGT/release/svirt" "$TGT/release/svirt-probe" "$PAY/"
install -m 0755 "$repo/tests/vm/guest.sh" "$PAY/run"
I=/var/lib/libvirt/images
cat > "$PAY/selinux.toml" <<EOT
state_dir = "/run/svirt"
[[driver]]
driver = "selinux"
EOT
# The stack hands out pairs from c0.c511 only, so world4.img's c1022,c1023 is never vm4's.
cat > "$PAY/stack.toml" <<EOT
state_dir = "/run/svirt-stack"
[[driver]]
driver = "selinux"
manager_context = "system_u:system_r:svirt_manager_t:s0-s0:c0.c511"
[[driver]]
driver = "dac"
uid_range = "64000-64999"
EOT
for n in 1 2 3; do
  {
    echo "name = \"vm$n\""
    printf '[[disk]]\npath = "%s/vm%s.img"\n' "$I" "$n"
    printf '[[disk]]\npath = "%s/r%s.img"\n' "$I" "$n"
    printf '[[disk]]\npath = "%s/shared.img"\nshareable = true\n' "$I"
    printf '[[disk]]\npath = "%s/content.img"\nreadonly = true\n' "$I"
    [ "$n" = 1 ] && printf '[[filesystem]]\npath = "%s/share1"\n' "$I"
  } > "$PAY/vm$n.toml"
done
printf 'name = "static"\n[[seclabel]]\nmodel = "selinux"\ntype = "static"\nlabel = "system_u:system_r:svirt_t:s0:c100,c200"\n[[disk]]\npath = "%s/static.img"\n[[disk]]\npath = "%s/rs.img"\n' "$I" "$I" > "$PAY/static.toml"
printf 'name = "vm4"\n[[disk]]\npath = "%s/dac4.img"\n[[disk]]\npath = "%s/r4.img"\n' "$I" "$I" > "$PAY/vm4.toml"
# ---- issue 14: a libvirt domain with nvram, a connect-mode and a listen-mode socket, a pipe pair
# and a backing chain under relabel='no' (checked by the issue-14 block of guest.sh)
cat > "$PAY/vm5.xml" <<EOT
<domain type='kvm'>
  <name>vm5</name>
  <uuid>5a5a5a5a-0000-4000-8000-000000000005</uuid>
  <memory unit='KiB'>1048576</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>$I/vm5-loader.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS.fd'>$I/vm5_VARS.fd</nvram>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$I/vm5.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='$I/vm5-base.qcow2'/><backingStore/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$I/vm5-keep.qcow2'><seclabel model='selinux' relabel='no'/></source>
      <backingStore type='file'><format type='qcow2'/><source file='$I/vm5-keepbase.qcow2'/><backingStore/></backingStore>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$I/r5.img'/><target dev='vdc' bus='virtio'/></disk>
    <serial type='unix'><source mode='connect' path='$I/vm5-connect.sock'/><target port='0'/></serial>
    <channel type='unix'><source mode='bind' path='$I/vm5-agent.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pipe'><source path='$I/vm5-pipe'/><target port='1'/></serial>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
</domain>
EOT
setfattr -n security.selinux -v system_u:object_r:svirt_manager_conf_t:s0 "$PAY" "$PAY"/*.toml "$PAY"/*.xml
setfattr -n security.selinux -v system_u:object_r:svirt_manager_exec_t:s0 "$PAY/svirt"
setfattr -n security.selinux -v system_u:object_r:qemu_exec_t:s0 "$PAY/svirt-probe"
setfattr -n security.selinux -v system_u:object_r:bin_t:s0 "$PAY/run"
rm -f "$WORK/payload.img"
mkfs.ext4 -q -F -L payload -d "$PAY" "$WORK/payload.img" 96M

# ---- boot and judge
step "booting the guest (TCG)"
LOG=$WORK/boot.log
set +e
timeout "${SVIRT_VM_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 2 \
  -nographic -no-reboot -nic none \
  -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw security=selinux selinux=1 enforcing=1 init=/usr/local/sbin/svirt-test-init panic=1" \
  -drive file="$WORK/root.img",format=raw,if=virtio \
  -drive file="$WORK/payload.img",format=raw,if=virtio,readonly=on \
  < /dev/null > "$LOG" 2>&1
qrc=$?
set -e
step "guest finished (qemu rc=$qrc)"
tr -d '\r' < "$LOG" | grep -a '^SVTEST' > "$WORK/result.txt" || true
cat "$WORK/result.txt"
# Every check of guest.sh: a check that silently did not run is a failure too.
# 43 isolation checks, the issue-14 block (libvirt fidelity) and the svirt audit block of guest.sh.
EXPECTED_I14=10
EXPECTED_I13=7
EXPECTED=$((43 + EXPECTED_I14 + EXPECTED_I13))
fails=$(grep -c '^SVTEST-FAIL' "$WORK/result.txt" || true)
passes=$(grep -c '^SVTEST-PASS' "$WORK/result.txt" || true)
if grep -q '^SVTEST getenforce=Enforcing' "$WORK/result.txt" && grep -q '^SVTEST-DONE' "$WORK/result.txt" \
   && grep -q '^SVTEST-SUMMARY [0-9]* passed, 0 failed' "$WORK/result.txt" && [ "$fails" = 0 ] && [ "$passes" = "$EXPECTED" ]; then
  echo "vm: $passes passed, 0 failed"
  exit 0
fi
echo "vm: $passes passed (want $EXPECTED), $fails failed (boot log: $LOG)"
[ -s "$WORK/result.txt" ] || tail -n 40 "$LOG"
exit 1
