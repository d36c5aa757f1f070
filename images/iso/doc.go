// Package iso writes the hybrid boot ISO: an ISO 9660 filesystem (go-diskfs)
// with two El Torito entries — isolinux for BIOS and a FAT EFI system
// partition image with systemd-boot for UEFI — and an isohybrid MBR so the
// same file also boots when written to a disk. Both loaders start the same
// kernel and initrd with the same command line. Output is deterministic:
// every timestamp is the caller's, entries are sorted, IDs are fixed.
package iso
