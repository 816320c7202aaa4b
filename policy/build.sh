#!/usr/bin/env bash
# Build the svirt_manager policy module with Debian's refpolicy toolchain (selinux-policy-dev).
# Usage: policy/build.sh [OUTDIR]   -> OUTDIR/svirt_manager.pp (default: target/policy)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/policy}
mk=/usr/share/selinux/devel/Makefile
[ -f "$mk" ] || { echo "policy/build.sh: $mk missing; apt-get install selinux-policy-dev" >&2; exit 2; }
mkdir -p "$out"
cp "$here"/svirt_manager.{te,if,fc} "$out"/
make -s -C "$out" -f "$mk" svirt_manager.pp
echo "$out/svirt_manager.pp"
