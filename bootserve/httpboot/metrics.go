package httpboot

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// bootTimeout forgets boots that never fetched their initrd.
const bootTimeout = 10 * time.Minute

type metrics struct {
	artifactBytes *prometheus.CounterVec
	refused       *prometheus.CounterVec

	mu      sync.Mutex
	booting map[string]time.Time
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		artifactBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_http_artifact_bytes_total", Help: "Bytes of boot artifacts sent over HTTP, by kind (kernel, initrd, iso, other)."},
			[]string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_http_refused_total", Help: "HTTP requests refused for a bad path or MAC."},
			[]string{"what"}),
		booting: map[string]time.Time{},
	}
	inProgress := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "swarmboot_boots_in_progress", Help: "Machines that fetched their iPXE script but not yet all of their initrd (forgotten after 10 min)."},
		func() float64 { return float64(m.inProgress()) })
	for _, c := range []prometheus.Collector{m.artifactBytes, m.refused, inProgress} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics (one server per registry): %w", err)
		}
	}
	return m, nil
}

func (m *metrics) started(mac net.HardwareAddr) {
	m.mu.Lock()
	m.booting[mac.String()] = time.Now()
	m.mu.Unlock()
}

func (m *metrics) finished(mac net.HardwareAddr) {
	m.mu.Lock()
	delete(m.booting, mac.String())
	m.mu.Unlock()
}

func (m *metrics) inProgress() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.booting {
		if time.Since(t) > bootTimeout {
			delete(m.booting, k)
		}
	}
	return len(m.booting)
}
