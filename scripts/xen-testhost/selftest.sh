#!/usr/bin/env bash
# Self-test of the Xen test host.
#
# On the host:   scripts/xen-testhost/selftest.sh [run options...]
#   compiles memshr-check.c against the host's libxen-dev (into $XME_CACHE/xen-testhost/bin/), then
#   runs itself inside dom0 through scripts/xen-testhost/run.
# Inside dom0 (XEN_TESTHOST=1), it checks:
#   1. `xl info` reports the hypervisor (virt_caps with hap);
#   2. `xl create` of two PVH domUs from the xme guest image ($XME_CACHE/images/cloud) and the
#      XME-BOOTED marker in their xenconsoled logs (/var/log/xen/console/guest-<name>.log);
#   3. xc_memshr_control(domid, 1) returns 0 (memshr-check enable);
#   4. nominate + share of byte-identical non-zero pages between the two domUs (memshr-check
#      share) makes xc_sharing_freed_pages grow, and both domUs still run afterwards;
#   5. xl destroy.
# Env: SELFTEST_IMAGE (default $XME_CACHE/images/cloud), SELFTEST_MEM_MB (96), SELFTEST_DOMUS (2).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
XME_CACHE="${XME_CACHE:-$HOME/.cache/xme}"

if [[ "${XEN_TESTHOST:-}" != 1 ]]; then
  BIN="$XME_CACHE/xen-testhost/bin"
  mkdir -p "$BIN"
  gcc -O2 -Wall -o "$BIN/memshr-check" "$HERE/memshr-check.c" -lxenctrl -lxenforeignmemory
  export XEN_TESTHOST_ENV="${XEN_TESTHOST_ENV:-} SELFTEST_IMAGE SELFTEST_MEM_MB SELFTEST_DOMUS"
  exec "$HERE/run" "$@" -- "$HERE/selftest.sh"
fi

MEMSHR="$XME_CACHE/xen-testhost/bin/memshr-check"
IMG="${SELFTEST_IMAGE:-$XME_CACHE/images/cloud}"
MEM="${SELFTEST_MEM_MB:-96}"
N="${SELFTEST_DOMUS:-2}"
CONSOLE_DIR=/var/log/xen/console
t() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b - a}'; }
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAILED=1; }
FAILED=0
NAMES=()
cleanup() { local n; for n in "${NAMES[@]}"; do xl destroy "$n" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

echo "== xl info"
xl info | grep -E '^(host|release|xen_version|xen_caps|virt_caps|total_memory|free_memory|xen_commandline|nr_cpus)' \
  || bad "xl info"
xl info | grep -q '^virt_caps.*hap' && ok "hypervisor has HAP" || bad "no hap in virt_caps"
echo "dom0 libs: $(ls /usr/lib/x86_64-linux-gnu/ | grep -E '^libxen(ctrl|foreignmemory)\.so\.[0-9.]+$' | tr '\n' ' ')"

[[ -s "$IMG/vmlinuz" && -s "$IMG/initramfs.cpio" ]] || { bad "no guest image in $IMG"; exit 1; }
for i in $(seq 1 "$N"); do
  name="xt-selftest-$i"
  cat >"/tmp/$name.cfg" <<EOF
name = "$name"
type = "pvh"
memory = $MEM
vcpus = 1
kernel = "$IMG/vmlinuz"
ramdisk = "$IMG/initramfs.cpio"
cmdline = "console=hvc0 nokaslr xme.workload=idle"
on_crash = "preserve"
EOF
  t0=$(t)
  if xl create "/tmp/$name.cfg" >/tmp/$name.create.log 2>&1; then
    NAMES+=("$name")
    ok "xl create $name in $(dt "$t0" "$(t)") s (domid $(xl domid "$name"))"
  else
    bad "xl create $name"; cat /tmp/$name.create.log; exit 1
  fi
  T_CREATED[$i]=$t0
done

for i in $(seq 1 "$N"); do
  name="xt-selftest-$i"; log="$CONSOLE_DIR/guest-$name.log"
  for _ in $(seq 1 600); do grep -qa '^XME-BOOTED' "$log" 2>/dev/null && break; sleep 0.2; done
  if grep -qa '^XME-BOOTED' "$log" 2>/dev/null; then
    ok "$name reached XME-BOOTED $(dt "${T_CREATED[$i]}" "$(t)") s after xl create: $(grep -a -m1 '^XME-BOOTED' "$log" | tr -d '\r')"
  else
    bad "$name: no XME-BOOTED in $log"; tail -20 "$log" 2>/dev/null; xl list
  fi
done
xl list

echo "== memory sharing"
D1=$(xl domid xt-selftest-1)
"$MEMSHR" enable "$D1" && ok "xc_memshr_control($D1, 1) = 0" || bad "xc_memshr_control"
if ((N >= 2)); then
  D2=$(xl domid xt-selftest-2)
  t0=$(t)
  if ZERO="${SELFTEST_ZERO:-0}" "$MEMSHR" share "$D1" "$D2" 0 $((MEM * 256)) | tee /tmp/share.out; then
    freed_before=$(awk '/^before:/{for(i=1;i<=NF;i++) if($i ~ /^freed_pages=/){split($i,a,"=");print a[2]}}' /tmp/share.out)
    freed_after=$(awk '/^after:/{for(i=1;i<=NF;i++) if($i ~ /^freed_pages=/){split($i,a,"=");print a[2]}}' /tmp/share.out)
    if ((freed_after > freed_before)); then
      ok "sharing freed $((freed_after - freed_before)) pages in $(dt "$t0" "$(t)") s"
    else bad "freed_pages did not grow"; fi
  else
    bad "memshr-check share"
  fi
  sleep 3
  for n in "${NAMES[@]}"; do
    state=$(xl list "$n" 2>/dev/null | awk 'NR==2{print $5}')
    [[ -n "$state" && "$state" != *c* ]] && ok "$n still alive after sharing (state $state)" || bad "$n state '$state'"
  done
  "$MEMSHR" enable "$D1" | tail -1
fi

for n in "${NAMES[@]}"; do
  t0=$(t); xl destroy "$n" && ok "xl destroy $n in $(dt "$t0" "$(t)") s" || bad "xl destroy $n"
done
NAMES=()
((FAILED == 0)) && echo "SELFTEST PASSED" || echo "SELFTEST FAILED"
exit "$FAILED"
