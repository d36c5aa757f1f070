package bootserve_test

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/netns"
)

// stormProbe measures one storm beyond its wall time, to tell where the
// time goes:
//   - the Go scheduler's run-queue latency in this process, where the
//     simulated clients (and, in-process, our server) run: a goroutine
//     woken by a packet waits this long before it runs;
//   - this process's CPU time;
//   - the UDP counters of both namespaces: a socket buffer that overflows
//     counts RcvbufErrors, and each drop costs a client a retransmit.
type stormProbe struct {
	srv, cli       *netns.NS
	sched          *metrics.Float64Histogram
	cpu            time.Duration
	udpSrv, udpCli map[string]int64
	errSrv, errCli error
	sample         []metrics.Sample
	startWall      time.Time
}

const schedMetric = "/sched/latencies:seconds"

func startProbe(srv, cli *netns.NS) *stormProbe {
	p := &stormProbe{srv: srv, cli: cli, sample: []metrics.Sample{{Name: schedMetric}}}
	p.udpSrv, p.errSrv = udpCounters(srv)
	p.udpCli, p.errCli = udpCounters(cli)
	metrics.Read(p.sample)
	p.sched = copyHist(p.sample[0].Value.Float64Histogram())
	p.cpu = selfCPU()
	p.startWall = time.Now()
	return p
}

// stop returns one line summing up the storm.
func (p *stormProbe) stop() string {
	cpu := selfCPU() - p.cpu
	wall := time.Since(p.startWall)
	metrics.Read(p.sample)
	h := p.sample[0].Value.Float64Histogram()
	srv, errSrv := udpCounters(p.srv)
	cli, errCli := udpCounters(p.cli)
	var sb strings.Builder
	fmt.Fprintf(&sb, "this process: CPU %.2fs in %.2fs wall, run-queue wait p50 %s p99 %s max %s",
		cpu.Seconds(), wall.Seconds(), histQuantile(p.sched, h, 0.5), histQuantile(p.sched, h, 0.99), histQuantile(p.sched, h, 1))
	for _, ns := range []struct {
		name          string
		before, after map[string]int64
		e0, e1        error
	}{{"server ns", p.udpSrv, srv, p.errSrv, errSrv}, {"client ns", p.udpCli, cli, p.errCli, errCli}} {
		if ns.e0 != nil || ns.e1 != nil {
			fmt.Fprintf(&sb, "; %s UDP counters unreadable: %v %v", ns.name, ns.e0, ns.e1)
			continue
		}
		d := func(k string) int64 { return ns.after[k] - ns.before[k] }
		fmt.Fprintf(&sb, "; %s UDP in %d, buffer drops %d, errors %d", ns.name, d("InDatagrams"), d("RcvbufErrors"), d("InErrors"))
	}
	return sb.String()
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time of an exited child (and its waited children).
func procCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

func copyHist(h *metrics.Float64Histogram) *metrics.Float64Histogram {
	return &metrics.Float64Histogram{Counts: append([]uint64(nil), h.Counts...), Buckets: append([]float64(nil), h.Buckets...)}
}

// histQuantile is the q-quantile of the samples added between before
// and after (the upper bound of its bucket).
func histQuantile(before, after *metrics.Float64Histogram, q float64) time.Duration {
	var total uint64
	delta := make([]uint64, len(after.Counts))
	for i := range after.Counts {
		delta[i] = after.Counts[i]
		if i < len(before.Counts) {
			delta[i] -= before.Counts[i]
		}
		total += delta[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for i, c := range delta {
		seen += c
		if seen >= want {
			hi := after.Buckets[i+1]
			if hi > 1e9 {
				hi = after.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second)).Round(time.Microsecond)
		}
	}
	return 0
}

// udpCounters reads the Udp line of /proc/net/snmp inside ns.
func udpCounters(ns *netns.NS) (map[string]int64, error) {
	var data []byte
	err := ns.Do(func() (err error) {
		data, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return nil, err
	}
	return parseSNMP(string(data), "Udp")
}

// parseSNMP parses the header/value line pair of proto in /proc/net/snmp.
func parseSNMP(s, proto string) (map[string]int64, error) {
	var hdr []string
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if hdr == nil {
			hdr = f[1:]
			continue
		}
		out := map[string]int64{}
		for i, v := range f[1:] {
			if i < len(hdr) {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("snmp %s %s: %w", proto, hdr[i], err)
				}
				out[hdr[i]] = n
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no %s lines in /proc/net/snmp", proto)
}

func TestParseSNMP(t *testing.T) {
	t.Parallel()
	const s = "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 120 3 7 118 5 0\n" +
		"UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n"
	m, err := parseSNMP(s, "Udp")
	if err != nil {
		t.Fatal(err)
	}
	if m["InDatagrams"] != 120 || m["RcvbufErrors"] != 5 || m["InErrors"] != 7 || len(m) != 6 {
		t.Errorf("parseSNMP = %v", m)
	}
	if _, err := parseSNMP("Ip: a\nIp: 1\n", "Udp"); err == nil {
		t.Error("no Udp lines: want an error")
	}
	if _, err := parseSNMP("Udp: a b\nUdp: 1 x\n", "Udp"); err == nil {
		t.Error("a bad number: want an error")
	}
}

func TestHistQuantile(t *testing.T) {
	t.Parallel()
	before := &metrics.Float64Histogram{Counts: []uint64{1, 0, 0}, Buckets: []float64{0, 0.001, 0.01, 0.1}}
	after := &metrics.Float64Histogram{Counts: []uint64{1, 90, 10}, Buckets: before.Buckets}
	if got := histQuantile(before, after, 0.5); got != 10*time.Millisecond {
		t.Errorf("p50 = %v, want 10ms", got)
	}
	if got := histQuantile(before, after, 0.99); got != 100*time.Millisecond {
		t.Errorf("p99 = %v, want 100ms", got)
	}
	if got := histQuantile(after, after, 0.5); got != 0 {
		t.Errorf("no samples: %v, want 0", got)
	}
}
