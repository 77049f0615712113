package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil/alerting"
)

// RulesEngineLagMetric is the gauge of log messages the rules engine has
// not yet processed.
const RulesEngineLagMetric = "vigil_rules_engine_lag_messages"

// registerSafetyMetrics registers the metrics of the safety paths that the
// components do not register themselves: the rules engine's lag behind
// the log, the alarm delay and webhook deliveries given up (alerting), and
// the MQTT listener's connections and refusals. It sets the engine's and
// webhooks' Metrics, so it runs after they are made and before they run.
func (s *Server) registerSafetyMetrics() {
	am := alerting.NewMetrics(s.registry)
	s.engine.Metrics = am
	s.webhooks.Metrics = am
	s.registry.MustRegister(s.mqtt.Collectors()...)
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: RulesEngineLagMetric,
		Help: "Log messages the rules engine has not yet processed (-1 when the log cannot say): readings whose alerts are not yet evaluated.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := s.log.Lag(ctx, alerting.EngineName)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}
