package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vigil-health/vigil"
)

// consoleShown is how many quarantine items the console lists at once.
const consoleShown = 100

// consolePage is the data of the quarantine console.
type consolePage struct {
	Filter    vigil.QuarantineFilter
	Version   string // the template_version filter as typed
	Items     []consoleItem
	Templates []*vigil.MappingTemplate // latest version of each, for the replay choice
	More      string                   // the URL of the next page, "" if none
	// ReplayIDs are the ids of the listed items a template refused, for
	// "replay all shown".
	ReplayIDs string
	// Available says the node runs vendor templates.
	Available bool
}

type consoleItem struct {
	vigil.QuarantineItem
	Text    string // the payload as text when it is JSON
	Replays []vigil.QuarantineReplay
}

// quarantineConsole serves GET /admin/quarantine: quarantined input
// filtered by reason, sender, source, code and template, each item with
// its replays; its buttons replay items through a template with the admin
// API (POST /api/v1/mappings/{name}/replay), dry run first if the admin
// wants.
func (s *Handler) quarantineConsole(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	pg := consolePage{Available: s.Mappings != nil, Version: q.Get("template_version")}
	pg.Filter = vigil.QuarantineFilter{Sender: q.Get("sender"), Source: q.Get("source"), Code: q.Get("code"),
		Reason: q.Get("reason"), Template: q.Get("template"), Before: q.Get("cursor"), Limit: consoleShown + 1}
	if pg.Version != "" {
		v, err := strconv.Atoi(pg.Version)
		if err != nil || v < 1 {
			return vigil.Errorf(vigil.EINVALID, "template version must be a whole number from 1")
		}
		pg.Filter.TemplateVersion = v
	}
	ctx := r.Context()
	items, err := s.Store.Quarantined(ctx, pg.Filter)
	if err != nil {
		return fmt.Errorf("quarantine console: %w", err)
	}
	if len(items) > consoleShown {
		items = items[:consoleShown]
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("cursor", items[len(items)-1].ID)
		pg.More = "/admin/quarantine?" + next.Encode()
	}
	replays := map[string][]vigil.QuarantineReplay{}
	if s.Mappings != nil {
		ids := make([]string, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		if replays, err = s.Mappings.Store.QuarantineReplays(ctx, ids); err != nil {
			return fmt.Errorf("quarantine console: %w", err)
		}
		if pg.Templates, err = s.Mappings.Store.LatestMappings(ctx); err != nil {
			return fmt.Errorf("quarantine console: %w", err)
		}
	}
	var replayable []string
	for _, it := range items {
		ci := consoleItem{QuarantineItem: it, Replays: replays[it.ID]}
		if json.Valid(it.Payload) && !it.Truncated {
			ci.Text = string(it.Payload)
		}
		if it.Template != "" && !it.Truncated {
			replayable = append(replayable, it.ID)
		}
		pg.Items = append(pg.Items, ci)
	}
	if b, err := json.Marshal(replayable); err == nil && len(replayable) > 0 {
		pg.ReplayIDs = string(b)
	}
	return s.render(w, r, http.StatusOK, "quarantine", pageData{Title: "Quarantine", Nav: "admin", Body: &pg})
}
