package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// listenHost opens the host side of the forward. A port in use is refused
// with the program that holds it, when /proc tells.
func listenHost(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("lab: --listen %s: %w", addr, err)
	}
	who := ""
	if pid, comm, ok := portOwner(addr); ok {
		who = fmt.Sprintf(" by PID %d (%s)", pid, comm)
	}
	return nil, fmt.Errorf("lab: %s is already in use%s: stop that program, or give the lab another address "+
		"(swarmboot lab up --listen 127.0.0.1:PORT, or --listen '' for no forward)", addr, who)
}

// portOwner finds the process listening on the TCP address addr from
// /proc/net/tcp{,6} (the socket's inode) and /proc/*/fd (who holds it).
func portOwner(addr string) (pid int, comm string, ok bool) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, "", false
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return 0, "", false
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, ino := range listeningInodes(f, port) {
			inodes["socket:["+ino+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0, "", false
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ = strconv.Atoi(strings.Split(fd, "/")[2])
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return pid, strings.TrimSpace(string(b)), true
		}
	}
	return 0, "", false
}

// listeningInodes returns the inodes of the sockets in LISTEN state on
// port in a /proc/net/tcp-format file.
func listeningInodes(file string, port int) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 || fl[3] != "0A" || !strings.HasSuffix(fl[1], want) {
			continue
		}
		out = append(out, fl[9])
	}
	return out
}

// serveForward proxies ln (host side) to the appliance's HTTP server at
// base inside the lab's namespace: each upstream connection is dialled
// from inside the namespace. Event streams flush as they come.
func (l *Lab) serveForward(ln net.Listener, base string) {
	target, _ := url.Parse(base)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = l.ns.Do(func() error {
				c, err = dialer.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second,
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport, rp.FlushInterval = tr, -1
	l.fwdSrv = &http.Server{Handler: forwardOnly(rp), ReadHeaderTimeout: 10 * time.Second}
	go l.fwdSrv.Serve(ln)
}

// forwardOnly lets through what an operator watches the lab with — the
// machine timeline (/api/), /metrics, /healthz — and refuses the rest:
// per-machine iPXE scripts carry enrollment tokens, and they, like the
// boot artifacts, stay on the lab's own network.
func forwardOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		clean := path.Clean(p) == p && r.URL.RawPath == "" // no dot segments, nothing escaped
		if !read || !clean || !(strings.HasPrefix(p, "/api/") || p == "/metrics" || p == "/healthz") {
			http.Error(w, "the lab's host forward serves only GET /api/…, /metrics and /healthz: "+
				"boot scripts carry enrollment tokens and stay on the lab's network", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ForwardURL is the host-side URL of the appliance's HTTP server ("" when
// Options.Listen is empty).
func (l *Lab) ForwardURL() string {
	if l.fwdLn == nil {
		return ""
	}
	return "http://" + l.fwdLn.Addr().String()
}

func (l *Lab) closeForward() {
	if l.fwdSrv != nil {
		l.fwdSrv.Close()
	} else if l.fwdLn != nil {
		l.fwdLn.Close()
	}
}
