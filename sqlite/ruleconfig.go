package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

const ruleConfigColumns = "scope, version, config, note, author, created"

// SaveRuleConfig stores c as a new version of its scope and sets
// c.Created. ECONFLICT unless c.Version is one more than the scope's latest.
func (s *Store) SaveRuleConfig(ctx context.Context, c *vigil.RuleConfig) error {
	if c.Scope == "" {
		return fmt.Errorf("save rule configuration: %w", vigil.Errorf(vigil.EINVALID, "empty scope"))
	}
	var cfg any
	if len(c.Config) > 0 && string(c.Config) != "null" {
		cfg = string(c.Config)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var latest int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM rule_configs WHERE scope = ?", c.Scope).Scan(&latest); err != nil {
			return err
		}
		if c.Version != latest+1 {
			return vigil.Errorf(vigil.ECONFLICT, "rule configuration of %s is at version %d; version %d cannot follow it", c.Scope, latest, c.Version)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO rule_configs ("+ruleConfigColumns+") VALUES (?, ?, ?, ?, ?, ?)",
			c.Scope, c.Version, cfg, c.Note, c.Author, created.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("save rule configuration: %w", err)
	}
	c.Created = created
	return nil
}

// RuleConfig returns version v of a scope, or its latest if v is 0.
func (s *Store) RuleConfig(ctx context.Context, scope string, v int) (*vigil.RuleConfig, error) {
	q := "SELECT " + ruleConfigColumns + " FROM rule_configs WHERE scope = ? ORDER BY version DESC LIMIT 1"
	args := []any{scope}
	if v != 0 {
		q = "SELECT " + ruleConfigColumns + " FROM rule_configs WHERE scope = ? AND version = ?"
		args = append(args, v)
	}
	c, err := scanRuleConfig(s.r.QueryRowContext(ctx, q, args...))
	if err != nil {
		return nil, fmt.Errorf("get rule configuration: %w", notFound(err, "rule configuration"))
	}
	return c, nil
}

// RuleConfigVersions returns every version of a scope, newest first.
func (s *Store) RuleConfigVersions(ctx context.Context, scope string) ([]*vigil.RuleConfig, error) {
	cs, err := s.queryRuleConfigs(ctx, "SELECT "+ruleConfigColumns+" FROM rule_configs WHERE scope = ? ORDER BY version DESC", scope)
	if err != nil {
		return nil, fmt.Errorf("list rule configuration versions: %w", err)
	}
	return cs, nil
}

// LatestRuleConfigs returns the latest version of every scope, by scope.
func (s *Store) LatestRuleConfigs(ctx context.Context) ([]*vigil.RuleConfig, error) {
	cs, err := s.queryRuleConfigs(ctx, "SELECT "+ruleConfigColumns+" FROM rule_configs r WHERE version = "+
		"(SELECT MAX(version) FROM rule_configs WHERE scope = r.scope) ORDER BY scope")
	if err != nil {
		return nil, fmt.Errorf("list rule configurations: %w", err)
	}
	return cs, nil
}

func (s *Store) queryRuleConfigs(ctx context.Context, q string, args ...any) ([]*vigil.RuleConfig, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*vigil.RuleConfig
	for rows.Next() {
		c, err := scanRuleConfig(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func scanRuleConfig(sc scanner) (*vigil.RuleConfig, error) {
	var (
		c       vigil.RuleConfig
		cfg     sql.NullString
		created int64
	)
	if err := sc.Scan(&c.Scope, &c.Version, &cfg, &c.Note, &c.Author, &created); err != nil {
		return nil, err
	}
	if cfg.Valid {
		c.Config = json.RawMessage(cfg.String)
	}
	c.Created = time.UnixMicro(created).UTC()
	return &c, nil
}
