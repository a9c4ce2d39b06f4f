#!/bin/bash
# Stage 2 of the Xen test host's dom0, run by the initramfs /init inside the chroot (the host's root
# filesystem over 9p + tmpfs overlay). `run` copies this file into the run's control dir (CTL), which
# is a writable 9p share (cache=none) seen at the same path on the host and in dom0.
#
# Starts the Xen toolstack daemons like Debian's /etc/init.d/xen does, then runs CTL/job.sh (written
# by `run`: environment, working directory, command) with stdout/stderr into CTL/stdout, CTL/stderr
# (the host streams them) and records the exit code in CTL/rc.
CTL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
XENBIN="$(ls -d /usr/lib/xen-4.*/bin 2>/dev/null | sort -V | tail -1)"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$XENBIN"
export HOME=/root LANG=C.UTF-8

up() { cut -d' ' -f1 /proc/uptime; }
log() {
  echo "XT-STAGE2: $*" >/dev/console 2>/dev/null
  printf '%s %s\n' "$(up)" "$*" >>"$CTL/dom0.log"
}
finish() { echo "$1" >"$CTL/rc"; log "exit $1"; exit "$1"; }

log "stage2 start (uptime $(up)s)"
[[ -x "$XENBIN/xl" ]] || { echo "xen-testhost: no xen-utils (xl) in the host root" >>"$CTL/stderr"; finish 125; }
hostname xen-testhost-dom0 2>/dev/null || true
mkdir -p /var/log/xen/console /run/xen /run/xenstored /var/lib/xen /var/lib/xenstored /var/run

# xenstored (C implementation), waits until its socket exists.
"$XENBIN/xenstored" --pid-file /run/xenstored.pid >>"$CTL/services.log" 2>&1
for _ in $(seq 100); do [[ -S /run/xenstored/socket ]] && break; sleep 0.1; done
[[ -S /run/xenstored/socket ]] || { echo "xen-testhost: xenstored did not start" >>"$CTL/stderr"; finish 125; }
"$XENBIN/xen-init-dom0" >>"$CTL/services.log" 2>&1 \
  || { echo "xen-testhost: xen-init-dom0 failed" >>"$CTL/stderr"; finish 125; }
# Guest consoles are logged to /var/log/xen/console/guest-<domain name>.log.
"$XENBIN/xenconsoled" --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
  >>"$CTL/services.log" 2>&1 || { echo "xen-testhost: xenconsoled failed" >>"$CTL/stderr"; finish 125; }
log "xen toolstack up (uptime $(up)s)"

# What a hung command was doing, written to dom0's console (hvc0 → the hypervisor's serial console, which the
# host keeps in a file, so it arrives even when the 9p control share is what hangs), then to CTL/stderr.
diagnose() {
  {
    echo "==== xen-testhost watchdog: the command still runs after $1 s; what dom0 is doing"
    ps -eo pid,ppid,stat,wchan:32,etimes,time,args --sort=pid 2>&1 | grep -v ' \[' | cut -c1-200
    for d in /proc/[0-9]*; do
      read -r _ comm state _ <"$d/stat" 2>/dev/null || continue
      [[ "$state" == D || "$comm" == *node* || "$comm" == *xl* ]] || continue
      echo "-- ${d#/proc/} $comm state $state, kernel stack:"; cat "$d/stack" 2>&1 | head -n 20
    done
    echo "-- xl list"; timeout 10 xl list 2>&1
    echo "-- xl dmesg (last 30)"; timeout 10 xl dmesg 2>&1 | tail -n 30
    echo "-- dom0 kernel (last 30)"; dmesg 2>&1 | tail -n 30
    echo "==== end of watchdog report"
  } 2>&1 | while IFS= read -r line; do
    # Line by line as it comes: on a busy emulated CPU the whole report takes a minute or more.
    echo "XT-WATCHDOG: $line" >/dev/console 2>/dev/null
    printf '%s\n' "$line" >>/tmp/xt-watchdog.txt
  done
  timeout 20 cp /tmp/xt-watchdog.txt "$CTL/watchdog.txt" 2>/dev/null
}

# Hung tasks (D state > 60 s) print their kernel stacks on the console by themselves.
sysctl -q kernel.hung_task_timeout_secs=60 2>/dev/null || true
WATCHDOG_S="$(cat "$CTL/watchdog-s" 2>/dev/null)"
# A heartbeat on dom0's console every 30 s of dom0's own clock: that dom0 runs, how fast its clock goes against
# the host's, and what takes its one CPU; scripts/xen-testhost/run gives the machine up as frozen when they stop.
( while sleep 30; do
    # ps, not top: top costs seconds of the emulated CPU (up to half of it in a sample); %CPU is over each life.
    echo "XT-HEARTBEAT: up $(up) load $(cut -d' ' -f1-3 /proc/loadavg) top: $(ps -eo pid=,pcpu=,comm= --sort=-pcpu 2>/dev/null | awk '$3 != "ps" && $3 != "awk" && n++ < 3 {printf "%s %s%% %s; ", $1, $2, $3}')" >/dev/console 2>/dev/null
  done ) &
HEARTBEAT=$!
echo "$(up)" >"$CTL/started"
# In a session of its own (setsid does not fork here: a background job is no group leader), so that the
# watchdog can end the command with all its children.
setsid bash "$CTL/job.sh" </dev/null >>"$CTL/stdout" 2>>"$CTL/stderr" &
JOB=$!
if [[ "$WATCHDOG_S" =~ ^[0-9]+$ ]]; then
  ( sleep "$WATCHDOG_S"; kill -0 "$JOB" 2>/dev/null || exit 0; diagnose "$WATCHDOG_S"
    kill -TERM -- "-$JOB" 2>/dev/null; sleep 10; kill -KILL -- "-$JOB" 2>/dev/null ) &
  WATCHER=$!
fi
wait "$JOB"
RC=$?
[[ -n "${WATCHER:-}" ]] && { kill "$WATCHER" 2>/dev/null; wait "$WATCHER" 2>/dev/null; }
kill "$HEARTBEAT" 2>/dev/null
finish "$RC"
