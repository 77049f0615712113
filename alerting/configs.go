package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// DefaultConfigRefresh is how often Configs re-reads care-team enrolments.
const DefaultConfigRefresh = 30 * time.Second

// ConfigStore is what Configs reads and writes: the versions of rule
// configurations, and which patients each team has enrolled.
type ConfigStore interface {
	vigil.RuleConfigStore
	TeamPatients(ctx context.Context, teamID string) ([]string, error)
}

// Configs resolves each patient's rule configuration from the versions
// saved in a store (see vigil.RuleConfig for the order of scopes) and saves
// new versions. For returns from memory, so the engine may call it for
// every batch; Load fills that memory, Save refreshes it at once, and Run
// re-reads it every Refresh so that enrolment changes take effect.
//
// Safe for concurrent use.
type Configs struct {
	Store   ConfigStore
	Refresh time.Duration // 0: DefaultConfigRefresh
	Logger  *slog.Logger  // nil: discard

	save sync.Mutex // serialises Save, so versions follow one another

	mu       sync.RWMutex
	site     *rules.Config
	teams    map[string]*rules.Config // team id → its configuration
	patients map[string]*rules.Config // subject id → own or team configuration
}

// Load reads every scope's latest configuration and the enrolments of the
// teams that have one.
func (c *Configs) Load(ctx context.Context) error {
	latest, err := c.Store.LatestRuleConfigs(ctx)
	if err != nil {
		return fmt.Errorf("load rule configurations: %w", err)
	}
	var site *rules.Config
	teams := map[string]*rules.Config{}
	own := map[string]*rules.Config{}
	for _, rc := range latest {
		if rc.Config == nil {
			continue // back to inheriting
		}
		cfg, err := decodeConfig(rc)
		if err != nil {
			// A saved version was valid when saved; a newer Vigil may
			// reject it. Say so and fall back to the parent's rules.
			c.logger().Error("saved rule configuration is not valid; its scope inherits its parent's", "scope", rc.Scope, "version", rc.Version, "err", err)
			continue
		}
		switch {
		case rc.Scope == vigil.RuleScopeSite:
			site = cfg
		case strings.HasPrefix(rc.Scope, vigil.RuleScopeTeamPrefix):
			teams[strings.TrimPrefix(rc.Scope, vigil.RuleScopeTeamPrefix)] = cfg
		case strings.HasPrefix(rc.Scope, vigil.RuleScopePatientPrefix):
			own[strings.TrimPrefix(rc.Scope, vigil.RuleScopePatientPrefix)] = cfg
		}
	}
	patients := map[string]*rules.Config{}
	// Teams in id order (LatestRuleConfigs is ordered by scope): the first
	// team with a configuration wins for a patient in several.
	for _, rc := range latest {
		id, ok := strings.CutPrefix(rc.Scope, vigil.RuleScopeTeamPrefix)
		if !ok || teams[id] == nil {
			continue
		}
		subjects, err := c.Store.TeamPatients(ctx, id)
		if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return fmt.Errorf("load rule configurations: %w", err)
		}
		for _, s := range subjects {
			if patients[s] == nil {
				patients[s] = teams[id]
			}
		}
	}
	for s, cfg := range own {
		patients[s] = cfg
	}
	c.mu.Lock()
	c.site, c.teams, c.patients = site, teams, patients
	c.mu.Unlock()
	return nil
}

// Run reloads every Refresh until ctx ends; it returns ctx's error.
func (c *Configs) Run(ctx context.Context) error {
	every := c.Refresh
	if every <= 0 {
		every = DefaultConfigRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := c.Load(ctx); err != nil && ctx.Err() == nil {
				c.logger().Warn("reload rule configurations; keeping the previous ones", "err", err)
			}
		}
	}
}

// For returns a patient's rule configuration; for Engine.Config.
func (c *Configs) For(subjectID string) rules.Config {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cfg := c.patients[subjectID]; cfg != nil {
		return *cfg
	}
	if c.site != nil {
		return *c.site
	}
	return rules.DefaultConfig()
}

// Effective returns the configuration in force for a scope: its own, or
// the one it inherits, and the scope that one belongs to ("default" for
// the built-in defaults). A team inherits the site's; a patient its own
// team's or the site's.
func (c *Configs) Effective(scope string) (rules.Config, string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if id, ok := strings.CutPrefix(scope, vigil.RuleScopePatientPrefix); ok {
		if cfg := c.patients[id]; cfg != nil {
			return *cfg, scopeOf(cfg)
		}
	}
	if id, ok := strings.CutPrefix(scope, vigil.RuleScopeTeamPrefix); ok {
		if cfg := c.teams[id]; cfg != nil {
			return *cfg, scopeOf(cfg)
		}
	}
	if c.site != nil {
		return *c.site, vigil.RuleScopeSite
	}
	return rules.DefaultConfig(), "default"
}

