#!/bin/sh
# PID 1 of the SELinux test guest. Stage 1 (kernel domain) loads the policy in enforcing mode,
# then re-executes this file, labeled init_exec_t, so stage 2 runs in init_t. Stage 2 runs the
# per-run payload's scenario, prints the kernel's AVC denials, and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ "$1" != stage2 ]; then
  mountpoint -q /proc || mount -t proc proc /proc
  mountpoint -q /sys || mount -t sysfs sysfs /sys
  /sbin/load_policy -i; echo "SVTEST load_policy rc=$?"
  exec /usr/local/sbin/svirt-test-init stage2
  echo "SVTEST-FAIL re-exec into init_t"; sleep 2; exit 1
fi
read -r ctx < /proc/self/attr/current; echo "SVTEST init context=$ctx"
# Nodes made before the policy was loaded carry default labels; relabel them as systemd does.
restorecon -R /dev /run >/dev/null 2>&1
mount -t tmpfs -o mode=0755 tmpfs /run && restorecon -R /run >/dev/null 2>&1
# Without auditd the kernel rate-limits audit records on the console; every denial is wanted.
echo 0 > /proc/sys/kernel/printk_ratelimit
echo "SVTEST getenforce=$(getenforce)"
if mount -o ro /dev/vdb /mnt; then
  # Through a pipe: a console fd opened by the kernel would be revoked across transitions.
  /mnt/run 2>&1 | cat
else
  echo "SVTEST-FAIL cannot mount the payload disk"
fi
echo "SVTEST kernel AVC denials:"
dmesg | grep 'avc:  denied' | sed 's/^/SVTEST-AVC /'
echo "SVTEST-DONE"
sync
poweroff -f -f 2>/dev/null || echo o > /proc/sysrq-trigger
sleep 10
