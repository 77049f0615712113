package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/rules"
)

// ruleConfigOut is a scope's rule configuration as the API shows it.
type ruleConfigOut struct {
	Scope string `json:"scope"`
	// Version is the scope's latest version; 0 if it never had one.
	Version int `json:"version"`
	// InheritedFrom is set when the scope has no configuration of its own:
	// the scope whose configuration is in force ("site", "team:…",
	// "default").
	InheritedFrom string       `json:"inherited_from,omitempty"`
	Config        rules.Config `json:"config"`
	Note          string       `json:"note,omitempty"`
	Author        string       `json:"author,omitempty"`
	Created       *time.Time   `json:"created,omitempty"`
}

// ruleScope returns the scope a rules route addresses, checking that a
// clinician addressing a team is one of its members (404 otherwise, like a
// patient they may not see).
func (s *Handler) ruleScope(r *http.Request) (string, error) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v1/patients/"):
		return vigil.RuleScopePatientPrefix + r.PathValue("id"), nil
	case strings.HasPrefix(r.URL.Path, "/api/v1/teams/"):
		id := r.PathValue("id")
		p := gate.Principal(r.Context())
		if p.Role == vigil.RoleAdmin {
			if _, err := s.Store.Team(r.Context(), id); err != nil {
				return "", err
			}
			return vigil.RuleScopeTeamPrefix + id, nil
		}
		teams, err := s.Store.UserTeams(r.Context(), p.UserID)
		if err != nil {
			return "", err
		}
		for _, t := range teams {
			if t.ID == id {
				return vigil.RuleScopeTeamPrefix + id, nil
			}
		}
		return "", vigil.Errorf(vigil.ENOTFOUND, "team %s not found", id)
	}
	return vigil.RuleScopeSite, nil
}

func (s *Handler) rulesAvailable() error {
	if s.RuleConfigs == nil {
		return vigil.Errorf(vigil.EUNAVAILABLE, "rule configuration is not available on this node")
	}
	return nil
}

// getRules answers GET …/rules[?version=N]: the configuration in force for
// the scope, or one saved version of it.
func (s *Handler) getRules(w http.ResponseWriter, r *http.Request) error {
	if err := s.rulesAvailable(); err != nil {
		return err
	}
	scope, err := s.ruleScope(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return vigil.Errorf(vigil.EINVALID, "version: %q is not a version number (1 or more)", v)
		}
		rc, err := s.Store.RuleConfig(ctx, scope, n)
		if err != nil {
			return err
		}
		out := ruleConfigOut{Scope: scope, Version: rc.Version, Note: rc.Note, Author: rc.Author, Created: &rc.Created}
		if rc.Config == nil {
			out.InheritedFrom = "parent"
			out.Config, _ = s.RuleConfigs.Effective(scope)
		} else {
			if err := json.Unmarshal(rc.Config, &out.Config); err != nil {
				return err
			}
		}
		gate.WriteJSON(w, http.StatusOK, out)
		return nil
	}
	out := ruleConfigOut{Scope: scope}
	cfg, from := s.RuleConfigs.Effective(scope)
	out.Config = cfg
	if from != scope {
		out.InheritedFrom = from
	}
	rc, err := s.Store.RuleConfig(ctx, scope, 0)
	switch {
	case err == nil:
		out.Version, out.Note, out.Author, out.Created = rc.Version, rc.Note, rc.Author, &rc.Created
	case vigil.ErrorCode(err) != vigil.ENOTFOUND:
		return err
	}
	gate.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ruleVersions answers GET …/rules/versions: every saved version, newest
// first.
func (s *Handler) ruleVersions(w http.ResponseWriter, r *http.Request) error {
	if err := s.rulesAvailable(); err != nil {
		return err
	}
	scope, err := s.ruleScope(r)
	if err != nil {
		return err
	}
	vs, err := s.Store.RuleConfigVersions(r.Context(), scope)
	if err != nil {
		return err
	}
	if vs == nil {
		vs = []*vigil.RuleConfig{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"scope": scope, "versions": vs})
	return nil
}

// putRules answers PUT …/rules {"config":{…},"note":"…"}: the next
// version of the scope, decoded over the configuration in force (so a
// partial configuration changes only what it names). If-Match: N refuses
// the change (409) unless N is the scope's latest version.
func (s *Handler) putRules(w http.ResponseWriter, r *http.Request) error {
	if err := s.rulesAvailable(); err != nil {
		return err
	}
	scope, err := s.ruleScope(r)
	if err != nil {
		return err
	}
	var in struct {
		Config json.RawMessage `json:"config"`
		Note   string          `json:"note"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if len(in.Config) == 0 || string(in.Config) == "null" {
		return vigil.Errorf(vigil.EINVALID, `"config" is required (to inherit the parent's rules again, DELETE the scope's rules)`)
	}
	if len(in.Note) > maxNote {
		return vigil.Errorf(vigil.EINVALID, "note longer than %d bytes", maxNote)
	}
	ifVersion, err := ifMatch(r)
	if err != nil {
		return err
	}
	rc, err := s.RuleConfigs.Save(r.Context(), scope, in.Config, ifVersion, gate.Principal(r.Context()).UserID, in.Note)
	if err != nil {
		return err
	}
	s.Logger.InfoContext(r.Context(), "rule configuration changed", "scope", scope, "version", rc.Version)
	return s.getRulesAfterChange(w, r, scope, rc)
}

// deleteRules answers DELETE …/rules: the scope inherits its parent's
// configuration again (a new version that says so).
func (s *Handler) deleteRules(w http.ResponseWriter, r *http.Request) error {
	if err := s.rulesAvailable(); err != nil {
		return err
	}
	scope, err := s.ruleScope(r)
	if err != nil {
		return err
	}
	ifVersion, err := ifMatch(r)
	if err != nil {
		return err
	}
	rc, err := s.RuleConfigs.Revert(r.Context(), scope, ifVersion, gate.Principal(r.Context()).UserID, r.URL.Query().Get("note"))
	if err != nil {
		return err
	}
	return s.getRulesAfterChange(w, r, scope, rc)
}

func (s *Handler) getRulesAfterChange(w http.ResponseWriter, r *http.Request, scope string, rc *vigil.RuleConfig) error {
	cfg, from := s.RuleConfigs.Effective(scope)
	out := ruleConfigOut{Scope: scope, Version: rc.Version, Config: cfg, Note: rc.Note, Author: rc.Author, Created: &rc.Created}
	if from != scope {
		out.InheritedFrom = from
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(rc.Version)))
	gate.WriteJSON(w, http.StatusOK, out)
	return nil
}

// ifMatch returns the version in an If-Match header (N or "N"; 0: the
// scope has none yet); -1 if there is no header.
func ifMatch(r *http.Request) (int, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(strings.Trim(h, `"`))
	if err != nil || n < 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "If-Match: %q is not a version number", h)
	}
	return n, nil
}
