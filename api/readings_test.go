package api

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func TestParseReadingsQuery(t *testing.T) {
	cur := encodeCursor(&vigil.Cursor{Time: time.Date(2026, 11, 20, 10, 0, 0, 123000, time.UTC), ID: 42})
	tests := []struct {
		name    string
		query   string
		check   func(t *testing.T, r readingsRequest)
		wantErr string
	}{
		{"defaults", "", func(t *testing.T, r readingsRequest) {
			if r.Query.Limit != 100 || r.Query.Desc || r.Query.After != nil || r.Bucket != nil || len(r.Query.Codes) != 0 {
				t.Errorf("got %+v", r)
			}
		}, ""},
		{"codes repeated and comma-separated", "code=8867-4,2708-6&code=9279-1", func(t *testing.T, r readingsRequest) {
			if strings.Join(r.Query.Codes, " ") != "8867-4 2708-6 9279-1" {
				t.Errorf("codes %v", r.Query.Codes)
			}
		}, ""},
		{"range and order", "from=2026-11-20T09:00:00Z&to=2026-11-20T11:00:00%2B01:00&order=desc&limit=5", func(t *testing.T, r readingsRequest) {
			if !r.Query.From.Equal(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)) || !r.Query.To.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) || !r.Query.Desc || r.Query.Limit != 5 {
				t.Errorf("got %+v", r.Query)
			}
		}, ""},
		{"empty range", "from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00%2B01:00", nil, "from must be before to"},
		{"limit capped", "limit=99999", func(t *testing.T, r readingsRequest) {
			if r.Query.Limit != vigil.MaxReadingLimit {
				t.Errorf("limit %d", r.Query.Limit)
			}
		}, ""},
		{"cursor round trip", "cursor=" + cur, func(t *testing.T, r readingsRequest) {
			if r.Query.After == nil || r.Query.After.ID != 42 || !r.Query.After.Time.Equal(time.Date(2026, 11, 20, 10, 0, 0, 123000, time.UTC)) {
				t.Errorf("cursor %+v", r.Query.After)
			}
		}, ""},
		{"bucket defaults to the last day", "code=2708-6&bucket=5m", func(t *testing.T, r readingsRequest) {
			b := r.Bucket
			if b == nil || b.Width != 5*time.Minute || !b.To.Equal(testNow) || !b.From.Equal(testNow.Add(-24*time.Hour)) || b.Code != "2708-6" {
				t.Errorf("bucket %+v", b)
			}
		}, ""},
		{"bad limit", "limit=0", nil, "limit must be a whole number"},
		{"non-numeric limit", "limit=ten", nil, "limit must be a whole number"},
		{"bad from", "from=yesterday", nil, "from must be an RFC 3339 time"},
		{"bad order", "order=sideways", nil, `order must be asc or desc`},
		{"forged cursor", "cursor=bm90LWEtY3Vyc29y", nil, "cursor is not one this server issued"},
		{"bucket without code", "bucket=5m", nil, "bucket needs exactly one code"},
		{"bucket with two codes", "bucket=5m&code=a,b", nil, "bucket needs exactly one code"},
		{"bucket too fine", "bucket=1ms&code=a", nil, "at least 1s"},
		{"too many buckets", "bucket=1s&code=a&from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z", nil, "at most 10000"},
		{"too many codes", "code=" + strings.Repeat("x,", 51), nil, "at most 50 codes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseReadingsQuery("pat_1", v, testNow)
			if tt.wantErr != "" || tt.check == nil {
				if err == nil || vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want EINVALID containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Query.SubjectID != "pat_1" {
				t.Errorf("subject %q", got.Query.SubjectID)
			}
			tt.check(t, got)
		})
	}
}

// FuzzParseReadingsQuery: arbitrary query strings never panic, errors are
// always EINVALID, and accepted queries are within limits.
func FuzzParseReadingsQuery(f *testing.F) {
	for _, s := range []string{
		"", "code=8867-4&from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00Z&limit=10&order=desc",
		"code=2708-6&bucket=5m", "cursor=MTc2MzYzMjgwMDAwMDAwMC40Mg", "bucket=-5m&code=x", "limit=-1",
		"from=9999-12-31T23:59:59Z&bucket=1h&code=x", "cursor=LTEuLTE",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := parseReadingsQuery("pat_1", v, testNow)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if r.Query.Limit < 1 || r.Query.Limit > vigil.MaxReadingLimit {
			t.Fatalf("limit %d out of range", r.Query.Limit)
		}
		if b := r.Bucket; b != nil {
			if b.Width < time.Second || !b.From.Before(b.To) || b.To.Sub(b.From)/b.Width > maxBuckets {
				t.Fatalf("bucket query out of limits: %+v", b)
			}
		}
	})
}
