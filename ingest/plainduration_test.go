package ingest

import (
	"testing"
	"time"
)

func TestPlainDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "less than a second"},
		{999 * time.Millisecond, "less than a second"},
		{time.Second, "1 second"},
		{5 * time.Minute, "5 minutes"},
		{90 * time.Second, "1 minute 30 seconds"},
		{time.Hour + 59*time.Second, "1 hour"},
		{3*24*time.Hour + 4*time.Hour + 59*time.Minute, "3 days 4 hours"},
		{24*time.Hour + 5*time.Minute, "1 day"},
		{-2 * time.Hour, "2 hours"},
	} {
		if got := PlainDuration(tt.d); got != tt.want {
			t.Errorf("PlainDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
