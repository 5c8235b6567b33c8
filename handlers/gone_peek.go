//go:build linux || darwin || freebsd

package handlers

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the client of conn closed it (or reset it):
// a read that does not wait and takes nothing (MSG_PEEK) finds the end of
// the stream. Bytes the client sent (it should send none) are left.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// raw.Read fails without calling the function when the connection is
	// closed (its stream is ending anyway) or its read deadline passed
	// (there is none: hijackStream clears it): not a sign of the client.
	closed := false
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = (n == 0 && err == nil) || (err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR))
		return true // never wait for data
	})
	return closed
}
