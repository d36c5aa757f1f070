#!/bin/sh
# swarmboot lab onboot step "format": give /var/lib/docker a persistent
# disk. The first virtio disk (or $1) gets an ext4 file system only when it
# holds none yet (blkid finds no signature), then it is mounted at
# /var/lib/docker. The outcome goes to /run/swarmboot/disk.env for the agent.
set -u
dev=${1:-}
if [ -z "$dev" ]; then
	for d in /dev/vda /dev/sda /dev/xvda /dev/nvme0n1; do [ -b "$d" ] && dev=$d && break; done
fi
mkdir -p /run/swarmboot /var/lib/docker
if [ -z "$dev" ]; then
	echo "format: no disk; /var/lib/docker stays in RAM"
	printf 'PERSISTENT=no\n' >/run/swarmboot/disk.env
	exit 0
fi
formatted=no
# blkid -p probes the device itself: exit 0 = a file system (or other
# signature) is there, 2 = nothing found; anything else is an error and the
# disk is left alone rather than risk formatting data.
/sbin/blkid -p "$dev" >/tmp/blkid.out 2>&1
rc=$?
case $rc in
2)
	echo "format: $dev holds no file system: mkfs.ext4"
	# By path: busybox sh may prefer its own mke2fs applet, which has no -t.
	/sbin/mke2fs -q -F -t ext4 -L swarmboot-docker "$dev" || exit 1
	formatted=yes ;;
0)
	echo "format: $dev already holds $(cat /tmp/blkid.out): kept" ;;
*)
	echo "format: blkid -p $dev failed ($rc): $(cat /tmp/blkid.out); not touching the disk"
	exit 1 ;;
esac
mount -t ext4 "$dev" /var/lib/docker || exit 1
printf 'PERSISTENT=yes\nDEVICE=%s\nFSTYPE=ext4\nMOUNT=/var/lib/docker\nFORMATTED=%s\n' "$dev" "$formatted" >/run/swarmboot/disk.env
echo "format: $dev mounted at /var/lib/docker (formatted this boot: $formatted)"
