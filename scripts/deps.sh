#!/usr/bin/env bash
# Installs what swarmboot's tests, benchmarks and lab need on Debian 12:
# QEMU and firmware for real boots, boot assets, DHCP/TFTP clients and
# reference servers, dockerd, and the Debian packages the test fixtures are
# made from. Idempotent; needs root (apt-get). Set SWARMBOOT_NO_APT=1 to skip.
set -euo pipefail

pkgs=(
	qemu-system-x86 qemu-utils ovmf ipxe-qemu ipxe          # VMs, firmware, iPXE
	isolinux syslinux-common syslinux-efi pxelinux          # BIOS boot assets
	systemd-boot-efi grub-efi-amd64-bin grub-pc-bin mtools  # UEFI boot assets
	xorriso cpio pigz                                       # reference tools (benchmarks, read-back)
	busybox-static kmod e2fsprogs dosfstools                # fixture userland
	dnsmasq-base tftp-hpa tftpd-hpa atftp curl              # TFTP/DHCP peers
	isc-dhcp-client udhcpc dhcpcd-base kea-admin
	nginx-light wrk                                         # HTTP reference and load
	docker.io iptables iproute2 util-linux                  # swarm peers, netns
)

if [ "${SWARMBOOT_NO_APT:-}" = 1 ]; then
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing packages: ${missing[*]}" >&2
		echo "deps: run as root (sudo make deps) or install them with apt-get" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
