package api

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// postReadings takes readings from a device or integration and answers 202
// only once the accepted ones are durable in the log.
func (s *Handler) postReadings(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	limit := s.MaxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	if int64(len(body)) > limit {
		tooLarge := vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes: send smaller batches", limit)
		if err := s.Ingest.Quarantine(r.Context(), p, "http", body[:min(len(body), gate.QuarantinePrefix)], true, tooLarge); err != nil {
			return err
		}
		w.Header().Set("Connection", "close") // the rest of the body is not read
		return tooLarge
	}
	// A large batch is a backfill (a gateway sending what it kept): optional
	// while the disk is low, unlike live readings. Refused, not taken: the
	// sender keeps it and sends it again later.
	if int64(len(body)) > s.backfillBytes() && s.Space != nil {
		if err := s.Space.CheckOptional(int64(len(body))); err != nil {
			w.Header().Set("Retry-After", "600")
			return &vigil.Error{Code: vigil.EUNAVAILABLE, Err: err,
				Message: vigil.ErrorMessage(err) + "; batches over " + strconv.FormatInt(s.backfillBytes(), 10) + " bytes (backfills) are refused until then, smaller ones are taken"}
		}
	}
	res, err := s.Ingest.Submit(r.Context(), p, "http", body)
	if res == nil {
		return err // the log failed: not acknowledged
	}
	status := http.StatusAccepted
	if err != nil {
		status = gate.ErrorStatus(err)
	}
	out := struct {
		Accepted int               `json:"accepted"`
		Rejected any               `json:"rejected"`
		Error    *gate.ErrorDetail `json:"error,omitempty"`
	}{Accepted: res.Accepted, Rejected: res.Rejected}
	if err != nil {
		out.Error = &gate.ErrorDetail{Code: vigil.ErrorCode(err), Message: vigil.ErrorMessage(err)}
	}
	gate.WriteJSON(w, status, out)
	return nil
}

// readingOut is a reading as the API shows it.
type readingOut struct {
	ID         int64             `json:"id"`
	PatientID  string            `json:"patient_id"`
	DeviceID   string            `json:"device_id,omitempty"`
	Code       string            `json:"code"`
	Value      *float64          `json:"value,omitempty"`
	Unit       string            `json:"unit,omitempty"`
	Time       time.Time         `json:"time"`
	Received   time.Time         `json:"received"`
	Key        string            `json:"key"`
	Flags      []string          `json:"flags,omitempty"`
	Components []vigil.Component `json:"components,omitempty"`
	Source     string            `json:"source,omitempty"`
	// Derivation of a derived reading (NEWS2): the keys of the readings it
	// was computed from, and the inputs missing or stale.
	Derivation *vigil.Derivation `json:"derivation,omitempty"`
}

func toReadingOut(r *vigil.Reading) readingOut {
	o := readingOut{
		ID: r.ID, PatientID: r.SubjectID, DeviceID: r.DeviceID, Code: r.Code, Unit: r.Unit,
		Time: r.Time, Received: r.Received, Key: r.Key, Flags: r.Quality.Names(),
		Components: r.Components, Source: r.Source, Derivation: r.Derivation,
	}
	if r.HasValue() {
		v := r.Value
		o.Value = &v
	}
	return o
}

func toReadingsOut(rs []vigil.Reading) []readingOut {
	out := make([]readingOut, len(rs))
	for i := range rs {
		out[i] = toReadingOut(&rs[i])
	}
	return out
}

// readingsRequest is a parsed GET .../readings query: either a page of
// readings or, with bucket=, a bucketed summary.
type readingsRequest struct {
	Query  vigil.ReadingQuery
	Bucket *vigil.BucketQuery
}

// Limits on bucketed queries.
const (
	maxBuckets         = 10000
	defaultBucketRange = 24 * time.Hour
)

