package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a TLS server answering with canned JSON and recording what it got.
type fake struct {
	srv *httptest.Server

	mu    sync.Mutex
	reqs  []recorded
	conns int
}

type recorded struct {
	Method, Path, RawQuery, Auth, ContentType string
	Body                                      []byte
}

// answer is a canned response.
type answer struct {
	status int
	body   string
}

func newFake(t *testing.T, routes map[string]answer) *fake {
	t.Helper()
	f := &fake{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		f.mu.Unlock()
		a, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			a = answer{404, `{"error":{"code":"not_found","message":"no such route"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) client(t *testing.T, opts ...Option) *Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	c, err := New(f.srv.URL, append([]Option{WithRootCAs(pool)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fake) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the server got no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func TestLoginSetsToken(t *testing.T) {
	f := newFake(t, map[string]answer{
		"POST /api/v1/auth/token": {200, `{"token":"s3cret","expires_at":"2026-11-20T22:00:00Z"}`},
		"POST /api/v1/patients":   {201, `{"id":"pat_1"}`},
	})
	c := f.client(t)
	ctx := context.Background()
	tok, err := c.Login(ctx, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := &Token{Token: "s3cret", ExpiresAt: time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(tok, want) {
		t.Errorf("Login = %+v, want %+v", tok, want)
	}
	r := f.last(t)
	if got, want := string(r.Body), `{"username":"ada","password":"pw"}`; got != want {
		t.Errorf("login body = %s, want %s", got, want)
	}
	if r.Auth != "" {
		t.Errorf("login sent Authorization %q, want none", r.Auth)
	}
	if got := c.Token(); got != "s3cret" {
		t.Errorf("Token() = %q, want s3cret", got)
	}
	if _, err := c.CreatePatient(ctx, PatientIn{Name: "A", BirthDate: "1950-01-02", MRN: "M1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.last(t).Auth, "Bearer s3cret"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
}

func TestPatients(t *testing.T) {
	f := newFake(t, map[string]answer{
		"POST /api/v1/patients":         {201, `{"id":"pat_1"}`},
		"GET /api/v1/patients/pat_1":    {200, `{"id":"pat_1","name":"Ada Byron","birth_date":"1950-01-02","mrn":"M1","created":"2026-11-20T10:00:00Z"}`},
		"GET /api/v1/patients/a b":      {200, `{"id":"a b"}`},
		"GET /api/v1/patients":          {200, `{"patients":[{"id":"pat_1","name":"Ada Byron","birth_date":"1950-01-02","mrn":"M1","created":"2026-11-20T10:00:00Z"}],"next":"pat_1"}`},
		"POST /api/v1/devices":          {201, `{"id":"dev_1","token":"devtok"}`},
		"GET /api/v1/patients/pat_none": {404, `{"error":{"code":"not_found","message":"no such patient"}}`},
	})
	c := f.client(t, WithToken("tok"))
	ctx := context.Background()

	id, err := c.CreatePatient(ctx, PatientIn{Name: "Ada Byron", BirthDate: "1950-01-02", MRN: "M1"})
	if err != nil || id != "pat_1" {
		t.Fatalf("CreatePatient = %q, %v; want pat_1", id, err)
	}
	r := f.last(t)
	if got, want := string(r.Body), `{"name":"Ada Byron","birth_date":"1950-01-02","mrn":"M1"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if r.ContentType != "application/json" || r.Auth != "Bearer tok" {
		t.Errorf("Content-Type %q, Authorization %q", r.ContentType, r.Auth)
	}

	want := Patient{ID: "pat_1", Name: "Ada Byron", BirthDate: "1950-01-02", MRN: "M1", Created: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	p, err := c.Patient(ctx, "pat_1")
	if err != nil {
		t.Fatal(err)
	}
	if *p != want {
		t.Errorf("Patient = %+v, want %+v", *p, want)
	}
	if _, err := c.Patient(ctx, "a b"); err != nil {
		t.Errorf("Patient(%q): %v", "a b", err)
	}
	if got := f.last(t).Path; got != "/api/v1/patients/a b" {
		t.Errorf("path = %q", got)
	}

	page, err := c.Patients(ctx, PatientsQuery{MRN: "M1", Limit: 10, Cursor: "pat_0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Patients) != 1 || page.Patients[0] != want || page.Next != "pat_1" {
		t.Errorf("Patients = %+v", page)
	}
	if got, want := f.last(t).RawQuery, "cursor=pat_0&limit=10&mrn=M1"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}

	d, err := c.CreateDevice(ctx, DeviceIn{Kind: "cgm", Model: "G7", Serial: "S1", PatientID: "pat_1"})
	if err != nil {
		t.Fatal(err)
	}
	if *d != (DeviceCreated{ID: "dev_1", Token: "devtok"}) {
		t.Errorf("CreateDevice = %+v", d)
	}
	if got, want := string(f.last(t).Body), `{"kind":"cgm","model":"G7","serial":"S1","patient_id":"pat_1"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}

	_, err = c.Patient(ctx, "pat_none")
	var e *Error
	if !errors.As(err, &e) || *e != (Error{Status: 404, Code: "not_found", Message: "no such patient"}) {
		t.Errorf("Patient(pat_none) error = %#v", err)
	}
}

func TestPostReadings(t *testing.T) {
	f := newFake(t, map[string]answer{
		"POST /api/v1/readings": {202, `{"accepted":3,"rejected":[{"index":3,"reason":"unknown code","code":"invalid"}]}`},
	})
	c := f.client(t, WithToken("user-token"))
	at := time.Date(2026, 11, 20, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	rs := []ReadingIn{
		{Code: "8867-4", Value: 72, Unit: "/min", Time: at, Seq: 17, Flags: []string{"artifact"}},
		{Code: "85354-9", Time: at, Seq: 18, Components: []Component{{"8480-6", 120, "mm[Hg]"}, {"8462-4", 80, "mm[Hg]"}}},
		{Code: "55423-8", Value: 0, Unit: "{steps}", Time: at},
		{Code: "0000-0", Value: 1.5, Unit: "x", Time: at, Seq: 19, DeviceID: "dev_2", PatientID: "pat_2"},
	}
	res, err := c.PostReadings(context.Background(), "dev-token", rs)
	if err != nil {
		t.Fatal(err)
	}
	want := &IngestResult{Accepted: 3, Rejected: []Rejection{{Index: 3, Reason: "unknown code", Code: "invalid"}}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("PostReadings = %+v, want %+v", res, want)
	}
	r := f.last(t)
	if r.Auth != "Bearer dev-token" {
		t.Errorf("Authorization = %q, want the device token", r.Auth)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "readings.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Body), strings.TrimSpace(string(golden)); got != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
	// json.Marshal of a ReadingIn writes the same form.
	b, err := json.Marshal(struct {
		Readings []ReadingIn `json:"readings"`
	}{rs})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(r.Body) {
		t.Errorf("json.Marshal = %s, want %s", b, r.Body)
	}

	if _, err := c.PostReadings(context.Background(), "", rs); err == nil {
		t.Error("PostReadings with no device token: no error")
	}
}

func TestPostReadingsAllRejected(t *testing.T) {
	f := newFake(t, map[string]answer{
		"POST /api/v1/readings": {400, `{"accepted":0,"rejected":[{"index":0,"reason":"value out of range"}],"error":{"code":"invalid","message":"every reading was rejected"}}`},
	})
	c := f.client(t)
	res, err := c.PostReadings(context.Background(), "d", []ReadingIn{{Code: "8867-4", Value: 900, Unit: "/min"}})
	var e *Error
	if !errors.As(err, &e) || *e != (Error{Status: 400, Code: "invalid", Message: "every reading was rejected"}) {
		t.Fatalf("error = %#v, want *Error 400 invalid", err)
	}
	want := &IngestResult{Rejected: []Rejection{{Index: 0, Reason: "value out of range"}}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		ans       answer
		want      Error
		temporary bool
	}{
		{"api error", answer{409, `{"error":{"code":"conflict","message":"MRN taken"}}`}, Error{409, "conflict", "MRN taken"}, false},
		{"unauthorized", answer{401, `{"error":{"code":"unauthorized","message":"bad token"}}`}, Error{401, "unauthorized", "bad token"}, false},
		{"unavailable", answer{503, `{"error":{"code":"unavailable","message":"shutting down"}}`}, Error{503, "unavailable", "shutting down"}, true},
		{"rate limited", answer{429, `{"error":{"code":"rate_limited","message":"slow down"}}`}, Error{429, "rate_limited", "slow down"}, true},
		{"proxy text", answer{502, "upstream gone\n"}, Error{502, "", "Bad Gateway: upstream gone"}, true},
		{"empty body", answer{500, ""}, Error{500, "", "Internal Server Error"}, true},
		{"other JSON", answer{400, `{"oops":1}`}, Error{400, "", `Bad Request: {"oops":1}`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]answer{"POST /api/v1/readings": tt.ans, "GET /api/v1/patients/x": tt.ans})
			c := f.client(t)
			for _, call := range []func() error{
				func() error { _, err := c.Patient(context.Background(), "x"); return err },
				func() error {
					_, err := c.PostReadings(context.Background(), "d", []ReadingIn{{Code: "8867-4", Unit: "/min"}})
					return err
				},
			} {
				err := call()
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error = %v, want *Error", err)
				}
				if *e != tt.want {
					t.Errorf("error = %+v, want %+v", *e, tt.want)
				}
				if e.Temporary() != tt.temporary {
					t.Errorf("Temporary() = %v, want %v", e.Temporary(), tt.temporary)
				}
			}
		})
	}
}

func TestReadings(t *testing.T) {
	f := newFake(t, map[string]answer{
		"GET /api/v1/patients/pat_1/readings": {200, `{"readings":[
			{"id":7,"patient_id":"pat_1","device_id":"dev_1","code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T10:00:00Z","received":"2026-11-20T10:00:01Z","key":"dev_1:17","flags":["artifact"],"source":"http"},
			{"id":8,"patient_id":"pat_1","device_id":"dev_2","code":"85354-9","time":"2026-11-20T10:01:00Z","received":"2026-11-20T10:01:01Z","key":"dev_2:1","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}
		],"next":"abc"}`},
		"GET /api/v1/patients/pat_1/latest": {200, `{"readings":[{"id":9,"code":"2708-6","value":97,"unit":"%","time":"2026-11-20T10:02:00Z","received":"2026-11-20T10:02:00Z","key":"k"}]}`},
	})
	c := f.client(t)
	ctx := context.Background()
	from := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 20, 12, 0, 0, 0, time.FixedZone("X", 3600))
	page, err := c.Readings(ctx, "pat_1", ReadingsQuery{Code: "8867-4", From: from, To: to, Limit: 50, Cursor: "xyz", Desc: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.last(t).RawQuery, "code=8867-4&cursor=xyz&from=2026-11-20T09%3A00%3A00Z&limit=50&order=desc&to=2026-11-20T11%3A00%3A00Z"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	want := &ReadingPage{Next: "abc", Readings: []ReadingOut{
		{ID: 7, PatientID: "pat_1", DeviceID: "dev_1", Code: "8867-4", Value: 72, Unit: "/min", Time: t0, Received: t0.Add(time.Second), Key: "dev_1:17", Flags: []string{"artifact"}, Source: "http"},
		{ID: 8, PatientID: "pat_1", DeviceID: "dev_2", Code: "85354-9", Time: t0.Add(time.Minute), Received: t0.Add(61 * time.Second), Key: "dev_2:1",
			Components: []Component{{"8480-6", 120, "mm[Hg]"}, {"8462-4", 80, "mm[Hg]"}}},
	}}
	if !reflect.DeepEqual(page, want) {
		t.Errorf("Readings =\n%+v\nwant\n%+v", page, want)
	}
	if _, err := c.Readings(ctx, "pat_1", ReadingsQuery{}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.last(t).RawQuery, "order=asc"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}

	latest, err := c.Latest(ctx, "pat_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 || latest[0].Code != "2708-6" || latest[0].Value != 97 {
		t.Errorf("Latest = %+v", latest)
	}
}

func TestBuckets(t *testing.T) {
	f := newFake(t, map[string]answer{
		"GET /api/v1/patients/pat_1/readings": {200, `{"code":"8867-4","width":"5m0s","buckets":[{"start":"2026-11-20T10:00:00Z","min":60,"max":80,"mean":70.5,"count":5}]}`},
	})
	c := f.client(t)
	from := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	bs, err := c.Buckets(context.Background(), "pat_1", BucketsQuery{Code: "8867-4", Width: 5 * time.Minute, From: from, To: from.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Bucket{{Start: from, Min: 60, Max: 80, Mean: 70.5, Count: 5}}
	if !reflect.DeepEqual(bs, want) {
		t.Errorf("Buckets = %+v, want %+v", bs, want)
	}
	if got, want := f.last(t).RawQuery, "bucket=5m&code=8867-4&from=2026-11-20T10%3A00%3A00Z&to=2026-11-20T11%3A00%3A00Z"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	if _, err := c.Buckets(context.Background(), "pat_1", BucketsQuery{Code: "8867-4"}); err == nil {
		t.Error("Buckets with no width: no error")
	}
}

func TestFormatWidth(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Minute, "5m"}, {time.Hour, "1h"}, {90 * time.Minute, "90m"}, {10 * time.Second, "10s"},
		{90 * time.Second, "90s"}, {24 * time.Hour, "24h"}, {1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		if got := formatWidth(tt.d); got != tt.want {
			t.Errorf("formatWidth(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if d, err := time.ParseDuration(formatWidth(tt.d)); err != nil || d != tt.d {
			t.Errorf("ParseDuration(formatWidth(%v)) = %v, %v", tt.d, d, err)
		}
	}
}

// TestKeepAlive checks that sequential requests, failed ones included, share
// one connection.
func TestKeepAlive(t *testing.T) {
	f := newFake(t, map[string]answer{
		"GET /api/v1/patients/p":  {200, `{"id":"p"}`},
		"POST /api/v1/readings":   {503, `{"error":{"code":"unavailable","message":"later"}}`},
		"GET /api/v1/patients/p2": {200, `{"id":"p2","name":"` + strings.Repeat("x", 100000) + `"}`},
	})
	c := f.client(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := c.Patient(ctx, "p"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Patient(ctx, "p2"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PostReadings(ctx, "d", []ReadingIn{{Code: "8867-4", Unit: "/min"}}); err == nil {
			t.Fatal("want an error")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns != 1 {
		t.Errorf("30 sequential requests opened %d connections, want 1", f.conns)
	}
}

func TestNetworkError(t *testing.T) {
	f := newFake(t, nil)
	c := f.client(t)
	f.srv.Close()
	_, err := c.Patient(context.Background(), "p")
	var e *Error
	if err == nil || errors.As(err, &e) {
		t.Errorf("error = %v, want a network error that is not an *Error", err)
	}
}

func TestBaseURLPrefix(t *testing.T) {
	f := newFake(t, map[string]answer{"GET /vigil/api/v1/patients/p": {200, `{"id":"p"}`}})
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	c, err := New(f.srv.URL+"/vigil/", WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Patient(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
}

func TestCAFile(t *testing.T) {
	f := newFake(t, map[string]answer{"GET /api/v1/patients/p": {200, `{"id":"p"}`}})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(f.srv.URL, WithCAFile(ca), WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Patient(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server's certificate is not trusted.
	bare, err := New(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Patient(context.Background(), "p"); err == nil {
		t.Error("a client without the CA trusted the server")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
		opts []Option
	}{
		{"relative", "localhost:8443", nil},
		{"no host", "https://", nil},
		{"scheme", "ftp://x", nil},
		{"query", "https://x/?a=b", nil},
		{"missing CA file", "https://x", []Option{WithCAFile(filepath.Join(dir, "none.pem"))}},
		{"CA file without PEM", "https://x", []Option{WithCAFile(notPEM)}},
		{"http client with CA", "https://x", []Option{WithHTTPClient(&http.Client{}), WithRootCAs(x509.NewCertPool())}},
	}
	for _, tt := range tests {
		if _, err := New(tt.url, tt.opts...); err == nil {
			t.Errorf("%s: New succeeded, want an error", tt.name)
		}
	}
	if _, err := New("https://x", WithHTTPClient(&http.Client{})); err != nil {
		t.Errorf("New with an http.Client: %v", err)
	}
}
