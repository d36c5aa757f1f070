package benchref

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recTB records Errorf calls instead of failing the test.
type recTB struct {
	testing.TB
	errs []string
}

func (r *recTB) Errorf(format string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(format, a...)) }

func TestStormRunsConcurrentlyAndReportsErrors(t *testing.T) {
	t.Parallel()
	var running, peak, calls atomic.Int32
	r := &recTB{TB: t}
	release := make(chan struct{})
	go func() {
		for deadline := time.Now().Add(10 * time.Second); running.Load() < 10 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		close(release) // only reached when all 10 run at once
	}()
	d := Storm(r, 10, func() error {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-time.After(10 * time.Second): // not concurrent: peak stays below 10
		}
		running.Add(-1)
		if calls.Add(1)%5 == 0 {
			return errors.New("fetch failed")
		}
		return nil
	})
	if peak.Load() != 10 || calls.Load() != 10 {
		t.Errorf("peak %d concurrent, %d calls; want 10 and 10", peak.Load(), calls.Load())
	}
	if len(r.errs) != 2 || !strings.Contains(r.errs[0], "fetch failed") {
		t.Errorf("reported %q, want the two errors", r.errs)
	}
	if d <= 0 {
		t.Errorf("wall time %v", d)
	}
}

type metrics map[string]float64

func (m metrics) ReportMetric(n float64, unit string) { m[unit] = n }

func TestCompareKeepsTheBestOfEachAndReports(t *testing.T) {
	t.Parallel()
	ours := []time.Duration{3 * time.Second, 2 * time.Second}
	ref := []time.Duration{4 * time.Second, 5 * time.Second}
	var order string
	next := func(name string, ds *[]time.Duration) func() time.Duration {
		return func() time.Duration {
			order += name
			d := (*ds)[0]
			*ds = (*ds)[1:]
			return d
		}
	}
	m := metrics{}
	o, r, ratio := Compare(m, "ref", next("o", &ours), next("r", &ref))
	if o != 2*time.Second || r != 4*time.Second || ratio != 2 || order != "oror" {
		t.Errorf("Compare = %v, %v, %v (order %q); want 2s, 4s, 2, interleaved", o, r, ratio, order)
	}
	if len(m) != 3 || m["x-vs-ref"] != 2 || m["s-ours"] != 2 || m["s-ref"] != 4 {
		t.Errorf("reported %v; want x-vs-ref 2, s-ours 2, s-ref 4", m)
	}
}

// TestStartWaitsAndStops starts a shell that becomes "ready" after a
// moment and checks Start returns only then, with its output, and that the
// process is gone once the test has ended.
func TestStartWaitsAndStops(t *testing.T) {
	sh := Tool(t, "sh", "dash")
	dir := t.TempDir()
	flag, pidf := filepath.Join(dir, "ready"), filepath.Join(dir, "pid")
	var pid int
	t.Run("run", func(t *testing.T) {
		cmd := exec.Command(sh, "-c", `echo $$ > "$1"; echo starting; sleep 0.3; touch "$2"; exec sleep 60`, "sh", pidf, flag)
		out := Start(t, cmd, func() error {
			_, err := os.Stat(flag)
			return err
		})
		if _, err := os.Stat(flag); err != nil {
			t.Fatal("Start returned before ready")
		}
		if !strings.Contains(out.String(), "starting") {
			t.Errorf("output %q lacks the process's line", out.String())
		}
		pid = cmd.Process.Pid
	})
	if pid == 0 {
		t.Fatal("no process")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("process %d still exists after the test ended", pid)
	}
}
