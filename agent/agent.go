package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/version"
)

// Config is what the agent needs; zero values are the image defaults.
type Config struct {
	URL        string         // appliance agent API, https://HOST:PORT
	ServerName string         // TLS name to check; default the URL's host
	Roots      *x509.CertPool // the appliance CA (pinned)

	StateDir     string        // default DefaultStateDir
	DockerHost   string        // default unix:///var/run/docker.sock
	DataPath     string        // the directory reported on, default /var/lib/docker
	Tokens       []TokenSource // default guestinfo, kernel command line, /etc/swarmboot/token
	BIOSUUIDPath string        // default /sys/class/dmi/id/product_uuid
	MACs         []string      // default the machine's NICs
	Advertise    string        // swarm advertise address; default dockerd's choice
	ImageVersion string
	Disk         Disk

	Heartbeat time.Duration // default 30 s (± 20 % jitter)
	// HeartbeatOnly turns off what makes a manager's agent act between
	// heartbeats: the node-operations long poll (poll.go), the report
	// sent when dockerd says a node changed (events.go) and the reports
	// while a drained node's tasks stop (drain.go). What agents
	// before them did; for comparisons.
	HeartbeatOnly bool
	BackoffMax    time.Duration // default 60 s
	RenewIn       time.Duration // renew when the certificate ends sooner; default 10 days

	Console io.Writer    // state-change lines; default os.Stdout
	Log     *slog.Logger // nil: discard
}

// Agent is one node's agent.
type Agent struct {
	cfg    Config
	id     *Identity
	client *Client
	docker *Docker

	mu    sync.Mutex
	state string         // last console state
	swarm api.SwarmState // as the last report said
	wake  chan struct{}  // closed when swarm changes (poll.go waitManager)
	sent  chan struct{}  // closed when a report was sent (poll.go waitReport)

	drains     drainWatch    // drain.go
	drainKick  chan struct{} // wakes drainLoop
	drainEvery time.Duration
	drainCap   time.Duration

	reportMu sync.Mutex // one report (and its node operations) at a time
	bgOnce   sync.Once
}

