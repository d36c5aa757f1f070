// Package images turns LinuxKit image definitions (linuxkit.yml) into boot
// artifacts: it parses the yml, keeps a local OCI image store, assembles
// the root filesystem the way LinuxKit does and writes kernel + initrd and
// a hybrid BIOS/UEFI ISO.
package images
