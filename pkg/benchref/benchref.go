// Package benchref is what benchmarks need to race our server against a
// reference tool in the same run: Tool finds the tool (or skips, naming the
// package), Start runs it until the benchmark ends, Storm times n
// concurrent clients, and Compare times ours and the reference interleaved
// and reports x-vs-REF. Only tests import it.
//
//	tftpd := benchref.Tool(b, "in.tftpd", "tftpd-hpa")
//	benchref.Start(b, exec.Command(tftpd, "--foreground", …), func() error { … })
//	for range b.N {
//		benchref.Compare(b, "tftpd-hpa",
//			func() time.Duration { return benchref.Storm(b, 50, fetchOurs) },
//			func() time.Duration { return benchref.Storm(b, 50, fetchRef) })
//	}
package benchref

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/testlog"
)

// Tool returns the path of the reference tool name, or skips the benchmark
// saying which Debian package provides it.
func Tool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("%s not installed (apt-get install %s): %v", name, pkg, err)
	}
	return p
}

// Start starts cmd with its output captured, and polls ready every 100 ms
// for up to 5 s until it returns nil; if it never does, the benchmark fails
// with ready's last error and the output. When the benchmark ends the
// process gets SIGTERM, SIGKILL 5 s later if still running, and is waited
// for. The output is returned for later messages.
func Start(tb testing.TB, cmd *exec.Cmd, ready func() error) *testlog.Buffer {
	tb.Helper()
	out := &testlog.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the test binary dies
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var err error
	for range 50 {
		if err = ready(); err == nil {
			return out
		}
		select {
		case <-exited:
			tb.Fatalf("%s exited before it was ready (%v):\n%s", cmd.Path, err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	tb.Fatalf("%s not ready after 5 s: %v\n%s", cmd.Path, err, out.String())
	return nil
}

// Storm runs fn n times at once and returns the wall time until the last
// returned. Every error fn returns is reported with tb.Errorf.
func Storm(tb testing.TB, n int, fn func() error) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Errorf("storm of %d: %v", n, err)
	}
	return d
}

// Reporter takes benchmark metrics; *testing.B is one.
type Reporter interface {
	ReportMetric(n float64, unit string)
}

// Compare runs ours then ref, twice, interleaved (the host is shared, so a
// slow moment should not hit only one side) and keeps the best time of
// each. It reports s-ours, s-REF and x-vs-REF = tRef/tOurs (>1: ours is
// faster), and returns them.
func Compare(b Reporter, ref string, ours, refRun func() time.Duration) (tOurs, tRef time.Duration, ratio float64) {
	tOurs, tRef = time.Duration(1<<62), time.Duration(1<<62)
	for range 2 {
		tOurs = min(tOurs, ours())
		tRef = min(tRef, refRun())
	}
	ratio = tRef.Seconds() / tOurs.Seconds()
	b.ReportMetric(tOurs.Seconds(), "s-ours")
	b.ReportMetric(tRef.Seconds(), "s-"+ref)
	b.ReportMetric(ratio, "x-vs-"+ref)
	return tOurs, tRef, ratio
}