// New checks cfg and fills defaults.
func New(cfg Config) (*Agent, error) {
	if cfg.Roots == nil || cfg.URL == "" {
		return nil, errors.New("agent: appliance URL and CA are required (from " + filepath.Join(api.TrustDir, api.TrustConfigFile) + ")")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.DockerHost == "" {
		cfg.DockerHost = "unix:///var/run/docker.sock"
	}
	if cfg.DataPath == "" {
		cfg.DataPath = "/var/lib/docker"
	}
	if cfg.Tokens == nil {
		cfg.Tokens = []TokenSource{GuestinfoToken{}, CmdlineToken{}, FileToken{Path: filepath.Join(api.TrustDir, "token")}}
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 30 * time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 60 * time.Second
	}
	if cfg.RenewIn == 0 {
		cfg.RenewIn = 10 * 24 * time.Hour
	}
	if cfg.Console == nil {
		cfg.Console = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d, err := NewDocker(cfg.DockerHost)
	if err != nil {
		return nil, err
	}
	d.AdvertiseAddr = cfg.Advertise
	return &Agent{cfg: cfg, docker: d, drainKick: make(chan struct{}, 1), drainEvery: drainEvery, drainCap: drainCap}, nil
}

// say prints a console line when the agent's state changes.
func (a *Agent) say(state, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if state == a.state {
		return
	}
	a.state = state
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(a.cfg.Console, "swarmboot-agent: %s\n", msg)
	a.cfg.Log.Info(msg)
}

// backoff is capped exponential with jitter: attempt n waits between half
// and all of min(max, 1s·2^n).
func backoff(n int, max time.Duration) time.Duration {
	d := max
	if n < 30 {
		d = min(max, time.Second<<n)
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry runs fn until it succeeds or ctx ends, backing off between tries.
func (a *Agent) retry(ctx context.Context, what string, fn func() error) error {
	for n := 0; ; n++ {
		err := fn()
		if err == nil {
			return nil
		}
		wait := backoff(n, a.cfg.BackoffMax)
		a.cfg.Log.Warn(what+" failed; retrying", "err", err, "in", wait.Round(time.Millisecond))
		if e := sleep(ctx, wait); e != nil {
			return e
		}
	}
}

// waitDocker polls the local Docker socket each second until dockerd
// answers. It does not back off: the socket is local and cheap to ask,
// and a doubling wait let the agent sleep up to half a minute past a
// slow dockerd's start on every boot.
func (a *Agent) waitDocker(ctx context.Context) error {
	for {
		err := a.docker.Ping(ctx)
		if err == nil {
			return nil
		}
		a.say("wait-docker", "waiting for Docker at %s", a.cfg.DockerHost)
		if e := sleep(ctx, time.Second); e != nil {
			return e
		}
	}
}

// Run is the agent: wait for Docker, enroll unless the disk holds an
// identity, then plan, act and report until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	defer a.docker.Close()
	err := a.retry(ctx, "node identity", func() error {
		id, err := LoadIdentity(a.cfg.StateDir)
		if err != nil {
			a.say("identity-error", "cannot keep the node key in %s: %v", a.cfg.StateDir, err)
			return err
		}
		a.id = id
		return nil
	})
	if err != nil {
		return err
	}
	a.client, err = NewClient(a.cfg.URL, a.cfg.ServerName, a.cfg.Roots, a.id)
	if err != nil {
		return err
	}
	if err := a.waitDocker(ctx); err != nil {
		return err
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	for n := 0; ; {
		if a.id.Cert() == nil {
			if err := a.enroll(ctx); err != nil {
				return err
			}
		}
		if !a.cfg.HeartbeatOnly {
			a.bgOnce.Do(func() {
				bg.Go(func() { a.pollLoop(ctx) })
				bg.Go(func() { a.eventsLoop(ctx) })
				bg.Go(func() { a.drainLoop(ctx) })
			})
		}
		err := a.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if err != nil {
			if errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "node certificate refused") {
				a.say("revoked", "the appliance refuses this node's certificate (%v): enrolling again", err)
				a.forget()
			}
			wait = backoff(n, a.cfg.BackoffMax)
			n++
			a.cfg.Log.Warn("heartbeat failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			n = 0
			j := a.cfg.Heartbeat / 5
			wait = a.cfg.Heartbeat - j + rand.N(2*j+1)
		}
		if sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// forget drops a refused certificate so the agent enrolls again.
func (a *Agent) forget() {
	os.Rename(filepath.Join(a.id.Dir, CertFile), filepath.Join(a.id.Dir, CertFile+".refused"))
	a.id.Forget()
	a.client.CloseIdle()
}

// enroll finds a token and trades it for a certificate, retrying forever.
func (a *Agent) enroll(ctx context.Context) error {
	return a.retry(ctx, "enroll", func() error {
		uuid, err := BIOSUUID(a.cfg.BIOSUUIDPath)
		if err != nil {
			a.say("enroll-uuid", "cannot read the BIOS UUID: %v", err)
			return err
		}
		tok, from, err := FindToken(a.cfg.Tokens...)
		if err != nil {
			a.say("enroll-token", "%v", err)
			return err
		}
		csr, err := a.id.CSR()
		if err != nil {
			return err
		}
		macs := a.cfg.MACs
		if macs == nil {
			macs = MACs()
		}
		host, _ := os.Hostname()
		resp, err := a.client.Enroll(ctx, api.EnrollRequest{Token: tok, BIOSUUID: uuid, MACs: macs, Hostname: host, CSR: csr})
		if err != nil {
			a.say("enroll-fail", "enrollment with %s (token from %s) failed: %v", a.cfg.URL, from, err)
			return err
		}
		if err := a.id.SaveCert(resp.Certificate); err != nil {
			return fmt.Errorf("node certificate: %w", err)
		}
		a.client.CloseIdle()
		a.say("enrolled", "enrolled as node %s (token from %s); certificate until %s", resp.Node, from, a.id.Expires().UTC().Format("2006-01-02"))
		return nil
	})
}

// Once is one heartbeat: report, ask the plan, act on it, report again if
// anything changed, renew the certificate when it runs out soon.
func (a *Agent) Once(ctx context.Context) error {
	if err := a.report(ctx); err != nil {
		return err
	}
	plan, err := a.client.Plan(ctx)
	if err != nil {
		return err
	}
	// The plan carries the join token: log its action only.
	a.cfg.Log.Debug("plan", "action", plan.Action, "reason", plan.Reason)
	changed, err := a.docker.Apply(ctx, plan)
	if err != nil {
		a.say("plan-fail:"+string(plan.Action), "%s failed: %v", plan.Action, err)
		return err
	}
	if changed {
		a.say("plan-done:"+string(plan.Action), "%s done (%s)", plan.Action, plan.Reason)
		if err := a.report(ctx); err != nil {
			return err
		}
	}
	if time.Until(a.id.Expires()) < a.cfg.RenewIn {
		pem, err := a.client.Renew(ctx)
		if err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		if err := a.id.SaveCert(pem); err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		a.client.CloseIdle()
		a.say("renewed:"+a.id.Expires().String(), "certificate renewed until %s", a.id.Expires().UTC().Format("2006-01-02"))
	}
	return nil
}

// Collect builds the heartbeat report.
func (a *Agent) Collect(ctx context.Context) api.Report {
	r := api.Report{Time: time.Now().UTC(), AgentVersion: version.Version, ImageVersion: a.cfg.ImageVersion}
	ds, ss, err := a.docker.State(ctx)
	if err != nil {
		r.Errors = append(r.Errors, "docker: "+err.Error())
	}
	r.Docker, r.Swarm = ds, ss
	r.Disk = a.cfg.Disk.Report(a.cfg.DataPath, ds.RootDir, ds.StorageDriver)
	if ss.State == "active" && ss.ControlAvailable {
		if p, err := a.docker.Push(ctx); err == nil {
			r.JoinTokens = p
		} else {
			r.Errors = append(r.Errors, "swarm tokens: "+err.Error())
		}
	}
	return r
}

// maxOpRounds bounds the reports one heartbeat sends in a row to answer
// node operations (the appliance hands out what is left next time).
const maxOpRounds = 5

// report sends the heartbeat. When the answer carries node operations
// (only a manager's agent gets them) it does them and reports again at
// once with their results, not a heartbeat later. Results whose report
// fails are lost: the appliance hands the operation out again.
func (a *Agent) report(ctx context.Context) error {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	return a.reportLocked(ctx, nil)
}

// answerOps does operations a long poll handed out and reports their
// results at once.
func (a *Agent) answerOps(ctx context.Context, ops []api.NodeOp) error {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	return a.reportLocked(ctx, a.doOps(ctx, ops))
}

// reportLocked is report with a.reportMu held, sending results first.
func (a *Agent) reportLocked(ctx context.Context, results []api.NodeOpResult) error {
	for round := 1; ; round++ {
		r := a.Collect(ctx)
		r.OpResults = results
		a.setSwarm(r.Swarm)
		a.noteDrains(r, time.Now())
		sw := "swarm " + r.Swarm.State
		if r.Swarm.Role != "" {
			sw += " " + r.Swarm.Role
		}
		state := fmt.Sprintf("%s, disk persistent=%v formatted=%s probe=%v", sw, r.Disk.Persistent, r.Disk.Formatted, r.Disk.ProbeOK)
		a.say("report:"+state, "%s", state)
		ans, err := a.client.ReportOps(ctx, r)
		if err != nil || len(ans.Ops) == 0 || round == maxOpRounds {
			return err
		}
		results = a.doOps(ctx, ans.Ops)
	}
}
