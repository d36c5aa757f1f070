// Package rootfs assembles a LinuxKit root filesystem from a parsed
// linuxkit.yml (images/yml) and images from the local store, and streams it
// entry by entry to a Writer (images/initrd turns the stream into a newc cpio).
//
// The layout is LinuxKit's, so the real linuxkit/init runs it unchanged:
//
//	boot/                                   (the kernel, cmdline and ucode.cpio go to Result, not the stream)
//	<kernel.tar contents>                   modules, firmware
//	<init images flattened into />          init, runc, containerd, ...
//	containers/volumes/NAME/{lower,tmp,merged}
//	containers/onboot/000-NAME/{config.json,runtime.json,lower/,rootfs/,tmp/}
//	containers/onshutdown/000-NAME/...
//	containers/services/NAME/...
//	<files>
//
// Layers are flattened in Go with OCI whiteouts honoured, without a temporary
// copy of the tree: each image is read twice (headers, then contents).
package rootfs