// parseReadingsQuery parses the query parameters of GET
// /api/v1/patients/{id}/readings. Errors are EINVALID with a message naming
// the parameter. It never panics on any input.
func parseReadingsQuery(subject string, v url.Values, now time.Time) (readingsRequest, error) {
	var req readingsRequest
	q := &req.Query
	q.SubjectID = subject
	for _, c := range v["code"] {
		for _, code := range strings.Split(c, ",") {
			if code = strings.TrimSpace(code); code != "" {
				q.Codes = append(q.Codes, code)
			}
		}
	}
	if len(q.Codes) > 50 {
		return req, vigil.Errorf(vigil.EINVALID, "code: at most 50 codes")
	}
	var err error
	if q.From, err = parseTimeParam(v, "from"); err != nil {
		return req, err
	}
	if q.To, err = parseTimeParam(v, "to"); err != nil {
		return req, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return req, vigil.Errorf(vigil.EINVALID, "from must be before to")
	}
	if q.Limit, err = gate.ParseLimit(v.Get("limit"), 100, vigil.MaxReadingLimit); err != nil {
		return req, err
	}
	switch o := v.Get("order"); o {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return req, vigil.Errorf(vigil.EINVALID, "order must be asc or desc, not %q", o)
	}
	if c := v.Get("cursor"); c != "" {
		cur, err := decodeCursor(c)
		if err != nil {
			return req, err
		}
		q.After = &cur
	}
	b := v.Get("bucket")
	if b == "" {
		return req, nil
	}
	width, err := time.ParseDuration(b)
	if err != nil || width < time.Second {
		return req, vigil.Errorf(vigil.EINVALID, "bucket must be a duration of at least 1s, such as 30s, 5m or 1h")
	}
	if len(q.Codes) != 1 {
		return req, vigil.Errorf(vigil.EINVALID, "bucket needs exactly one code")
	}
	bq := &vigil.BucketQuery{SubjectID: subject, Code: q.Codes[0], From: q.From, To: q.To, Width: width}
	if bq.To.IsZero() {
		bq.To = now
	}
	if bq.From.IsZero() {
		bq.From = bq.To.Add(-defaultBucketRange)
	}
	if !bq.From.Before(bq.To) {
		return req, vigil.Errorf(vigil.EINVALID, "from must be before to")
	}
	if n := bq.To.Sub(bq.From) / width; n > maxBuckets {
		return req, vigil.Errorf(vigil.EINVALID, "bucket %s over this range gives %d buckets; at most %d: widen the bucket or narrow the range", b, n, maxBuckets)
	}
	req.Bucket = bq
	return req, nil
}

func parseTimeParam(v url.Values, name string) (time.Time, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, vigil.Errorf(vigil.EINVALID, "%s must be an RFC 3339 time such as 2026-11-20T10:00:00Z", name)
	}
	return t.UTC(), nil
}

// Cursors are opaque to clients: base64url of "<unix microseconds>.<id>".
func encodeCursor(c *vigil.Cursor) string {
	if c == nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Time.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)))
}

var errBadCursor = vigil.Errorf(vigil.EINVALID, "cursor is not one this server issued")

func decodeCursor(s string) (vigil.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return vigil.Cursor{}, errBadCursor
	}
	ts, ids, ok := strings.Cut(string(b), ".")
	if !ok {
		return vigil.Cursor{}, errBadCursor
	}
	us, err1 := strconv.ParseInt(ts, 10, 64)
	id, err2 := strconv.ParseInt(ids, 10, 64)
	if err := errors.Join(err1, err2); err != nil || id < 0 {
		return vigil.Cursor{}, errBadCursor
	}
	return vigil.Cursor{Time: time.UnixMicro(us).UTC(), ID: id}, nil
}

func (s *Handler) listReadings(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	req, err := parseReadingsQuery(id, r.URL.Query(), s.Time())
	if err != nil {
		return err
	}
	if req.Bucket != nil {
		bs, err := s.Store.Buckets(r.Context(), *req.Bucket)
		if err != nil {
			return err
		}
		type bucketOut struct {
			Start time.Time `json:"start"`
			Min   float64   `json:"min"`
			Max   float64   `json:"max"`
			Mean  float64   `json:"mean"`
			Count int       `json:"count"`
		}
		out := make([]bucketOut, len(bs))
		for i, b := range bs {
			out[i] = bucketOut{b.Start, b.Min, b.Max, b.Mean, b.Count}
		}
		gate.WriteJSON(w, http.StatusOK, map[string]any{"code": req.Bucket.Code, "width": req.Bucket.Width.String(), "from": req.Bucket.From, "to": req.Bucket.To, "buckets": out})
		return nil
	}
	page, err := s.Store.Readings(r.Context(), req.Query)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"readings": toReadingsOut(page.Readings), "next": encodeCursor(page.Next)})
	return nil
}

func (s *Handler) latestReadings(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.Store.Latest(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"readings": toReadingsOut(rs)})
	return nil
}

func (s *Handler) backfillBytes() int64 {
	if s.BackfillBytes > 0 {
		return s.BackfillBytes
	}
	return gate.DefaultBackfillBytes
}
