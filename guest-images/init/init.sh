#!/bin/busybox sh
# /init of every xme guest. It changes nothing the harness measures: it mounts the pseudo file systems,
# announces the boot on the console, then runs the workload named on the kernel command line:
#   xme.workload=<idle|memchurn|pagecache|cpu|cowprobe|httpd|gzip>  xme.args=<k=v,k=v>  (e.g. xme.args=mib=32,rate=500)
# The harness waits for the XME-BOOTED line and parses the XME-PROGRESS lines that xme-load prints.
# The httpd and gzip workloads run busybox's own httpd and gzip (the applets installed below); xme-load brings
# the loopback interface up itself, so this script configures no network (the guest has no NIC).
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=64m tmpfs /tmp

workload=idle
args=
for word in $(cat /proc/cmdline); do
  case "$word" in
    xme.workload=*) workload="${word#xme.workload=}" ;;
    xme.args=*) args="$(echo "${word#xme.args=}" | tr ',' ' ')" ;;
  esac
done

echo "XME-BOOTED release=$(uname -r) workload=$workload uptime=$(cut -d' ' -f1 /proc/uptime)"
# shellcheck disable=SC2086 # args is a list of k=v words on purpose
/bin/xme-load "$workload" $args
echo "XME-ERROR workload $workload exited with status $?"
# PID 1 must not exit (the kernel would panic); stay idle so that the harness can still read memory.
while true; do sleep 3600; done