// Save stores a new version of scope's configuration: body (a JSON
// rules.Config, complete or partial) decoded over the configuration now in
// force for the scope, validated, and versioned: the configuration's
// version is the scope's next, and each threshold or trend rule keeps its
// version if unchanged and gets the next one if changed or new. ifVersion,
// if 0 or more, must be the scope's latest version, 0 if it has none
// (ECONFLICT otherwise); -1 does not check.
// EINVALID with every problem if the result is not valid.
func (c *Configs) Save(ctx context.Context, scope string, body []byte, ifVersion int, author, note string) (*vigil.RuleConfig, error) {
	c.save.Lock()
	defer c.save.Unlock()
	latest, err := c.latestVersion(ctx, scope, ifVersion)
	if err != nil {
		return nil, err
	}
	base, _ := c.Effective(scope)
	next := base
	// A list in body replaces the list: JSON decoding into a slice would
	// decode into its old elements and keep fields the body leaves out.
	var present map[string]any
	if err := json.Unmarshal(body, &present); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "rule configuration: %v", err)
	}
	clearLists(reflect.ValueOf(&next).Elem(), present)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "rule configuration: %v", err)
	}
	next.Version = latest + 1
	for i := range next.Thresholds {
		r := &next.Thresholds[i]
		r.Version = 1
		for _, old := range base.Thresholds {
			if old.ID == r.ID {
				o, n := old, *r
				o.Version, n.Version = 0, 0
				r.Version = old.Version
				if !sameJSON(o, n) {
					r.Version++
				}
			}
		}
	}
	for i := range next.Trends {
		r := &next.Trends[i]
		r.Version = 1
		for _, old := range base.Trends {
			if old.ID == r.ID {
				o, n := old, *r
				o.Version, n.Version = 0, 0
				r.Version = old.Version
				if !sameJSON(o, n) {
					r.Version++
				}
			}
		}
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("encode rule configuration: %w", err)
	}
	rc := &vigil.RuleConfig{Scope: scope, Version: latest + 1, Config: b, Author: author, Note: note}
	if err := c.Store.SaveRuleConfig(ctx, rc); err != nil {
		return nil, err
	}
	if err := c.Load(ctx); err != nil {
		c.logger().Warn("reload rule configurations after a change; it takes effect at the next reload", "err", err)
	}
	return rc, nil
}

// Revert stores a new version of scope that inherits its parent's
// configuration again; ECONFLICT if the scope has no configuration of its
// own to revert.
func (c *Configs) Revert(ctx context.Context, scope string, ifVersion int, author, note string) (*vigil.RuleConfig, error) {
	c.save.Lock()
	defer c.save.Unlock()
	latest, err := c.latestVersion(ctx, scope, ifVersion)
	if err != nil {
		return nil, err
	}
	if cur, err := c.Store.RuleConfig(ctx, scope, 0); err != nil || cur.Config == nil {
		return nil, vigil.Errorf(vigil.ECONFLICT, "%s has no rule configuration of its own: it inherits already", scope)
	}
	rc := &vigil.RuleConfig{Scope: scope, Version: latest + 1, Author: author, Note: note}
	if err := c.Store.SaveRuleConfig(ctx, rc); err != nil {
		return nil, err
	}
	if err := c.Load(ctx); err != nil {
		c.logger().Warn("reload rule configurations after a change; it takes effect at the next reload", "err", err)
	}
	return rc, nil
}

// latestVersion returns scope's latest version (0 if none), checking
// ifVersion against it.
func (c *Configs) latestVersion(ctx context.Context, scope string, ifVersion int) (int, error) {
	latest := 0
	cur, err := c.Store.RuleConfig(ctx, scope, 0)
	switch {
	case err == nil:
		latest = cur.Version
	case vigil.ErrorCode(err) != vigil.ENOTFOUND:
		return 0, err
	}
	if ifVersion >= 0 && ifVersion != latest {
		return 0, vigil.Errorf(vigil.ECONFLICT, "the rule configuration of %s is at version %d, not %d: reload and apply the change again", scope, latest, ifVersion)
	}
	return latest, nil
}

func (c *Configs) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// decodeConfig decodes a saved version and names it in Set.
func decodeConfig(rc *vigil.RuleConfig) (*rules.Config, error) {
	// Saved versions are complete (Save writes the whole configuration);
	// decoding over defaults would merge list elements into theirs.
	var cfg rules.Config
	if err := json.Unmarshal(rc.Config, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Set = fmt.Sprintf("%s v%d", rc.Scope, rc.Version)
	return &cfg, nil
}

// scopeOf returns the scope of a resolved configuration, from its Set.
func scopeOf(cfg *rules.Config) string {
	s, _, _ := strings.Cut(cfg.Set, " ")
	return s
}

// clearLists sets to nil every slice field of the struct v whose JSON
// name is a key of m, recursing into struct fields whose value in m is an
// object.
func clearLists(v reflect.Value, m map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		val, ok := m[name]
		if !ok {
			continue
		}
		switch fv := v.Field(i); fv.Kind() {
		case reflect.Slice:
			fv.Set(reflect.Zero(fv.Type()))
		case reflect.Struct:
			if sub, ok := val.(map[string]any); ok {
				clearLists(fv, sub)
			}
		}
	}
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
