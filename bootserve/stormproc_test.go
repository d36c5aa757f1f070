package bootserve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// The storm runs our server in its own process, as dnsmasq and nginx run
// in theirs: in the clients' process our goroutines would queue
// behind hundreds of client goroutines on the same two Ps, while the
// kernel schedules the reference servers at once. The benchmark
// re-executes its own test binary inside the server namespace with
// stormServerEnv set, and the init below turns that process into the
// server before any test runs.
const (
	// stormServerEnv carries the server's stormServerArgs (JSON).
	stormServerEnv = "SWARMBOOT_STORM_SERVER"
	// stormInProcessEnv, when set, adds a storm against our server in the
	// clients' own process (the benchmark's setup before the server got
	// its own process), for comparison.
	stormInProcessEnv = "SWARMBOOT_STORM_INPROC"
	// stormProfileEnv names a directory: the server process writes CPU,
	// mutex and block profiles there, one set per storm
	// (server-N-cpu.pprof, …; `go tool pprof -top FILE`).
	stormProfileEnv = "SWARMBOOT_STORM_PROFILE_DIR"
)

type stormServerArgs struct {
	Artifacts, StateDir string
	ProfilePrefix       string // "" → no profiles
}

func init() {
	v := os.Getenv(stormServerEnv)
	if v == "" {
		return
	}
	if err := stormServerMain(v); err != nil {
		fmt.Fprintln(os.Stderr, "storm server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// stormServerMain serves until SIGTERM; it prints "ready" once it listens.
func stormServerMain(v string) error {
	var a stormServerArgs
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return fmt.Errorf("%s: %w", stormServerEnv, err)
	}
	s, err := bootserve.New(stormConfig(a.Artifacts, a.StateDir, nil))
	if err != nil {
		return err
	}
	if err := s.Listen(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if a.ProfilePrefix != "" {
		runtime.SetMutexProfileFraction(5)
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		f, err := os.Create(a.ProfilePrefix + "-cpu.pprof")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	err = s.Run(ctx)
	if a.ProfilePrefix != "" {
		pprof.StopCPUProfile()
		for _, p := range []string{"mutex", "block"} {
			f, ferr := os.Create(a.ProfilePrefix + "-" + p + ".pprof")
			if ferr != nil {
				return ferr
			}
			_ = pprof.Lookup(p).WriteTo(f, 0)
			f.Close()
		}
	}
	return err
}

var stormServerSeq atomic.Int32

// startOurStormProcess runs our server in its own process in ns and
// returns a stop func that ends it (SIGTERM) and returns its CPU time.
func startOurStormProcess(b *testing.B, ns *netns.NS, art string) (stop func() (cpu time.Duration)) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	args := stormServerArgs{Artifacts: art, StateDir: b.TempDir()}
	if d := os.Getenv(stormProfileEnv); d != "" {
		args.ProfilePrefix = filepath.Join(d, fmt.Sprintf("server-%d", stormServerSeq.Add(1)))
	}
	js, err := json.Marshal(args)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, exe)
	cmd.Env = append(os.Environ(), stormServerEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if the benchmark dies
	out := &readyWriter{ready: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatalf("start our storm server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-out.ready:
	case err := <-exited:
		cancel()
		b.Fatalf("our storm server exited before it was ready (%v):\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		cancel()
		<-exited
		b.Fatalf("our storm server not ready after 30 s:\n%s", out.String())
	}
	return func() time.Duration {
		defer cancel() // SIGKILL if still running
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Errorf("stop our storm server: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				b.Errorf("our storm server: %v\n%s", err, out.String())
			}
		case <-time.After(15 * time.Second):
			cancel()
			<-exited
			b.Errorf("our storm server did not stop within 15 s of SIGTERM:\n%s", out.String())
		}
		return procCPU(cmd.ProcessState)
	}
}

// readyWriter keeps a process's output and closes ready when a line
// "ready" appears.
type readyWriter struct {
	mu    sync.Mutex
	sb    strings.Builder
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sb.Write(p)
	s := w.sb.String()
	if strings.HasPrefix(s, "ready\n") || strings.Contains(s, "\nready\n") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sb.String()
}
