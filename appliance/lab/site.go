package lab

import (
	"fmt"
	"strings"

	"github.com/swarmboot/swarmboot/appliance/site"
)

// siteText is the lab's site file: one manager, workers with BIOS
// firmware, uefi workers with EFI firmware.
func siteText(workers, uefi int) string {
	var sb strings.Builder
	sb.WriteString("datacenter: DC0\ndatastore: LocalDS_0\nnetwork: VM Network\nfolder: swarmboot/lab\ngroups:\n")
	group := func(name, pattern, role, firmware string, count int) {
		if count > 0 {
			fmt.Fprintf(&sb, `  - name: %s
    pattern: %s
    count: %d
    role: %s
    firmware: %s
    cpus: 1
    memory: 1536MiB
    disk: 1
    boot: pxe
    image: lab
`, name, pattern, count, role, firmware)
		}
	}
	group("managers", "lab-m{n}", "manager", "bios", 1)
	group("workers", "lab-w{n}", "worker", "bios", workers-uefi)
	group("uefi-workers", "lab-e{n}", "worker", "efi", uefi)
	return sb.String()
}

// firmwareOf is the firmware of the site group named group.
func firmwareOf(st *site.Site, group string) string {
	for _, g := range st.Groups {
		if g.Name == group {
			return g.Firmware
		}
	}
	return "bios"
}

// uuidArg gives QEMU the VM's BIOS UUID: without it SMBIOS holds zeros and
// Linux shows no /sys/class/dmi/id/product_uuid, which the agent enrolls with.
func uuidArg(u string) []string {
	if u == "" {
		return nil
	}
	return []string{"-uuid", u}
}
