#!/usr/bin/env bash
# Build the module and link it into a copy of Debian's installed policy (selinux-policy-default)
# in a scratch root, the way `semodule -i` would on a host. Proves it compiles and links.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pp=$("$here/build.sh" "${1:-$here/../target/policy}" | tail -n1)
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/selinux" "$root/var/lib/selinux"
cp -a /etc/selinux/default "$root/etc/selinux/"
cp -a /etc/selinux/semanage.conf "$root/etc/selinux/" 2>/dev/null || true
cp -a /var/lib/selinux/default "$root/var/lib/selinux/"
semodule -p "$root" -s default -n -i "$pp"
semodule -p "$root" -s default -l | grep -qx 'svirt_manager' || { echo "module not listed after install" >&2; exit 1; }
pol=$(ls "$root"/etc/selinux/default/policy/policy.* | head -n1)
echo "svirt_manager.pp links into Debian's policy: $(basename "$pol") $(stat -c %s "$pol") bytes"
