// Package bootserve serves network boots: DHCP (proxy or full), TFTP for
// boot loaders and HTTP for iPXE scripts and boot artifacts. It is usable
// on its own; what a machine boots is asked of a small interface that the
// caller implements.
package bootserve
