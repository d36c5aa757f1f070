package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
)

const (
	benchAgents = 5000
	benchRate   = 167.0 // reports/s: 6× the 5,000-agents-every-30-s load
	benchReport = 2000
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchAgentsBundle enrolls n simulated nodes directly in the store and
// returns their keys and certificates.
func benchAgentsBundle(b *testing.B, st *store.Store, authority *ca.CA, n int) *loadBundle {
	bundle := &loadBundle{CA: authority.CertPEM}
	var nodes []store.Node
	for i := range n {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		csr, _ := ca.ParseCSR(der)
		name := fmt.Sprintf("node-%05d", i)
		certDER, cert, err := authority.SignNode(csr, name)
		if err != nil {
			b.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		bundle.Keys, bundle.Certs = append(bundle.Keys, kder), append(bundle.Certs, certDER)
		nodes = append(nodes, store.Node{Name: name, Role: "worker", MACs: []string{fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)},
			KeyFingerprint: ca.Fingerprint(&key.PublicKey), CertSerial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter})
	}
	if err := st.Update(func(tx *store.Tx) error {
		for _, n := range nodes {
			if err := tx.PutNode(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return bundle
}

// generate runs the load generator process against url and returns its
// result and the CPU this process (the appliance) used meanwhile.
func generate(b *testing.B, bundle *loadBundle, url string) (loadResult, time.Duration, time.Duration) {
	bundle.URL = url
	path := filepath.Join(b.TempDir(), "bundle.json")
	raw, _ := json.Marshal(bundle)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadGenerator$", "-test.v")
	cmd.Env = append(os.Environ(), "SWARMBOOT_LOAD="+path)
	cpu0, wall0 := cpuTime(), time.Now()
	out, err := cmd.CombinedOutput()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	if err != nil {
		b.Fatalf("load generator: %v\n%s", err, out)
	}
	res, err := parseLoad(out)
	if err != nil {
		b.Fatal(err)
	}
	return res, cpu, wall
}

// BenchmarkHeartbeat5000: 5,000 simulated agents with their own mTLS
// connections heartbeat (POST report + GET plan, timed together) against
// one appliance (loopback, load generated in
// a child process). The steady phase sends 6,000 reports at 1,000/s (six
// times the rate of 5,000 agents every 30 s). Reference: nginx with mTLS
// answering 204 to the same requests (no decoding, no store) — the floor
// for a TLS 1.3 HTTP/1.1 round trip here.
func BenchmarkHeartbeat5000(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	authority, err := ca.Open(filepath.Join(dir, "ca"))
	if err != nil {
		b.Fatal(err)
	}
	bundle := benchAgentsBundle(b, st, authority, benchAgents)
	bundle.Rate, bundle.Reports = benchRate, benchReport
	// The swarm as a manager pushed it: every simulated node is a member,
	// so each plan checks membership in a 5,000-node list.
	src := &swarm.Pushed{}
	ids := make([]string, benchAgents)
	for i := range ids {
		ids[i] = fmt.Sprintf("node%021d", i)
	}
	src.Set(swarm.Info{ClusterID: "bench", Worker: "SWMTKN-bench-w", Manager: "SWMTKN-bench-m", Managers: []string{"10.77.0.2:2377"}, NodeIDs: ids, At: time.Now()})
	srv := &Server{Store: st, CA: authority, Hosts: []string{"127.0.0.1"}, Swarm: src, Log: slog.New(slog.DiscardHandler)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()

	b.ResetTimer()
	var res loadResult
	var cpu, wall time.Duration
	for range b.N {
		res, cpu, wall = generate(b, bundle, "https://"+l.Addr().String())
	}
	b.StopTimer()
	if res.Errors > 0 {
		b.Fatalf("%d of the reports failed, first: %s", res.Errors, res.FirstErr)
	}
	var stored int
	st.View(func(tx *store.Tx) error {
		ns, _ := tx.Nodes()
		for _, n := range ns {
			if len(n.LastReport) > 0 {
				stored++
			}
		}
		return nil
	})
	if stored != benchAgents {
		b.Fatalf("%d of %d nodes have a stored report", stored, benchAgents)
	}
	rps := float64(res.N) / res.Seconds
	b.ReportMetric(rps, "reports/s")
	b.ReportMetric(res.P50ms, "p50-ms")
	b.ReportMetric(res.P99ms, "p99-ms")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "appliance-cores")
	b.ReportMetric(res.BurstRate, "burst-reports/s")
	// CPU per heartbeat over the whole run (5,000 handshakes included):
	// steadier than latency on a shared machine.
	beats := float64(2*benchAgents + res.N)
	b.ReportMetric(float64(cpu.Microseconds())/beats, "appliance-µs/heartbeat")
	b.Logf("appliance: %d agents connected in %.1f s; %d heartbeats (report + plan) at %.0f/s: p50 %.2f ms, p99 %.2f ms, max %.1f ms; appliance CPU %.2f cores, %.0f µs per heartbeat (goal p99 < 20 ms); all %d at once: %.0f reports/s, p99 %.0f ms",
		benchAgents, res.ConnectSec, res.N, rps, res.P50ms, res.P99ms, res.MaxMs, cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/beats, benchAgents, res.BurstRate, res.BurstP99)

	ref, err := nginxRef(b, authority, dir)
	if err != nil {
		b.Logf("reference skipped: %v", err)
		return
	}
	refRes, _, _ := generate(b, bundle, ref)
	if refRes.Errors > 0 {
		b.Logf("reference nginx: %d errors, first: %s", refRes.Errors, refRes.FirstErr)
		return
	}
	b.ReportMetric(res.P99ms/refRes.P99ms, "x-vs-nginx")
	b.Logf("nginx mTLS 204 reference: p50 %.2f ms, p99 %.2f ms, burst %.0f reports/s; appliance p99 is %.2fx nginx's", refRes.P50ms, refRes.P99ms, refRes.BurstRate, res.P99ms/refRes.P99ms)
}
