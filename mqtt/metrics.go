package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the MQTT listener (see Server.Collectors).
const (
	ConnectionsMetric = "vigil_mqtt_connections"
	RefusedMetric     = "vigil_mqtt_refused_total"
)

// Labels of RefusedMetric: why a connection was refused before it was a
// device's session.
const (
	RefusedBadCredentials    = "bad_credentials"    // unknown device, wrong token or certificate, over-long user name
	RefusedNotAuthorized     = "not_authorized"     // a revoked device
	RefusedUnsupported       = "unsupported"        // enhanced auth, will QoS 2, retained will, empty client id
	RefusedServerUnavailable = "server_unavailable" // the device registry failed
	RefusedShuttingDown      = "shutting_down"
	RefusedHandshake         = "handshake" // TLS failed, or the first packet was not a valid CONNECT, or timed out
)

// refusedLabel is the RefusedMetric label of a CONNACK reason code.
func refusedLabel(reason byte) string {
	switch reason {
	case ReasonBadCredentials:
		return RefusedBadCredentials
	case ReasonNotAuthorized:
		return RefusedNotAuthorized
	case ReasonServerUnavailable:
		return RefusedServerUnavailable
	case ReasonServerShuttingDown:
		return RefusedShuttingDown
	}
	return RefusedUnsupported
}

func newRefusedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RefusedMetric,
		Help: "MQTT connections refused before a session began, by reason: " + RefusedBadCredentials + ", " + RefusedNotAuthorized + ", " +
			RefusedUnsupported + ", " + RefusedServerUnavailable + ", " + RefusedShuttingDown + ", " + RefusedHandshake + ".",
	}, []string{"reason"})
	for _, r := range []string{RefusedBadCredentials, RefusedNotAuthorized, RefusedUnsupported, RefusedServerUnavailable, RefusedShuttingDown, RefusedHandshake} {
		c.WithLabelValues(r) // every reason shows, at 0 until it happens
	}
	return c
}

// Collectors returns the listener's metrics, for the caller to register:
// ConnectionsMetric, the devices connected now (sessions past CONNACK), and
// RefusedMetric.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: ConnectionsMetric,
			Help: "Devices connected over MQTT now (sessions past CONNACK).",
		}, func() float64 { return float64(s.Connections()) }),
		s.refused,
	}
}

// Connections returns how many devices are connected now.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conned)
}
