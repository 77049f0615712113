// Package record reads one patient's whole record — identity, devices,
// consents, alerts and every reading — and writes it as FHIR R4: page by
// page as searchset Bundles (Patient $everything) or whole as NDJSON files
// in a zip archive (the dashboard's "Download my data"). It streams: a
// page of readings at a time is in memory, never the record. It does not
// authorize: its caller decided that the reader may see the patient.
package record

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// Limits of a page.
const (
	// DefaultCount is how many Observations a page holds unless asked.
	DefaultCount = 1000
	// MaxCount is the most Observations a page holds.
	MaxCount = vigil.MaxReadingLimit
)

// Source is what a record is read from: the main store (with consents).
type Source interface {
	Patient(ctx context.Context, id string) (*vigil.Patient, error)
	Devices(ctx context.Context, f vigil.DeviceFilter) ([]*vigil.Device, error)
	Readings(ctx context.Context, q vigil.ReadingQuery) (vigil.ReadingPage, error)
	Consents(ctx context.Context, f vigil.ConsentFilter) ([]*vigil.Consent, error)
}

// Alerts is where the patient's alerts are read from (the alerts
// database); nil leaves alerts out.
type Alerts interface {
	Alerts(ctx context.Context, f vigil.AlertFilter) ([]*vigil.Alert, error)
}

// Reader reads records. Its fields are set before use; it is safe for
// concurrent use.
type Reader struct {
	Source  Source
	Alerts  Alerts
	Encoder fhir.Encoder
	// Base is the FHIR base URL entries' fullUrl are made of, e.g.
	// https://vigil.example/fhir/r4.
	Base string
	// PageSize is how many readings WriteZip reads per query; MaxCount
	// if 0.
	PageSize int
}

// Entry is one resource of a record.
type Entry struct {
	Type, ID string
	Resource any
}

// head returns the record's resources other than readings: the Patient,
// then its Devices, Consents and Flags (alerts). ENOTFOUND if the patient
// does not exist.
func (r *Reader) head(ctx context.Context, subject string) ([]Entry, error) {
	p, err := r.Source.Patient(ctx, subject)
	if err != nil {
		return nil, err
	}
	out := []Entry{{"Patient", p.ID, r.Encoder.Patient(p)}}
	ds, err := r.Source.Devices(ctx, vigil.DeviceFilter{SubjectID: subject})
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	for _, d := range ds {
		out = append(out, Entry{"Device", d.ID, r.Encoder.Device(d)})
	}
	cs, err := r.Source.Consents(ctx, vigil.ConsentFilter{SubjectID: subject})
	if err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	for _, c := range cs {
		out = append(out, Entry{"Consent", c.ID, r.Encoder.Consent(c)})
	}
	if r.Alerts != nil {
		as, err := r.Alerts.Alerts(ctx, vigil.AlertFilter{SubjectIDs: []string{subject}})
		if err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		for _, a := range as {
			out = append(out, Entry{"Flag", a.ID, r.Encoder.Flag(a)})
		}
	}
	return out, nil
}

// Page calls emit for each resource of one page of the patient's record:
// the first page (after == nil) starts with the Patient, its Devices,
// Consents and Flags; every page holds up to count Observations (1 to
// MaxCount; DefaultCount if 0), oldest first, after the position after.
// It returns the position the next page starts after, nil on the last
// page. ENOTFOUND if the patient does not exist; emit's error ends the
// page and is returned.
func (r *Reader) Page(ctx context.Context, subject string, after *vigil.Cursor, count int, emit func(Entry) error) (*vigil.Cursor, error) {
	if count <= 0 {
		count = DefaultCount
	}
	count = min(count, MaxCount)
	if after == nil {
		es, err := r.head(ctx, subject)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if err := emit(e); err != nil {
				return nil, err
			}
		}
	} else if _, err := r.Source.Patient(ctx, subject); err != nil {
		return nil, err // erased or never there: no later pages either
	}
	page, err := r.Source.Readings(ctx, vigil.ReadingQuery{SubjectID: subject, After: after, Limit: count})
	if err != nil {
		return nil, fmt.Errorf("read readings: %w", err)
	}
	for i := range page.Readings {
		o := r.Encoder.Observation(&page.Readings[i])
		if err := emit(Entry{"Observation", o.ID, o}); err != nil {
			return nil, err
		}
	}
	return page.Next, nil
}

// WriteBundle writes one page of the record as a searchset Bundle to w,
// streaming: entries are written as they are read, the links (self, and
// next when there is a next page) after them. self is the page's URL;
// next makes the URL of the page after a cursor. ENOTFOUND before
// anything is written if the patient does not exist; after the first
// write, errors leave w holding a truncated Bundle (the caller can only
// end the response).
func (r *Reader) WriteBundle(ctx context.Context, w io.Writer, subject string, after *vigil.Cursor, count int, now time.Time, self string, next func(vigil.Cursor) string) error {
	started := false
	first := true
	start := func() error {
		if started {
			return nil
		}
		started = true
		_, err := io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","timestamp":`+quote(fhir.Instant(now))+`,"entry":[`)
		return err
	}
	cur, err := r.Page(ctx, subject, after, count, func(e Entry) error {
		if err := start(); err != nil {
			return err
		}
		b, err := json.Marshal(fhir.EntryOut{FullURL: r.Base + "/" + e.Type + "/" + e.ID, Resource: mustRaw(e.Resource), Search: &fhir.EntrySearch{Mode: "match"}})
		if err != nil {
			return err
		}
		if !first {
			if _, err := io.WriteString(w, ","); err != nil {
				return err
			}
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if err := start(); err != nil {
		return err
	}
	links := []fhir.Link{{Relation: "self", URL: self}}
	if cur != nil {
		links = append(links, fhir.Link{Relation: "next", URL: next(*cur)})
	}
	lb, err := json.Marshal(links)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, `],"link":`+string(lb)+"}")
	return err
}

// WriteZip writes the whole record to w as a zip archive of NDJSON files,
// one per resource type (Patient.ndjson, Device.ndjson, Consent.ndjson,
// Flag.ndjson, Observation.ndjson; a type without resources has no file),
// streaming a page of readings at a time. ENOTFOUND before anything is
// written if the patient does not exist.
func (r *Reader) WriteZip(ctx context.Context, w io.Writer, subject string, now time.Time) error {
	es, err := r.head(ctx, subject)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	var f io.Writer
	typ := ""
	add := func(e Entry) error {
		if e.Type != typ {
			typ = e.Type
			var err error
			if f, err = zw.CreateHeader(&zip.FileHeader{Name: typ + ".ndjson", Method: zip.Deflate, Modified: now}); err != nil {
				return err
			}
		}
		b, err := json.Marshal(e.Resource)
		if err != nil {
			return err
		}
		_, err = f.Write(append(b, '\n'))
		return err
	}
	for _, e := range es {
		if err := add(e); err != nil {
			return err
		}
	}
	size := r.PageSize
	if size <= 0 {
		size = MaxCount
	}
	var after *vigil.Cursor
	for {
		page, err := r.Source.Readings(ctx, vigil.ReadingQuery{SubjectID: subject, After: after, Limit: size})
		if err != nil {
			return fmt.Errorf("read readings: %w", err)
		}
		for i := range page.Readings {
			if err := add(Entry{"Observation", "", r.Encoder.Observation(&page.Readings[i])}); err != nil {
				return err
			}
		}
		if page.Next == nil {
			break
		}
		after = page.Next
	}
	return zw.Close()
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// mustRaw encodes a resource of package fhir, which always encodes.
func mustRaw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}
