package dhcp

import (
	"log/slog"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus counters of a Handler; all methods are no-ops
// on a nil *metrics.
type metrics struct {
	in     *prometheus.CounterVec // by message type
	out    *prometheus.CounterVec // by message type
	offers *prometheus.CounterVec // by arch and mode
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_dhcp_received_total", Help: "DHCP requests received, by message type.",
		}, []string{"type"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_dhcp_replies_total", Help: "DHCP replies sent, by message type.",
		}, []string{"type"}),
		offers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmboot_dhcp_offers_total", Help: "DHCP offers sent, by client architecture and mode.",
		}, []string{"arch", "mode"}),
	}
	for _, c := range []prometheus.Collector{m.in, m.out, m.offers} {
		if err := reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				switch c {
				case m.in:
					m.in = are.ExistingCollector.(*prometheus.CounterVec)
				case m.out:
					m.out = are.ExistingCollector.(*prometheus.CounterVec)
				case m.offers:
					m.offers = are.ExistingCollector.(*prometheus.CounterVec)
				}
			} else {
				log.Warn("DHCP metric not exported", "err", err)
			}
		}
	}
	return m
}

func (m *metrics) received(mt dhcpv4.MessageType) {
	if m != nil {
		m.in.WithLabelValues(mt.String()).Inc()
	}
}

func (m *metrics) sent(mt dhcpv4.MessageType, arch string, mode Mode) {
	if m == nil {
		return
	}
	m.out.WithLabelValues(mt.String()).Inc()
	if mt == dhcpv4.MessageTypeOffer {
		m.offers.WithLabelValues(arch, string(mode)).Inc()
	}
}
