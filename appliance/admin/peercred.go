package admin

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cred is the peer of an admin connection, as the kernel reports it
// (SO_PEERCRED: the credentials of the process that connected).
type Cred struct {
	PID      int32
	UID, GID uint32
}

// peerCred asks the kernel who is at the other end of c.
func peerCred(c net.Conn) (Cred, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Cred{}, fmt.Errorf("admin: %T is not a unix socket connection", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var uc *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, err
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("admin: SO_PEERCRED: %w", serr)
	}
	return Cred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid}, nil
}

// ErrRefused is a peer that may not use the admin socket.
var ErrRefused = errors.New("admin: refused")

// checkCred allows root and the appliance's own uid only.
func checkCred(c Cred, self uint32) error {
	if c.UID == 0 || c.UID == self {
		return nil
	}
	return fmt.Errorf("%w: uid %d (pid %d) may not use the appliance's admin socket: run the command as root or as uid %d (the user the appliance runs as)", ErrRefused, c.UID, c.PID, self)
}
