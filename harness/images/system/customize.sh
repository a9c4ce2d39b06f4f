#!/bin/sh
# mmdebstrap --customize-hook for system images (harness/images/system-build.ts runs it): the few edits that
# make the bootstrapped tree a bootable, loopback-only guest, the C code base for the build workload, and the
# pgbench tables. Runs on the host as root with the tree as $1 (mmdebstrap has /proc, /sys and /dev mounted in
# it); its text is part of the image's recipe hash. Parameters come in the environment:
#   XME_HOSTNAME  XME_APT_SOURCES (the tree's sources.list, deb lines only)
#   XME_BUILD_SOURCE XME_BUILD_DIR XME_BUILD_TARGET   (a Debian source package, where to unpack it, make target)
#   XME_PGBENCH_DB XME_PGBENCH_SCALE
set -eu
root="$1"
say() { echo "I: xme: $*" >&2; }
in_tree() { chroot "$root" "$@"; }

say "root without a password, / on /dev/vda, root logged in on ttyS0"
in_tree passwd -d root >/dev/null
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat > "$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - $TERM
EOF

say "hostname $XME_HOSTNAME, no network but loopback"
printf '%s\n' "$XME_HOSTNAME" > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$XME_HOSTNAME" > "$root/etc/hosts"
# systemd brings lo up by itself; nothing may configure another interface (minbase has no ifupdown or DHCP
# client; systemd-networkd is masked so that no later change of systemd's presets enables it).
for unit in systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

say "unpacking the $XME_BUILD_SOURCE source package into $XME_BUILD_DIR"
src="$root/usr/src"
in_tree sh -c "cd /usr/src && apt-get source --download-only -q '$XME_BUILD_SOURCE'" >&2 \
  || { echo "E: xme: apt-get source $XME_BUILD_SOURCE failed (deb-src of the same archive)" >&2; exit 1; }
orig=$(ls "$src/${XME_BUILD_SOURCE}_"*.orig.tar.* | head -n 1)
mkdir -p "$root$XME_BUILD_DIR"
tar -x -f "$orig" -C "$root$XME_BUILD_DIR" --strip-components=1 --no-same-owner
# Keep the .dsc (it names the exact source version); the upstream tree is unpacked, the archives go.
find "$src" -maxdepth 1 -name "${XME_BUILD_SOURCE}_*" ! -name '*.dsc' -delete
say "checking that it builds: make -C $XME_BUILD_DIR $XME_BUILD_TARGET"
in_tree make -s -C "$XME_BUILD_DIR" "$XME_BUILD_TARGET" >/dev/null \
  || { echo "E: xme: make -C $XME_BUILD_DIR $XME_BUILD_TARGET failed in the tree" >&2; exit 1; }
in_tree make -s -C "$XME_BUILD_DIR" clean >/dev/null

say "pgbench tables: database $XME_PGBENCH_DB, scale $XME_PGBENCH_SCALE"
cluster=$(ls "$root/etc/postgresql")
data="/var/lib/postgresql/$cluster/main"
mkdir -p "$root/run/postgresql"
in_tree chown postgres:postgres /run/postgresql
pg_ctl="/usr/lib/postgresql/$cluster/bin/pg_ctl"
# Unix socket only (the tree shares the host's network), no POSIX shared memory needed.
in_tree runuser -u postgres -- "$pg_ctl" -D "$data" -w -s -l /tmp/xme-postgres.log \
  -o "-c config_file=/etc/postgresql/$cluster/main/postgresql.conf -c listen_addresses='' -c dynamic_shared_memory_type=mmap" start
trap 'in_tree runuser -u postgres -- "$pg_ctl" -D "$data" -w -s -m immediate stop || true' EXIT
in_tree runuser -u postgres -- createdb "$XME_PGBENCH_DB"
in_tree runuser -u postgres -- pgbench -i -q -s "$XME_PGBENCH_SCALE" "$XME_PGBENCH_DB" >/dev/null
in_tree runuser -u postgres -- "$pg_ctl" -D "$data" -w -s -m fast stop
trap - EXIT
rm -rf "$root/run/postgresql" "$root/tmp/xme-postgres.log"

# mmdebstrap wrote the deb-src lines it was given too; the guest keeps the binary sources only. It copied the
# host's resolv.conf (apt-get source above needed it): the guest has no name server.
printf '%s\n' "$XME_APT_SOURCES" > "$root/etc/apt/sources.list"
: > "$root/etc/resolv.conf"
say "customized"
