package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// loadBundle is what the benchmark hands its load-generator process: the
// simulated agents' keys and certificates.
type loadBundle struct {
	URL     string   `json:"url"`
	CA      []byte   `json:"ca"`
	Keys    [][]byte `json:"keys"`  // EC DER
	Certs   [][]byte `json:"certs"` // DER
	Rate    float64  `json:"rate"`  // reports/s in the steady phase
	Reports int      `json:"reports"`
}

// loadResult is what the load generator prints.
type loadResult struct {
	N          int     `json:"n"`
	Errors     int     `json:"errors"`
	FirstErr   string  `json:"first_err,omitempty"`
	P50ms      float64 `json:"p50"`
	P99ms      float64 `json:"p99"`
	MaxMs      float64 `json:"max"`
	Seconds    float64 `json:"seconds"`
	BurstRate  float64 `json:"burst_rate"` // reports/s when every agent reports at once
	BurstP99   float64 `json:"burst_p99"`
	ConnectSec float64 `json:"connect_seconds"`
}

// sampleReport is a realistic heartbeat (~1 KB of JSON).
func sampleReport(i int) api.Report {
	return api.Report{Time: time.Now().UTC(), AgentVersion: "v0.1.0", ImageVersion: "worker-2026.11.1",
		Docker: api.DockerState{Reachable: true, Version: "20.10.24", APIVersion: "1.41", RootDir: "/var/lib/docker", StorageDriver: "overlay2"},
		Swarm:  api.SwarmState{NodeID: fmt.Sprintf("node%021d", i), NodeAddr: "10.0.3.17", State: "active", Role: "worker"},
		Disk: api.DiskReport{Path: "/var/lib/docker", MountPoint: "/var/lib/docker", Device: "/dev/sda1", FSType: "ext4",
			UUID: "0b8a54c6-8a84-4c0e-9d0e-6a3f1f2f9c11", Label: "docker", BlockDevice: true, Persistent: true,
			Formatted: api.FormattedPreExisting, MkfsTime: time.Now().Add(-90 * 24 * time.Hour), BootTime: time.Now().Add(-time.Hour),
			SizeBytes: 100 << 30, FreeBytes: 80 << 30, Inodes: 6553600, InodesFree: 6500000, ProbeOK: true,
			SwarmStateOnDisk: true, DockerRootDir: "/var/lib/docker", StorageDriver: "overlay2"}}
}

// TestLoadGenerator is the benchmark's load-generator process (run by
// BenchmarkHeartbeat5000 with SWARMBOOT_LOAD set, so the appliance's CPU
// can be measured apart from the clients'). Without it, it checks the
// generator's own statistics helper.
func TestLoadGenerator(t *testing.T) {
	path := os.Getenv("SWARMBOOT_LOAD")
	if path == "" {
		got := percentile([]float64{5, 1, 3, 2, 4}, 0.5)
		if got != 3 {
			t.Fatalf("percentile 50 of 1..5 = %v", got)
		}
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b loadBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	res := runLoad(t, &b)
	out, _ := json.Marshal(res)
	fmt.Printf("LOADRESULT %s\n", out)
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func runLoad(t *testing.T, b *loadBundle) loadResult {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.CA)
	n := len(b.Keys)
	clients := make([]*http.Client, n)
	bodies := make([][]byte, n)
	for i := range n {
		key, err := x509.ParseECPrivateKey(b.Keys[i])
		if err != nil {
			t.Fatal(err)
		}
		cert := tls.Certificate{Certificate: [][]byte{b.Certs[i]}, PrivateKey: (*ecdsa.PrivateKey)(key)}
		clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
			MaxIdleConnsPerHost: 1, IdleConnTimeout: 5 * time.Minute}}
		bodies[i], _ = json.Marshal(sampleReport(i))
	}
	var mu sync.Mutex
	var res loadResult
	send := func(i int) (time.Duration, error) {
		start := time.Now()
		resp, err := clients[i].Post(b.URL+api.PathReport, "application/json", bytes.NewReader(bodies[i]))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return 0, fmt.Errorf("report: status %s", resp.Status)
		}
		// An agent's heartbeat is a report and then a plan.
		resp, err = clients[i].Get(b.URL + api.PathPlan)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			return 0, fmt.Errorf("plan: status %s", resp.Status)
		}
		return time.Since(start), nil
	}
	fail := func(err error) {
		mu.Lock()
		res.Errors++
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
		mu.Unlock()
	}
	// Connect phase: every agent's first report (TLS handshake), 100 at
	// a time, not part of the steady statistics.
	start := time.Now()
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := send(i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	res.ConnectSec = time.Since(start).Seconds()
	// Steady phase: b.Reports heartbeats spread evenly at b.Rate over
	// the kept-alive connections, each from a random agent's slot.
	order := rand.Perm(n)
	lat := make([]float64, 0, b.Reports)
	start = time.Now()
	for k := range b.Reports {
		at := start.Add(time.Duration(float64(k) / b.Rate * float64(time.Second)))
		i := order[k%n]
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(at))
			d, err := send(i)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			lat = append(lat, float64(d.Microseconds())/1000)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.N = len(lat)
	res.P50ms, res.P99ms, res.MaxMs = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)
	// Burst: every agent reports at the same moment (after an outage of
	// the appliance, say): what the appliance can absorb.
	burst := make([]float64, 0, n)
	start = time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := send(i)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			burst = append(burst, float64(d.Microseconds())/1000)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.BurstRate = float64(len(burst)) / time.Since(start).Seconds()
	res.BurstP99 = percentile(burst, 0.99)
	return res
}

// parseLoad finds the generator's result line in its output.
func parseLoad(out []byte) (loadResult, error) {
	var r loadResult
	for _, l := range bytes.Split(out, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(l, []byte("LOADRESULT ")); ok {
			return r, json.Unmarshal(rest, &r)
		}
	}
	return r, fmt.Errorf("no result in the load generator's output:\n%s", out)
}
