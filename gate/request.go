package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/vigil-health/vigil"
)

// DecodeJSON reads a small JSON request body into v, refusing unknown
// fields (EINVALID) and bodies over MaxBody (ETOOLARGE).
func (g *Gate) DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, g.MaxBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes", mbe.Limit)
		}
		if errors.Is(err, io.EOF) {
			return vigil.Errorf(vigil.EINVALID, "empty request body: JSON expected")
		}
		return vigil.Errorf(vigil.EINVALID, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// ParseLimit parses a limit query parameter: def if s is empty, at most
// max; EINVALID unless a whole number from 1.
func ParseLimit(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || fmt.Sprint(n) != s {
		return 0, vigil.Errorf(vigil.EINVALID, "limit must be a whole number from 1 to %d", max)
	}
	if n > max {
		n = max
	}
	return n, nil
}

// AllReadings returns every reading q selects, paging through the store
// (q.After and q.Limit are set here).
func (g *Gate) AllReadings(ctx context.Context, q vigil.ReadingQuery) ([]vigil.Reading, error) {
	q.Limit, q.After = vigil.MaxReadingLimit, nil
	var out []vigil.Reading
	for {
		page, err := g.Store.Readings(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Readings...)
		if page.Next == nil || len(page.Readings) == 0 {
			return out, nil
		}
		q.After = page.Next
	}
}

// Refuse keeps a refused request body whole in the quarantine, with the
// refusal as its reason and the request's principal as its sender, and
// returns the refusal; or the error keeping it, if that failed (nothing
// refused is lost silently).
func (g *Gate) Refuse(r *http.Request, source string, body []byte, truncated bool, refusal error) error {
	if err := g.Ingest.Quarantine(r.Context(), Principal(r.Context()), source, body, truncated, refusal); err != nil {
		return err
	}
	return refusal
}
