package vigil

import (
	"context"
	"encoding/json"
	"time"
)

// Rule configuration scopes. A patient's rules are those of the patient's
// own scope if it has a configuration, else of one of the patient's care
// teams (the first by team id that has one), else of the site, else the
// built-in defaults (package rules).
const (
	RuleScopeSite = "site"
	// RuleScopeTeamPrefix and RuleScopePatientPrefix are followed by a team
	// or patient id.
	RuleScopeTeamPrefix    = "team:"
	RuleScopePatientPrefix = "patient:"
)

// RuleConfig is one version of the rule configuration of a scope. Versions
// are never changed or removed once saved.
type RuleConfig struct {
	Scope   string `json:"scope"`
	Version int    `json:"version"` // from 1, one more with every change of the scope
	// Config is the JSON of a rules.Config; null when this version returned
	// the scope to inheriting its parent's configuration.
	Config  json.RawMessage `json:"config"`
	Note    string          `json:"note,omitempty"` // why it changed
	Author  string          `json:"author"`         // user id
	Created time.Time       `json:"created"`
}

// RuleConfigStore keeps the versions of rule configurations.
type RuleConfigStore interface {
	// SaveRuleConfig stores c as a new version of its scope and sets
	// c.Created. c.Version must be one more than the scope's latest version
	// (1 for a scope without one): ECONFLICT otherwise, so that two editors
	// cannot overwrite each other unseen.
	SaveRuleConfig(ctx context.Context, c *RuleConfig) error
	// RuleConfig returns version v of a scope, or its latest if v is 0;
	// ENOTFOUND if none.
	RuleConfig(ctx context.Context, scope string, v int) (*RuleConfig, error)
	// RuleConfigVersions returns every version of a scope, newest first.
	RuleConfigVersions(ctx context.Context, scope string) ([]*RuleConfig, error)
	// LatestRuleConfigs returns the latest version of every scope, ordered
	// by scope.
	LatestRuleConfigs(ctx context.Context) ([]*RuleConfig, error)
}
