package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
)

func TestParseThreadQuery(t *testing.T) {
	for _, c := range []struct {
		q         string
		after     int64
		limit     int
		wantError bool
	}{
		{"", 0, maxThreadMessages, false},
		{"after=3&limit=10", 3, 10, false},
		{"limit=100000", 0, maxThreadMessages, false},
		{"after=-1", 0, 0, true},
		{"after=x", 0, 0, true},
		{"after=99999999999999999999", 0, 0, true},
		{"limit=0", 0, 0, true},
		{"limit=1.5", 0, 0, true},
	} {
		q, _ := url.ParseQuery(c.q)
		after, limit, err := parseThreadQuery(q)
		if (err != nil) != c.wantError || (err == nil && (after != c.after || limit != c.limit)) {
			t.Errorf("parseThreadQuery(%q) = %d, %d, %v; want %d, %d, error %v", c.q, after, limit, err, c.after, c.limit, c.wantError)
		}
		if err != nil && vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("parseThreadQuery(%q): %v; want EINVALID", c.q, err)
		}
	}
}

// FuzzMessageInput feeds the message routes' parsers what a client may
// send — a JSON body as the handlers decode it, and a thread's query — and
// checks that they never panic and that what they accept is within the
// bounds: valid UTF-8, not blank, at most MaxMessageBytes (topic:
// MaxTopicBytes), a non-negative reading id, after ≥ 0, 1 ≤ limit ≤ the
// most.
func FuzzMessageInput(f *testing.F) {
	f.Add([]byte(`{"topic":"Dizzy","body":"I feel dizzy","alert_id":"alr_1","reading_id":3}`), "after=1&limit=5")
	f.Add([]byte(`{"body":"\u0000"}`), "after=-1")
	f.Add([]byte(`{"body":" ","reading_id":-4}`), "limit=0")
	f.Add([]byte(`{"body":"\xff\xfe"}`), "after=9223372036854775807")
	f.Add([]byte(`[]`), "%zz")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		if q, err := url.ParseQuery(query); err == nil {
			if after, limit, err := parseThreadQuery(q); err == nil && (after < 0 || limit < 1 || limit > maxThreadMessages) {
				t.Fatalf("parseThreadQuery(%q) accepted after %d, limit %d", query, after, limit)
			}
		}
		var in messageIn
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&in) != nil {
			return
		}
		m := &vigil.Message{SubjectID: "pat_1", AuthorID: "usr_1", Body: in.Body, AlertID: in.AlertID, ReadingID: in.ReadingID}
		if vigil.CheckMessage(m) == nil && (!utf8.ValidString(m.Body) || len(m.Body) > vigil.MaxMessageBytes || m.ReadingID < 0 || len(bytes.TrimSpace([]byte(m.Body))) == 0) {
			t.Fatalf("CheckMessage accepted %+v", m)
		}
		if vigil.CheckTopic(in.Topic) == nil && (!utf8.ValidString(in.Topic) || len(in.Topic) > vigil.MaxTopicBytes || len(bytes.TrimSpace([]byte(in.Topic))) == 0) {
			t.Fatalf("CheckTopic accepted %q", in.Topic)
		}
	})
}
