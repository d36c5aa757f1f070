package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/pkg/netns"
)

// lockedBuf collects the output of processes and loggers for the secret
// scan at the end of a test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lab is a hub namespace with a bridge; every dockerd gets its own
// namespace on a veth into it.
type lab struct {
	t   testing.TB
	hub *netns.NS
	n   int
	net string // "10.77.N"
}

// labMissing says what is missing for real dockerd tests ("" if nothing).
func labMissing() string {
	if err := netns.Check(); err != nil {
		return "needs network namespaces: " + err.Error()
	}
	for _, tool := range []string{"dockerd", "containerd", "runc", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "needs " + tool + " (apt-get install docker.io)"
		}
	}
	return ""
}

func needLab(t testing.TB) {
	t.Helper()
	if why := labMissing(); why != "" {
		t.Skip(why)
	}
}

func newLab(t testing.TB, subnet int) *lab {
	t.Helper()
	hub, err := netns.New(context.Background(), "sbhub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	l := &lab{t: t, hub: hub, net: fmt.Sprintf("10.77.%d", subnet)}
	if err := hub.AddBridge("br0", l.net+".1/24"); err != nil {
		t.Fatal(err)
	}
	return l
}

// dockerd is one daemon in its own namespace.
type dockerd struct {
	t    testing.TB
	ns   *netns.NS
	dir  string
	IP   string
	Host string // unix://…/docker.sock
	cmd  *exec.Cmd
	log  *lockedBuf
	c    *client.Client
	args []string // extra dockerd flags
}

// add makes a namespace and starts a dockerd in it; setup may add flags
// (it gets the daemon's directory) before the start.
func (l *lab) add(log *lockedBuf, setup ...func(d *dockerd)) *dockerd {
	l.t.Helper()
	l.n++
	ns, err := netns.New(context.Background(), "sbnode")
	if err != nil {
		l.t.Fatal(err)
	}
	ip := fmt.Sprintf("%s.%d", l.net, 10+l.n)
	if err := l.hub.AddVethPeer(fmt.Sprintf("vh%d", l.n), "br0", ns, "eth0", ip+"/24"); err != nil {
		l.t.Fatal(err)
	}
	// Short paths: unix sockets under the exec root must fit 108 bytes.
	dir, err := os.MkdirTemp("", "sbd")
	if err != nil {
		l.t.Fatal(err)
	}
	d := &dockerd{t: l.t, ns: ns, dir: dir, IP: ip, Host: "unix://" + filepath.Join(dir, "docker.sock"), log: log}
	l.t.Cleanup(func() {
		d.stop()
		unmountUnder(dir)
		ns.Close()
		os.RemoveAll(dir)
	})
	for _, f := range setup {
		f(d)
	}
	d.start()
	return d
}

func (d *dockerd) start() {
	d.t.Helper()
	args := []string{"--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"-H", d.Host, "--pidfile", filepath.Join(d.dir, "docker.pid"),
		"--cgroup-parent", "/" + d.ns.Name(), "--bridge", "none", "--iptables=false"}
	d.cmd = d.ns.Command(context.Background(), "dockerd", append(args, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	c, err := client.New(client.WithHost(d.Host))
	if err != nil {
		d.t.Fatal(err)
	}
	d.c = c
	deadline := time.Now().Add(60 * time.Second) // a loaded CI machine is slow
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd in %s not up after 60 s: %v\n%s", d.ns.Name(), err, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the daemon by PID and waits for it.
func (d *dockerd) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.c.Close()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// docker runs the docker CLI against this daemon (the newer client in
// /usr/local/bin negotiates down too; DOCKER_API_VERSION pins 1.41).
func (d *dockerd) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_API_VERSION=1.41")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unmountUnder detaches what a stopped dockerd may leave mounted below dir
// (swarm sandboxes bind their network namespaces under the exec root),
// deepest first, so the directory and the namespaces can go.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
