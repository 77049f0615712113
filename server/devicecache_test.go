package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
)

// The HTTPS ingest reuses device records for a second; a reassignment
// through the API is seen by the device's very next request, and a
// revocation refuses it.
func TestDeviceChangeSeenAtOnce(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	other, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: "Grace Hopper", BirthDate: "1906-12-09", MRN: fmt.Sprint("MRN-other-", time.Now().UnixNano())})
	if err != nil {
		t.Fatalf("CreatePatient: %v", err)
	}
	post := func(seq int, value float64) int {
		body := fmt.Sprintf(`{"readings":[{"code":"8867-4","value":%g,"unit":"/min","time":%q,"seq":%d}]}`, value, recent(time.Duration(10-seq)*time.Second), seq)
		st, _ := h.do("POST", "/api/v1/readings", h.devTok, []byte(body))
		return st
	}
	if st := post(1, 71); st != http.StatusAccepted {
		t.Fatalf("POST before reassignment: %d", st)
	}
	st, m := h.do("PATCH", "/api/v1/devices/"+h.devID, h.admin.Token(), []byte(fmt.Sprintf(`{"patient_id":%q}`, other)))
	if st != http.StatusOK {
		t.Fatalf("PATCH device: %d %v", st, m)
	}
	if st := post(2, 72); st != http.StatusAccepted {
		t.Fatalf("POST after reassignment: %d", st)
	}
	h.waitStored()
	for _, c := range []struct {
		pid  string
		want float64
	}{{h.pid, 71}, {other, 72}} {
		page, err := h.admin.Readings(ctx, c.pid, client.ReadingsQuery{Code: "8867-4"})
		if err != nil {
			t.Fatalf("Readings: %v", err)
		}
		if len(page.Readings) != 1 || page.Readings[0].Value != c.want {
			t.Errorf("patient %s holds %+v, want only the reading of value %g", c.pid, page.Readings, c.want)
		}
	}
	if st, m := h.do("POST", "/api/v1/devices/"+h.devID+"/revoke", h.admin.Token(), nil); st != http.StatusOK {
		t.Fatalf("revoke: %d %v", st, m)
	}
	if st := post(3, 73); st != http.StatusUnauthorized {
		t.Errorf("POST after revocation: %d, want 401", st)
	}
}
