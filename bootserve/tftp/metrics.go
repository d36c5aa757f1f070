package tftp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	transfers prometheus.Counter
	bytes     prometheus.Counter
	active    prometheus.Gauge
	failures  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		transfers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmboot_tftp_transfers_total", Help: "TFTP read transfers completed."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmboot_tftp_bytes_total", Help: "Bytes sent by TFTP transfers."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmboot_tftp_transfers_active", Help: "TFTP transfers in progress."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_tftp_failures_total", Help: "TFTP requests that failed, by reason (refused, not-found, transfer, bad-request)."},
			[]string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transfers, m.bytes, m.active, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics (one server per registry): %w", err)
		}
	}
	return m, nil
}
