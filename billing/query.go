package billing

import (
	"encoding/csv"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// Query is a request for a month's report, as the query parameters of GET
// /api/v1/reports/monitoring and the dashboard's report page give it.
type Query struct {
	Month Month
	// Zone is the time zone calendar days and the month are counted in
	// (tz=, an IANA name; the site's zone if absent).
	Zone *time.Location
	// Team and Patient narrow the report to one care team's patients or
	// one patient; at most one of them.
	Team, Patient string
	// CSV: answer text/csv (format=csv, or an Accept header preferring
	// text/csv) instead of JSON.
	CSV bool
}

// maxParam is the longest id or zone name a query may carry.
const maxParam = 64

// ParseQuery reads a report request from v and the request's Accept
// header; zone is the site's time zone, used when tz= is absent (UTC if
// nil). Every error is EINVALID; unknown parameters are refused, so a
// misspelt filter is not silently a report of every patient.
func ParseQuery(v url.Values, accept string, zone *time.Location) (Query, error) {
	var q Query
	for k, vs := range v {
		switch k {
		case "month", "tz", "team", "patient", "format":
			if len(vs) != 1 {
				return q, vigil.Errorf(vigil.EINVALID, "%s: give it once", k)
			}
		default:
			return q, vigil.Errorf(vigil.EINVALID, "unknown parameter %q (want month, tz, team, patient, format)", truncate(k))
		}
	}
	m := v.Get("month")
	if m == "" {
		return q, vigil.Errorf(vigil.EINVALID, "month is required (YYYY-MM)")
	}
	var err error
	if q.Month, err = ParseMonth(m); err != nil {
		return q, err
	}
	q.Zone = zone
	if q.Zone == nil {
		q.Zone = time.UTC
	}
	if tz := v.Get("tz"); tz != "" {
		if !validName(tz, "/_+-") {
			return q, vigil.Errorf(vigil.EINVALID, "tz: not a time zone name")
		}
		if q.Zone, err = time.LoadLocation(tz); err != nil {
			return q, vigil.Errorf(vigil.EINVALID, "tz: unknown time zone %q", tz)
		}
	}
	q.Team, q.Patient = v.Get("team"), v.Get("patient")
	for k, id := range map[string]string{"team": q.Team, "patient": q.Patient} {
		if id != "" && !validName(id, "_-") {
			return q, vigil.Errorf(vigil.EINVALID, "%s: not an id", k)
		}
	}
	if q.Team != "" && q.Patient != "" {
		return q, vigil.Errorf(vigil.EINVALID, "give team or patient, not both")
	}
	switch f := v.Get("format"); f {
	case "":
		q.CSV = prefersCSV(accept)
	case "csv":
		q.CSV = true
	case "json":
	default:
		return q, vigil.Errorf(vigil.EINVALID, "format must be json or csv, not %q", truncate(f))
	}
	return q, nil
}

// validName reports whether s is 1 to maxParam ASCII letters, digits and
// the characters of extra, starting with a letter or digit.
func validName(s, extra string) bool {
	if s == "" || len(s) > maxParam {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && (i == 0 || !strings.ContainsRune(extra, c)) {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > maxParam {
		return s[:maxParam] + "…"
	}
	return s
}

// prefersCSV reports whether an Accept header names text/csv before any
// JSON type (in the order given; weights are not weighed).
func prefersCSV(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "application/json", "*/*", "application/*":
			return false
		}
	}
	return false
}

// CSVHeader is the first row of WriteCSV.
var CSVHeader = []string{"month", "time_zone", "patient_id", "code", "units", "provisional", "basis",
	"days_with_data", "days", "minutes", "interactive_entries", "entries"}

// WriteCSV writes the report as CSV: one row per claim, and one row with
// an empty code for a patient whose month supports none (so every patient
// asked for is listed). Fields that patients' clinicians could write are
// not in it: no free text, so no spreadsheet formula either.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, p := range rep.Patients {
		base := []string{rep.Month.String(), rep.Zone, p.PatientID}
		if len(p.Claims) == 0 {
			row := append(base, "", "0", "false", "no code supported", "0", "", strconv.Itoa(p.Minutes), "", "")
			if err := cw.Write(row); err != nil {
				return err
			}
			continue
		}
		for _, c := range p.Claims {
			days := make([]string, len(c.Days))
			for i, d := range c.Days {
				days[i] = d.String()
			}
			row := append(append([]string(nil), base...), c.Code, strconv.Itoa(c.Units), strconv.FormatBool(c.Provisional), c.Basis,
				strconv.Itoa(len(c.Days)), strings.Join(days, " "), strconv.Itoa(c.Minutes),
				strings.Join(c.Interactive, " "), strings.Join(c.Entries, " "))
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("monitoring report as CSV: %w", err)
	}
	return nil
}
