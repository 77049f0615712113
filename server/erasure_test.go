package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/client"
)

// markers are the strings and values of one patient that erasure must
// leave nowhere in the data directory, each with the byte strings to look
// for: text, and a value's float64 encodings.
type markers map[string][][]byte

func floatMarker(v float64, text string) [][]byte {
	var le, be [8]byte
	binary.LittleEndian.PutUint64(le[:], math.Float64bits(v))
	binary.BigEndian.PutUint64(be[:], math.Float64bits(v))
	return [][]byte{[]byte(text), le[:], be[:]}
}

// scan returns, per marker, the files of dir that hold one of its forms.
func (m markers) scan(t *testing.T, dir string) map[string][]string {
	t.Helper()
	hits := map[string][]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (a log block expiring)
			}
			return err
		}
		if info.IsDir() || info.Mode()&os.ModeSocket != 0 {
			return nil
		}
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for name, forms := range m {
			for _, f := range forms {
				if bytes.Contains(b, f) {
					hits[name] = append(hits[name], rel)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestErasureLeavesNothing is the proof of erasure: a patient with a
// unique name, MRN and birth date, readings with a unique value, an alert
// acknowledged with a unique note, quarantined input carrying their name and
// an export naming them; after the erasure, with the databases
// checkpointed (the erasure does it) and the durable log past its retention
// (--log-max-age, 2 seconds here: the log keeps readings, pseudonymous,
// until then), no file of the data directory holds any of them, in text or
// as a float64 in either byte order.
func TestErasureLeavesNothing(t *testing.T) {
	const logMaxAge = 2 * time.Second
	h := start(t, "", func(o *Options) {
		o.LogMaxAge = logMaxAge
		o.ErasureSettle = -1 // complete at once, once the log's consumers are done
	})
	ctx := t.Context()
	const (
		name  = "Quintessa-Zx81q Marrowbrook"
		mrn   = "MRN-ERASE-7kq2Zp"
		birth = "1937-04-19"
		note  = "bedside note MARKER-n0te-4471"
		value = 38.456789 // body temperature, Cel
		spo2  = 84.123457 // low enough to raise an alert
	)
	m := markers{
		"name":        {[]byte(name)},
		"mrn":         {[]byte(mrn)},
		"birth date":  {[]byte(birth)},
		"note":        {[]byte(note)},
		"temperature": floatMarker(value, "38.456789"),
		"spo2":        floatMarker(spo2, "84.123457"),
	}
	pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: name, BirthDate: birth, MRN: mrn})
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.admin.CreateDevice(ctx, client.DeviceIn{Kind: "pulse-oximeter", Model: "PO-1", Serial: "erase-1", PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 6 {
		ts := base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		items = append(items,
			fmt.Sprintf(`{"code":"8310-5","value":%v,"unit":"Cel","time":%q,"seq":%d}`, value, ts, 2*i+1),
			fmt.Sprintf(`{"code":"2708-6","value":%v,"unit":"%%","time":%q,"seq":%d}`, spo2, ts, 2*i+2))
	}
	// Refused (an unknown unit), so kept whole in the quarantine, name and all.
	items = append(items, fmt.Sprintf(`{"code":"8310-5","value":%v,"unit":"furlong","time":%q,"seq":99,"comment":%q}`, value, base.Format(time.RFC3339), name))
	if st, body := h.do("POST", "/api/v1/readings", d.Token, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, body)
	}
	h.waitStored()
	var alert *vigil.Alert
	for deadline := time.Now().Add(30 * time.Second); alert == nil; {
		as, err := h.srv.AlertStore().Alerts(ctx, vigil.AlertFilter{SubjectIDs: []string{pid}})
		if err != nil {
			t.Fatal(err)
		}
		if len(as) > 0 {
			alert = as[0]
		} else if time.Now().After(deadline) {
			t.Fatal("no alert for the patient within 30 s")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := (&alerting.Actions{Engine: h.srv.engine}).Acknowledge(ctx, alert.ID, "usr_nurse", note); err != nil {
		t.Fatal(err)
	}
	// An export naming the patient, as a bulk export job leaves it.
	job := filepath.Join(h.dir, "fhir-export", "job-1")
	if err := os.MkdirAll(job, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(job, "Patient.ndjson"), []byte(`{"resourceType":"Patient","id":"`+pid+`","name":[{"text":"`+name+`"}],"birthDate":"`+birth+`"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The scan finds what is there: the values, the note, the name where
	// they were put in plaintext (quarantine, export). The identity is
	// sealed: the MRN is nowhere.
	before := m.scan(t, h.dir)
	for _, k := range []string{"name", "note", "temperature", "spo2"} {
		if len(before[k]) == 0 {
			t.Errorf("before the erasure, the scan finds no %s: it would find nothing after either", k)
		}
	}
	if len(before["mrn"]) > 0 {
		t.Errorf("the MRN is in plaintext in %v: identity is not sealed", before["mrn"])
	}

	if _, err := h.srv.Erasure().Erase(ctx, pid, "usr_admin"); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	// The erasure completes once the log's consumers are done and the
	// databases are checkpointed (readers may delay the checkpoint).
	for deadline := time.Now().Add(30 * time.Second); ; {
		e, err := h.srv.Store().Erasure(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Completed.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the erasure did not complete within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
		if err := h.srv.Erasure().Finish(ctx); err != nil {
			t.Logf("Finish: %v", err)
		}
	}
	if _, err := h.srv.Store().Patient(ctx, pid); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Patient after erasure: %v, want %s", err, vigil.ENOTFOUND)
	}
	if page, err := h.srv.Store().Readings(ctx, vigil.ReadingQuery{SubjectID: pid}); err != nil || len(page.Readings) != 0 {
		t.Errorf("readings of the erased patient: %d, %v; want none", len(page.Readings), err)
	}

	// Within the durable log's retention its files still hold the
	// readings (subject id and values, no identity); past it, nothing is
	// left anywhere.
	var hits map[string][]string
	for deadline := time.Now().Add(logMaxAge + 30*time.Second); ; {
		if hits = m.scan(t, h.dir); len(hits) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k, files := range hits {
		t.Errorf("after the erasure and the log's retention, %s is still in %v", k, files)
	}

	// The erasure is audited, with the patient's opaque id only.
	es, err := h.srv.AuditLog().AuditEntries(ctx, vigil.AuditFilter{SubjectID: pid})
	if err != nil {
		t.Fatal(err)
	}
	var complete bool
	for _, e := range es {
		complete = complete || e.Action == vigil.AuditPatientEraseComplete
	}
	if !complete {
		t.Error("no patient.erase_complete entry in the audit log")
	}
}
