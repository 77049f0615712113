package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Component is one measurement inside a panel, such as the systolic pressure
// (8480-6) of a blood pressure panel (85354-9).
type Component struct {
	Code  string  `json:"code"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// ReadingIn is one reading as a device sends it.
//
// A panel (such as blood pressure 85354-9) has Unit "" and its measurements
// in Components; it is sent without a value. Every other reading is sent with
// its Value, zero included.
type ReadingIn struct {
	Code       string      `json:"code"`            // LOINC code, e.g. "8867-4"
	Value      float64     `json:"value"`           // in Unit
	Unit       string      `json:"unit,omitempty"`  // UCUM unit, e.g. "/min"; "" for a panel
	Time       time.Time   `json:"time"`            // when it was measured; sent in UTC
	Seq        uint64      `json:"seq,omitempty"`   // the device's sequence number; 0: none (the server keys the reading by its content)
	Flags      []string    `json:"flags,omitempty"` // quality flags: questionable, artifact, sensor-off, calibrating
	Components []Component `json:"components,omitempty"`
	// DeviceID and PatientID are for integrations sending on behalf of
	// devices; a device sending its own readings leaves them empty.
	DeviceID  string `json:"device_id,omitempty"`
	PatientID string `json:"patient_id,omitempty"`
}

// wireReading is ReadingIn as sent: the value is left out for panels.
type wireReading struct {
	Code       string      `json:"code"`
	Value      *float64    `json:"value,omitempty"`
	Unit       string      `json:"unit,omitempty"`
	Time       time.Time   `json:"time"`
	Seq        uint64      `json:"seq,omitempty"`
	Flags      []string    `json:"flags,omitempty"`
	Components []Component `json:"components,omitempty"`
	DeviceID   string      `json:"device_id,omitempty"`
	PatientID  string      `json:"patient_id,omitempty"`
}

func (r *ReadingIn) wire() wireReading {
	w := wireReading{
		Code: r.Code, Unit: r.Unit, Time: r.Time.UTC(), Seq: r.Seq, Flags: r.Flags,
		Components: r.Components, DeviceID: r.DeviceID, PatientID: r.PatientID,
	}
	if r.Unit != "" || len(r.Components) == 0 {
		v := r.Value
		w.Value = &v
	}
	return w
}

// MarshalJSON writes r as the API expects it: panels without a value.
func (r ReadingIn) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// IngestResult says what became of a batch of readings. Accepted readings
// are durable on the server.
type IngestResult struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
}

// Rejection is one refused reading. Index is its position in the batch, or
// -1 when the whole batch was refused.
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
	Code   string `json:"code,omitempty"` // the API's error code for it, when given
}

// PostReadings sends a batch of readings with a device's token. It returns
// once the server has made the accepted readings durable (202), with the
// rejected ones listed in the result.
//
// When the server refuses every reading (400) it returns both the result,
// listing each rejection, and an *Error. Any other failure returns only an
// error. Sending the same readings again with the same Seq is safe: the
// server stores each once, so a batch whose answer was lost or that failed
// with a temporary error (see Error.Temporary) should be sent again as it
// was.
func (c *Client) PostReadings(ctx context.Context, deviceToken string, rs []ReadingIn) (*IngestResult, error) {
	if deviceToken == "" {
		return nil, errors.New("post readings: no device token")
	}
	in, err := appendReadingsBody(make([]byte, 0, 128*len(rs)+16), rs)
	if err != nil {
		return nil, fmt.Errorf("post readings: encode request: %w", err)
	}
	var res IngestResult
	status, body, err := c.send(ctx, http.MethodPost, "/readings", nil, deviceToken, rawJSON(in), &res)
	if err != nil {
		return nil, fmt.Errorf("post readings: %w", err)
	}
	if status/100 == 2 {
		return &res, nil
	}
	apiErr := errorFrom(status, body)
	if status == http.StatusBadRequest {
		var bad IngestResult
		if json.Unmarshal(body, &bad) == nil && len(bad.Rejected) > 0 {
			return &bad, fmt.Errorf("post readings: %w", apiErr)
		}
	}
	return nil, fmt.Errorf("post readings: %w", apiErr)
}

// ReadingOut is a stored reading as the API shows it.
type ReadingOut struct {
	ID         int64       `json:"id"`
	PatientID  string      `json:"patient_id"`
	DeviceID   string      `json:"device_id"` // "" for manual or derived readings
	Code       string      `json:"code"`
	Value      float64     `json:"value"` // 0 for a panel
	Unit       string      `json:"unit"`  // "" for a panel
	Time       time.Time   `json:"time"`
	Received   time.Time   `json:"received"`
	Key        string      `json:"key"` // idempotency key
	Flags      []string    `json:"flags"`
	Components []Component `json:"components"`
	Source     string      `json:"source"` // inbound adapter, e.g. "http"
	// Derivation is set on derived readings (NEWS2) only.
	Derivation *Derivation `json:"derivation,omitempty"`
}

// Derivation says what a derived reading was computed from: the keys of
// the readings used, and the inputs that had no value (Missing) or only
// one too old to count (Stale). With either, the value is a lower bound.
type Derivation struct {
	From    []string `json:"from"`
	Missing []string `json:"missing"`
	Stale   []string `json:"stale"`
}

// ReadingsQuery selects one patient's readings. Zero values match
// everything, oldest first, in pages of the server's default size.
type ReadingsQuery struct {
	Code   string    // LOINC code; "" for every code
	From   time.Time // inclusive; zero: no lower bound
	To     time.Time // exclusive; zero: no upper bound
	Limit  int       // at most this many; 0 for the server's default
	Cursor string    // ReadingPage.Next of the previous page
	Desc   bool      // newest first
}

// ReadingPage is one page of readings. Next is "" on the last page.
type ReadingPage struct {
	Readings []ReadingOut `json:"readings"`
	Next     string       `json:"next"`
}

// Readings returns one page of a patient's readings in time order.
func (c *Client) Readings(ctx context.Context, patientID string, q ReadingsQuery) (*ReadingPage, error) {
	v := url.Values{}
	if q.Code != "" {
		v.Set("code", q.Code)
	}
	setRange(v, q.From, q.To)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Desc {
		v.Set("order", "desc")
	} else {
		v.Set("order", "asc")
	}
	var page ReadingPage
	if err := c.do(ctx, http.MethodGet, "/patients/"+pathID(patientID)+"/readings", v, "", nil, &page); err != nil {
		return nil, fmt.Errorf("list readings: %w", err)
	}
	return &page, nil
}

// Latest returns the newest reading of each code for a patient.
func (c *Client) Latest(ctx context.Context, patientID string) ([]ReadingOut, error) {
	var out struct {
		Readings []ReadingOut `json:"readings"`
	}
	if err := c.do(ctx, http.MethodGet, "/patients/"+pathID(patientID)+"/latest", nil, "", nil, &out); err != nil {
		return nil, fmt.Errorf("get latest readings: %w", err)
	}
	return out.Readings, nil
}

// BucketsQuery asks for one code's values summarised per time bucket. Code
// may be a component code such as systolic 8480-6.
type BucketsQuery struct {
	Code  string        // required
	Width time.Duration // bucket width, at least a second; required
	From  time.Time     // inclusive; zero: the server's default range
	To    time.Time     // exclusive; zero: now
}

// Bucket summarises the values in [Start, Start+Width).
type Bucket struct {
	Start time.Time `json:"start"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	Count int       `json:"count"`
}

// Buckets returns a patient's values of q.Code summarised per bucket, oldest
// first. Buckets with no values are left out.
func (c *Client) Buckets(ctx context.Context, patientID string, q BucketsQuery) ([]Bucket, error) {
	if q.Code == "" || q.Width <= 0 {
		return nil, errors.New("list buckets: a code and a positive width are required")
	}
	v := url.Values{}
	v.Set("code", q.Code)
	v.Set("bucket", formatWidth(q.Width))
	setRange(v, q.From, q.To)
	var out struct {
		Buckets []Bucket `json:"buckets"`
	}
	if err := c.do(ctx, http.MethodGet, "/patients/"+pathID(patientID)+"/readings", v, "", nil, &out); err != nil {
		return nil, fmt.Errorf("list buckets: %w", err)
	}
	return out.Buckets, nil
}

func setRange(v url.Values, from, to time.Time) {
	if !from.IsZero() {
		v.Set("from", formatTime(from))
	}
	if !to.IsZero() {
		v.Set("to", formatTime(to))
	}
}
