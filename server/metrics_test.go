package server

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsLint: every metric the server registers passes the Prometheus
// naming and help conventions (client_golang's promlint), and the safety
// paths are exported: rules-engine lag, alarm delay, webhook deliveries
// failed and pending, MQTT connections and refusals, quarantine inflow,
// request durations by code, method and route.
func TestMetricsLint(t *testing.T) {
	h := start(t, "")
	// Labelled series exist once something happened: an accepted reading
	// and a refused one.
	body := fmt.Sprintf(`{"readings":[{"code":"8867-4","value":70,"unit":"/min","time":%q},{"code":"8867-4","value":900,"unit":"/min","time":%q}]}`, recent(0), recent(0))
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(body)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	probs, err := testutil.GatherAndLint(h.srv.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		"vigil_rules_engine_lag_messages ",
		"vigil_alarm_delay_seconds_count ",
		"vigil_webhook_deliveries_failed_total ",
		"vigil_webhook_deliveries_pending ",
		"vigil_mqtt_connections ",
		`vigil_mqtt_refused_total{reason="bad_credentials"} `,
		`vigil_quarantine_items_total{reason="invalid",source="http"} 1`,
		`vigil_http_request_duration_seconds_count{code="202",method="POST",route="/api/v1/readings"} `,
	} {
		if h.metric(want) == "" {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
