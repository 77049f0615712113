package vigil

import (
	"context"
	"encoding/json"
	"time"
)

// MappingTemplate is one version of a mapping template: how to turn a
// vendor's JSON messages into readings (package mapping compiles and runs
// it). Templates are named by admins; versions are never changed or removed
// once saved, so every quarantined item names the version that refused it.
type MappingTemplate struct {
	Name    string `json:"name"`    // lower-case letters, digits and hyphens; see ValidMappingName
	Version int    `json:"version"` // from 1, one more with every change
	// Spec is the template itself: the JSON of a mapping.Spec.
	Spec    json.RawMessage `json:"spec"`
	Note    string          `json:"note,omitempty"` // why it changed
	Author  string          `json:"author"`         // user id
	Created time.Time       `json:"created"`
}

// ValidMappingName reports whether s can name a mapping template: 1 to 63
// lower-case ASCII letters, digits and hyphens, starting with a letter or
// digit. Names appear in URL paths and MQTT topics, so they need no escaping.
func ValidMappingName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// QuarantineReplay records that a quarantine item was run again through a
// version of a mapping template, by whom, and what became of it. An item is
// replayed at most once per template version: a second replay of the same
// item through the same version finds this record and stores nothing.
type QuarantineReplay struct {
	ItemID          string    `json:"item_id"`
	Template        string    `json:"template"`
	TemplateVersion int       `json:"template_version"`
	Actor           string    `json:"actor"` // user id
	Replayed        time.Time `json:"replayed"`
	Accepted        int       `json:"accepted"` // readings the replay stored (or found stored already)
	Rejected        int       `json:"rejected"` // readings or records refused again, each quarantined anew
	// Reason is why the replay refused what it refused (the first reason),
	// "" when it refused nothing.
	Reason string `json:"reason,omitempty"`
}

// MappingStore keeps the versions of mapping templates and the replays of
// quarantined items through them.
type MappingStore interface {
	// SaveMapping stores m as a new version of its template and sets
	// m.Created. m.Version must be one more than the template's latest
	// version (1 for a new name): ECONFLICT otherwise, so that two editors
	// cannot overwrite each other unseen. EINVALID if the name is not
	// valid (ValidMappingName) or the spec is empty.
	SaveMapping(ctx context.Context, m *MappingTemplate) error
	// Mapping returns version v of a template, or its latest if v is 0;
	// ENOTFOUND if none.
	Mapping(ctx context.Context, name string, v int) (*MappingTemplate, error)
	// MappingVersions returns every version of a template, newest first;
	// empty if there is none.
	MappingVersions(ctx context.Context, name string) ([]*MappingTemplate, error)
	// LatestMappings returns the latest version of every template, by name.
	LatestMappings(ctx context.Context) ([]*MappingTemplate, error)

	// SaveQuarantineReplay stores r and sets r.Replayed. ECONFLICT if the
	// item was replayed through that template version already.
	SaveQuarantineReplay(ctx context.Context, r *QuarantineReplay) error
	// QuarantineReplays returns the replays of the given items, oldest
	// first within an item, by item id; items never replayed are absent.
	QuarantineReplays(ctx context.Context, itemIDs []string) (map[string][]QuarantineReplay, error)
}
