#!/bin/busybox sh
# swarmboot lab init: a busybox stand-in for linuxkit/init. It moves the
# root to a tmpfs, mounts the pseudo file systems, loads the kernel modules
# listed in modules.load, brings up eth0 with udhcpc, then runs the image the
# way LinuxKit lays it out: every containers/onboot/NNN-NAME bundle in order
# with runc (each must finish; logs in /run/log/onboot/NAME.log), then every
# containers/services/NAME bundle in the background (logs in
# /var/log/NAME.log). Bundles with a lower/ directory get an overlay (lower +
# tmp/upper) mounted on rootfs/ first, and the directories runtime.json lists
# under "mkdir" are created.
/bin/busybox --install -s /bin 2>/dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "swarmboot-init: $*" >/dev/console; }

# Like linuxkit/init: runc cannot pivot_root out of the initramfs (and its
# --no-pivot fallback lets unmounts propagate to the host when a container
# uses shared propagation), so move everything to a tmpfs and switch_root
# there first. switch_root frees the initramfs.
if [ ! -e /.swarmboot-root ]; then
	mkdir -p /proc /newroot
	mount -t proc proc /proc
	mount -t tmpfs -o mode=755,size=90% root /newroot
	for f in /* /.[!.]*; do
		case $f in /newroot|/proc|/sys|/dev|'/.[!.]*') continue ;; esac
		cp -a "$f" /newroot/
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev
	touch /newroot/.swarmboot-root
	umount /proc
	exec switch_root /newroot /init "$@"
	say "switch_root failed; going on in the initramfs"
fi

mkdir -p /proc /sys /dev /run /tmp /var/log /var/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=755 run /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount --make-rshared /
mkdir -p /run/swarmboot /etc
# /etc/resolv.conf may be a symlink into /run (LinuxKit's layout); create
# its target. (touch, not ": >": a failed redirection of a special builtin
# would end this shell, and with it the machine.)
if [ ! -e /etc/resolv.conf ]; then
	t=$(readlink /etc/resolv.conf) && mkdir -p "$(dirname "$t")"
	touch /etc/resolv.conf 2>/dev/null
fi
exec 0</dev/null >/dev/console 2>&1

cmdline=$(cat /proc/cmdline)
arg() { for w in $cmdline; do case $w in "$1"=*) echo "${w#*=}"; return;; esac; done; }
hostname "$(arg swarmboot.hostname || true)"
[ -n "$(hostname)" ] && [ "$(hostname)" != "(none)" ] || hostname "lab-$(cat /sys/class/net/eth0/address 2>/dev/null | tr -d : | tail -c 7)"

kver=$(uname -r)
if [ -f /lib/modules/$kver/modules.load ]; then
	n=0
	while read -r m; do
		[ -n "$m" ] || continue
		insmod /lib/modules/$kver/$m 2>/tmp/insmod.err || grep -q 'File exists' /tmp/insmod.err || say "insmod $m: $(cat /tmp/insmod.err)"
		n=$((n+1))
	done </lib/modules/$kver/modules.load
	say "loaded $n kernel modules"
fi
echo 0 >/proc/sys/kernel/printk 2>/dev/null

ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	udhcpc -i eth0 -b -t 10 -T 2 -s /etc/udhcpc.script -x hostname:"$(hostname)" >/var/log/udhcpc.log 2>&1
fi

prepare() {
	b=$1
	if [ -d "$b/lower" ] && ! grep -q " $b/rootfs " /proc/mounts; then
		mkdir -p "$b/tmp/upper" "$b/tmp/work" "$b/rootfs"
		mount -t overlay overlay -o "lowerdir=$b/lower,upperdir=$b/tmp/upper,workdir=$b/tmp/work" "$b/rootfs"
	fi
	if [ -f "$b/runtime.json" ]; then
		tr -d ' \n\t' <"$b/runtime.json" | sed -n 's/.*"mkdir":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | tr -d '"' |
			while read -r d; do [ -n "$d" ] && mkdir -p "$d"; done
	fi
}

for b in /containers/onboot/*; do
	[ -f "$b/config.json" ] || continue
	name=${b##*/}
	prepare "$b"
	t0=$(cut -d' ' -f1 /proc/uptime)
	log=/run/log/onboot/$name.log
	mkdir -p /run/log/onboot
	if runc run --bundle "$b" "$name" </dev/null >"$log" 2>&1; then
		say "onboot $name done ($t0 → $(cut -d' ' -f1 /proc/uptime) s)"
	else
		say "onboot $name FAILED:"; head -n 20 "$log"
	fi
	runc delete -f "$name" 2>/dev/null
done

for b in /containers/services/*; do
	[ -f "$b/config.json" ] || continue
	name=${b##*/}
	prepare "$b"
	(runc run --bundle "$b" "$name" </dev/null >/var/log/$name.log 2>&1
	 echo $? >/run/swarmboot/service.$name.exited
	 say "service $name exited ($(cat /run/swarmboot/service.$name.exited)):"
	 tail -n 30 /var/log/$name.log) &
	say "service $name started"
	# The agent's log on the console: its enrollment and swarm steps are
	# what a lab user watches (it never logs its token).
	if [ "$name" = swarmboot-agent ]; then
		(sleep 1; tail -n +1 -F /var/log/$name.log 2>/dev/null | while read -r l; do echo "agent: $l"; done >/dev/console) &
	fi
done

# A test hook: print the answer of the docker service's engine.
if [ -n "$(arg swarmboot.selftest)" ]; then
	i=0
	while [ $i -lt 120 ]; do
		v=$(runc exec docker docker version --format '{{.Server.Version}}' 2>/dev/null) && break
		[ -e /run/swarmboot/service.docker.exited ] && break
		sleep 1; i=$((i+1))
	done
	say "SWARMBOOT-LAB-SELFTEST docker=${v:-none} after ${i}s $(cat /run/swarmboot/disk.env 2>/dev/null | tr '\n' ' ')"
	# A one-node swarm on loopback: its state lives in /var/lib/docker, so
	# the next boot from the same disk finds it active without an init.
	init=skipped
	if [ "$(runc exec docker docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" != active ]; then
		runc exec docker docker swarm init --advertise-addr 127.0.0.1 >/tmp/swarm.log 2>&1 && init=done || { init=failed; cat /tmp/swarm.log; }
	fi
	nets=$(runc exec docker docker network ls --format '{{.Name}}' 2>&1 | sort | tr '\n' ,)
	runc exec docker docker info --format "SWARMBOOT-LAB-INFO driver={{.Driver}} root={{.DockerRootDir}} swarm={{.Swarm.LocalNodeState}} swarm-init=$init networks=$nets" 2>&1
	if [ "$(arg swarmboot.selftest)" = poweroff ]; then
		sync
		poweroff -f
	fi
fi

while :; do sleep 3600; done
