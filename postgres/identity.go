package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

const patientColumns = "id, name, birth_date, mrn, created"

// plainColumns reads a patient row and whether it is sealed.
const plainColumns = patientColumns + ", identity IS NOT NULL"

// CreatePatient stores p in plaintext, setting p.ID (if empty) and
// p.Created. ECONFLICT if the MRN or id is taken, or the id was erased. A
// node stores patients sealed, through package keys (CreateSealedPatient).
func (s *Store) CreatePatient(ctx context.Context, p *vigil.Patient) error {
	id := p.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixPatient)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := notErased(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO patients ("+patientColumns+") VALUES ($1, $2, $3, $4, $5)",
			id, p.Name, p.BirthDate, p.MRN, created)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create patient: %w", err)
	}
	p.ID, p.Created = id, created
	return nil
}

// Patient returns one patient; ENOTFOUND if none, EINTERNAL if its
// identity is sealed (read it through package keys).
func (s *Store) Patient(ctx context.Context, id string) (*vigil.Patient, error) {
	p, err := scanPatient(s.pool.QueryRow(ctx, "SELECT "+plainColumns+" FROM patients WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get patient: %w", notFound(err, "patient"))
	}
	return p, nil
}

// Patients returns patients matching f ordered by id; EINTERNAL if one of
// them is sealed (read them through package keys).
func (s *Store) Patients(ctx context.Context, f vigil.PatientFilter) ([]*vigil.Patient, error) {
	var a args
	var where []string
	if len(f.IDs) > 0 {
		where = append(where, "id = ANY("+a.add(f.IDs)+")")
	}
	if f.MRN != "" {
		where = append(where, "mrn = "+a.add(f.MRN))
	}
	if f.After != "" {
		where = append(where, "id > "+a.add(f.After))
	}
	ps, err := queryAll(ctx, s.pool, scanPatient, "SELECT "+plainColumns+" FROM patients"+whereClause(where)+" ORDER BY id"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list patients: %w", err)
	}
	return ps, nil
}

// errSealed is returned by the plaintext PatientStore for a sealed row.
var errSealed = &vigil.Error{Code: vigil.EINTERNAL, Message: "patient identity is sealed: read it through package keys"}

// scanPatient scans plainColumns; errSealed for a sealed row.
func scanPatient(sc pgx.Row) (*vigil.Patient, error) {
	var p vigil.Patient
	var sealed bool
	if err := sc.Scan(&p.ID, &p.Name, &p.BirthDate, &p.MRN, &p.Created, &sealed); err != nil {
		return nil, err
	}
	if sealed {
		return nil, errSealed
	}
	return &p, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db querier, scan func(pgx.Row) (T, error), q string, a ...any) ([]T, error) {
	rows, err := db.Query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

const deviceColumns = "id, kind, model, serial, subject_id, token_hash, created, revoked"

// CreateDevice stores d, setting d.ID (if empty) and d.Created.
// ECONFLICT if the token hash is taken.
func (s *Store) CreateDevice(ctx context.Context, d *vigil.Device) error {
	id := d.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixDevice)
	}
	created := s.timestamp()
	_, err := s.pool.Exec(ctx, "INSERT INTO devices ("+deviceColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		id, d.Kind, d.Model, d.Serial, d.SubjectID, hashArg(d.TokenHash), created, timePtrArg(d.Revoked))
	if err != nil {
		return fmt.Errorf("create device: %w", constraint(err))
	}
	d.ID, d.Created = id, created
	return nil
}

// Device returns one device; ENOTFOUND if none.
func (s *Store) Device(ctx context.Context, id string) (*vigil.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, "SELECT "+deviceColumns+" FROM devices WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get device: %w", notFound(err, "device"))
	}
	return d, nil
}

// DeviceByTokenHash returns the device whose token hashes to h; ENOTFOUND
// if none (or h is empty).
func (s *Store) DeviceByTokenHash(ctx context.Context, h []byte) (*vigil.Device, error) {
	if len(h) == 0 {
		return nil, fmt.Errorf("get device by token: %w", vigil.Errorf(vigil.ENOTFOUND, "device not found"))
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, "SELECT "+deviceColumns+" FROM devices WHERE token_hash = $1", h))
	if err != nil {
		return nil, fmt.Errorf("get device by token: %w", notFound(err, "device"))
	}
	return d, nil
}

// Devices returns devices matching f ordered by id.
func (s *Store) Devices(ctx context.Context, f vigil.DeviceFilter) ([]*vigil.Device, error) {
	var a args
	var where []string
	if f.SubjectID != "" {
		where = append(where, "subject_id = "+a.add(f.SubjectID))
	}
	ds, err := queryAll(ctx, s.pool, scanDevice, "SELECT "+deviceColumns+" FROM devices"+whereClause(where)+" ORDER BY id"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// UpdateDevice applies u and returns the device as it now is; ENOTFOUND if
// none, ECONFLICT if the new token hash is another device's. A revoked
// device stays revoked at its first revocation time.
func (s *Store) UpdateDevice(ctx context.Context, id string, u vigil.DeviceUpdate) (*vigil.Device, error) {
	var d *vigil.Device
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = scanDevice(tx.QueryRow(ctx, "SELECT "+deviceColumns+" FROM devices WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return notFound(err, "device")
		}
		if u.SubjectID != nil {
			d.SubjectID = *u.SubjectID
		}
		if u.TokenHash != nil {
			d.TokenHash = u.TokenHash
		}
		if u.Revoked != nil && d.Revoked == nil {
			t := u.Revoked.UTC().Truncate(time.Microsecond)
			d.Revoked = &t
		}
		_, err = tx.Exec(ctx, "UPDATE devices SET subject_id = $1, token_hash = $2, revoked = $3 WHERE id = $4",
			d.SubjectID, hashArg(d.TokenHash), timePtrArg(d.Revoked), id)
		return constraint(err)
	})
	if err != nil {
		return nil, fmt.Errorf("update device: %w", err)
	}
	return d, nil
}

func scanDevice(sc pgx.Row) (*vigil.Device, error) {
	var d vigil.Device
	if err := sc.Scan(&d.ID, &d.Kind, &d.Model, &d.Serial, &d.SubjectID, &d.TokenHash, &d.Created, &d.Revoked); err != nil {
		return nil, err
	}
	return &d, nil
}

// hashArg stores an empty hash as NULL, so that devices without a token
// do not clash.
func hashArg(h []byte) any {
	if len(h) == 0 {
		return nil
	}
	return h
}

// SaveDeviceStatuses stores, in one statement, the last known status of
// each device in sts, replacing what was stored.
func (s *Store) SaveDeviceStatuses(ctx context.Context, sts map[string][]byte) error {
	if len(sts) == 0 {
		return nil
	}
	ids := make([]string, 0, len(sts))
	docs := make([]string, 0, len(sts))
	for id, st := range sts {
		ids = append(ids, id)
		docs = append(docs, string(st))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO device_status (device_id, status, updated)
		SELECT id, st, $3 FROM unnest($1::text[], $2::text[]) AS u (id, st) ORDER BY id
		ON CONFLICT (device_id) DO UPDATE SET status = excluded.status, updated = excluded.updated`, ids, docs, s.timestamp())
	if err != nil {
		return fmt.Errorf("save device statuses: %w", err)
	}
	return nil
}

// DeviceStatuses returns every stored device status by device id.
func (s *Store) DeviceStatuses(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, "SELECT device_id, status FROM device_status")
	if err != nil {
		return nil, fmt.Errorf("list device statuses: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, fmt.Errorf("list device statuses: %w", err)
		}
		out[id] = []byte(st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device statuses: %w", err)
	}
	return out, nil
}

const (
	userColumns  = "id, username, role, subject_id, password_hash, created, disabled, display_name"
	tokenColumns = "id, user_id, kind, name, scopes, hash, created, expires, last_used, revoked"
)

// CreateUser stores u, setting u.ID (if empty) and u.Created. ECONFLICT if
// the username is taken.
func (s *Store) CreateUser(ctx context.Context, u *vigil.User) error {
	id := u.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixUser)
	}
	created := s.timestamp()
	if _, err := s.pool.Exec(ctx, insertUser, id, u.Username, string(u.Role), u.SubjectID, u.PasswordHash, created, u.Disabled, u.DisplayName); err != nil {
		return fmt.Errorf("create user: %w", constraint(err))
	}
	u.ID, u.Created = id, created
	return nil
}

const insertUser = "INSERT INTO users (" + userColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"

// User returns one user; ENOTFOUND if none.
func (s *Store) User(ctx context.Context, id string) (*vigil.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get user: %w", notFound(err, "user"))
	}
	return u, nil
}

// UserByUsername returns one user; ENOTFOUND if none.
func (s *Store) UserByUsername(ctx context.Context, username string) (*vigil.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE username = $1", username))
	if err != nil {
		return nil, fmt.Errorf("get user by username: %w", notFound(err, "user"))
	}
	return u, nil
}

// Users returns every user ordered by username.
func (s *Store) Users(ctx context.Context) ([]*vigil.User, error) {
	us, err := queryAll(ctx, s.pool, scanUser, "SELECT "+userColumns+" FROM users ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser applies u and returns the user as it now is, revoking tokens
// in the same transaction as vigil.UserUpdate says; ENOTFOUND if none,
// EINVALID for an unknown role.
func (s *Store) UpdateUser(ctx context.Context, id string, u vigil.UserUpdate) (*vigil.User, error) {
	if u.Role != nil && !u.Role.Valid() {
		return nil, fmt.Errorf("update user: %w", vigil.Errorf(vigil.EINVALID, "unknown role %q", *u.Role))
	}
	var user *vigil.User
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		user, err = scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return notFound(err, "user")
		}
		if u.Role != nil {
			user.Role = *u.Role
		}
		if u.DisplayName != nil {
			user.DisplayName = *u.DisplayName
		}
		if u.SubjectID != nil {
			user.SubjectID = *u.SubjectID
		}
		if u.PasswordHash != nil {
			user.PasswordHash = *u.PasswordHash
		}
		if u.Disabled != nil {
			user.Disabled = *u.Disabled
		}
		if _, err := tx.Exec(ctx,
			"UPDATE users SET role = $1, subject_id = $2, password_hash = $3, disabled = $4, display_name = $5 WHERE id = $6",
			string(user.Role), user.SubjectID, user.PasswordHash, user.Disabled, user.DisplayName, id); err != nil {
			return err
		}
		now := s.timestamp()
		if u.Disabled != nil && *u.Disabled {
			if _, err := tx.Exec(ctx, "UPDATE tokens SET revoked = $1 WHERE user_id = $2 AND revoked IS NULL", now, id); err != nil {
				return fmt.Errorf("revoke tokens: %w", err)
			}
		}
		if u.PasswordHash != nil {
			if _, err := tx.Exec(ctx,
				"UPDATE tokens SET revoked = $1 WHERE user_id = $2 AND kind = $3 AND id <> $4 AND revoked IS NULL",
				now, id, string(vigil.TokenSession), u.KeepToken); err != nil {
				return fmt.Errorf("revoke sessions: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return user, nil
}

func scanUser(sc pgx.Row) (*vigil.User, error) {
	var u vigil.User
	var role string
	if err := sc.Scan(&u.ID, &u.Username, &role, &u.SubjectID, &u.PasswordHash, &u.Created, &u.Disabled, &u.DisplayName); err != nil {
		return nil, err
	}
	u.Role = vigil.Role(role)
	return &u, nil
}

// CreateToken stores t, setting t.ID (if empty) and t.Created. EINVALID
// without a hash or for an unknown user.
func (s *Store) CreateToken(ctx context.Context, t *vigil.Token) error {
	id := t.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixToken)
	}
	if len(t.Hash) == 0 {
		return fmt.Errorf("create token: %w", vigil.Errorf(vigil.EINVALID, "token without hash"))
	}
	var scopes *string
	if t.Scopes != nil {
		b, err := json.Marshal(t.Scopes)
		if err != nil {
			return fmt.Errorf("create token: encode scopes: %w", err)
		}
		sc := string(b)
		scopes = &sc
	}
	created := s.timestamp()
	_, err := s.pool.Exec(ctx, "INSERT INTO tokens ("+tokenColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		id, t.UserID, string(t.Kind), t.Name, scopes, t.Hash, created, timeArg(t.Expires), timePtrArg(t.LastUsed), timePtrArg(t.Revoked))
	if err != nil {
		return fmt.Errorf("create token: %w", constraint(err))
	}
	t.ID, t.Created = id, created
	return nil
}

// TokenByHash returns the token whose secret hashes to h; ENOTFOUND if none.
func (s *Store) TokenByHash(ctx context.Context, h []byte) (*vigil.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE hash = $1", h))
	if err != nil {
		return nil, fmt.Errorf("get token by hash: %w", notFound(err, "token"))
	}
	return t, nil
}

// TouchToken records that a token was used at time at (never moving the
// last use back); ENOTFOUND if none.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	if err := execOne(ctx, s.pool, "token", "UPDATE tokens SET last_used = greatest(coalesce(last_used, $1), $1) WHERE id = $2", at, id); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// RevokeToken revokes a token at time at (a revoked token keeps its first
// revocation time); ENOTFOUND if none.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if err := execOne(ctx, s.pool, "token", "UPDATE tokens SET revoked = coalesce(revoked, $1) WHERE id = $2", at, id); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// Token returns one token; ENOTFOUND if none.
func (s *Store) Token(ctx context.Context, id string) (*vigil.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get token: %w", notFound(err, "token"))
	}
	return t, nil
}

// Tokens returns the tokens of a user ("" for every user), newest first.
func (s *Store) Tokens(ctx context.Context, userID string) ([]*vigil.Token, error) {
	var a args
	q := "SELECT " + tokenColumns + " FROM tokens"
	if userID != "" {
		q += " WHERE user_id = " + a.add(userID)
	}
	ts, err := queryAll(ctx, s.pool, scanToken, q+" ORDER BY created DESC, id DESC", a...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

func scanToken(sc pgx.Row) (*vigil.Token, error) {
	var t vigil.Token
	var kind string
	var scopes *string
	var expires *time.Time
	if err := sc.Scan(&t.ID, &t.UserID, &kind, &t.Name, &scopes, &t.Hash, &t.Created, &expires, &t.LastUsed, &t.Revoked); err != nil {
		return nil, err
	}
	t.Kind = vigil.TokenKind(kind)
	if scopes != nil {
		if err := json.Unmarshal([]byte(*scopes), &t.Scopes); err != nil {
			return nil, fmt.Errorf("decode scopes of token %s: %w", t.ID, err)
		}
	}
	t.Expires = zeroIfNil(expires)
	return &t, nil
}

// TOTP returns the user's TOTP secret; ENOTFOUND if the user has none.
func (s *Store) TOTP(ctx context.Context, userID string) (*vigil.TOTP, error) {
	t := vigil.TOTP{UserID: userID}
	err := s.pool.QueryRow(ctx, "SELECT secret, confirmed, last_step FROM user_totp WHERE user_id = $1", userID).
		Scan(&t.Secret, &t.Confirmed, &t.LastStep)
	if err != nil {
		return nil, fmt.Errorf("get totp: %w", notFound(err, "one-time password secret"))
	}
	return &t, nil
}

// SetTOTP stores an unconfirmed secret with the hashes of its recovery
// codes, replacing the user's secret and codes; EINVALID if the user does
// not exist.
func (s *Store) SetTOTP(ctx context.Context, userID string, secret []byte, recoveryHashes [][]byte) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_totp (user_id, secret, confirmed, last_step) VALUES ($1, $2, false, 0)
			ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed = false, last_step = 0`, userID, secret); err != nil {
			return constraint(err)
		}
		if len(recoveryHashes) > 0 {
			if _, err := tx.Exec(ctx, "INSERT INTO recovery_codes (user_id, hash) SELECT $1, h FROM unnest($2::bytea[]) AS u (h)",
				userID, recoveryHashes); err != nil {
				return constraint(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set totp: %w", err)
	}
	return nil
}

// UseTOTPStep records that the user's code of time step step was accepted
// and confirms the secret, only if step is later than the last accepted
// one (one statement, so concurrent sign-ins accept a code once):
// ECONFLICT otherwise; ENOTFOUND if the user has no secret.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	tag, err := s.pool.Exec(ctx, "UPDATE user_totp SET last_step = $1, confirmed = true WHERE user_id = $2 AND last_step < $1", step, userID)
	if err != nil {
		return fmt.Errorf("use totp step: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var x int
	if err := s.pool.QueryRow(ctx, "SELECT 1 FROM user_totp WHERE user_id = $1", userID).Scan(&x); err != nil {
		return fmt.Errorf("use totp step: %w", notFound(err, "one-time password secret"))
	}
	return fmt.Errorf("use totp step: %w", vigil.Errorf(vigil.ECONFLICT, "one-time code already used"))
}

// UseRecoveryCode marks the user's unused recovery code whose hash is h as
// used at time at; ENOTFOUND if there is no such unused code.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, h []byte, at time.Time) error {
	err := execOne(ctx, s.pool, "recovery code", "UPDATE recovery_codes SET used = $1 WHERE user_id = $2 AND hash = $3 AND used IS NULL", at, userID, h)
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	return nil
}

// DeleteTOTP removes the user's secret and recovery codes.
func (s *Store) DeleteTOTP(ctx context.Context, userID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM user_totp WHERE user_id = $1", userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete totp: %w", err)
	}
	return nil
}

// UserByExternalID returns the user linked to issuer and subject;
// ENOTFOUND if none.
func (s *Store) UserByExternalID(ctx context.Context, issuer, subject string) (*vigil.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+
		" FROM users WHERE id = (SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2)", issuer, subject))
	if err != nil {
		return nil, fmt.Errorf("get user by external id: %w", notFound(err, "user"))
	}
	return u, nil
}

// CreateExternalUser stores u linked to issuer and subject in one
// transaction; ECONFLICT if the username is taken or the identity linked.
func (s *Store) CreateExternalUser(ctx context.Context, u *vigil.User, issuer, subject string) error {
	id := u.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixUser)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertUser, id, u.Username, string(u.Role), u.SubjectID, u.PasswordHash, created, u.Disabled, u.DisplayName); err != nil {
			return constraint(err)
		}
		_, err := tx.Exec(ctx, "INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)", issuer, subject, id)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create external user: %w", err)
	}
	u.ID, u.Created = id, created
	return nil
}

const ruleConfigColumns = "scope, version, config, note, author, created"

// SaveRuleConfig stores c as a new version of its scope and sets
// c.Created; ECONFLICT unless c.Version follows the scope's latest.
func (s *Store) SaveRuleConfig(ctx context.Context, c *vigil.RuleConfig) error {
	if c.Scope == "" {
		return fmt.Errorf("save rule configuration: %w", vigil.Errorf(vigil.EINVALID, "empty scope"))
	}
	var cfg *string
	if len(c.Config) > 0 && string(c.Config) != "null" {
		v := string(c.Config)
		cfg = &v
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		var latest int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM rule_configs WHERE scope = $1", c.Scope).Scan(&latest); err != nil {
			return err
		}
		if c.Version != latest+1 {
			return vigil.Errorf(vigil.ECONFLICT, "rule configuration of %s is at version %d; version %d cannot follow it", c.Scope, latest, c.Version)
		}
		// Two editors saving the same version at once: the second insert
		// meets the first's primary key.
		_, err := tx.Exec(ctx, "INSERT INTO rule_configs ("+ruleConfigColumns+") VALUES ($1, $2, $3, $4, $5, $6)",
			c.Scope, c.Version, cfg, c.Note, c.Author, created)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("save rule configuration: %w", err)
	}
	c.Created = created
	return nil
}

// RuleConfig returns version v of a scope, or its latest if v is 0;
// ENOTFOUND if none.
func (s *Store) RuleConfig(ctx context.Context, scope string, v int) (*vigil.RuleConfig, error) {
	q := "SELECT " + ruleConfigColumns + " FROM rule_configs WHERE scope = $1 ORDER BY version DESC LIMIT 1"
	a := []any{scope}
	if v != 0 {
		q = "SELECT " + ruleConfigColumns + " FROM rule_configs WHERE scope = $1 AND version = $2"
		a = append(a, v)
	}
	c, err := scanRuleConfig(s.pool.QueryRow(ctx, q, a...))
	if err != nil {
		return nil, fmt.Errorf("get rule configuration: %w", notFound(err, "rule configuration"))
	}
	return c, nil
}

// RuleConfigVersions returns every version of a scope, newest first.
func (s *Store) RuleConfigVersions(ctx context.Context, scope string) ([]*vigil.RuleConfig, error) {
	cs, err := queryAll(ctx, s.pool, scanRuleConfig, "SELECT "+ruleConfigColumns+" FROM rule_configs WHERE scope = $1 ORDER BY version DESC", scope)
	if err != nil {
		return nil, fmt.Errorf("list rule configuration versions: %w", err)
	}
	return cs, nil
}

// LatestRuleConfigs returns the latest version of every scope, ordered by
// scope.
func (s *Store) LatestRuleConfigs(ctx context.Context) ([]*vigil.RuleConfig, error) {
	cs, err := queryAll(ctx, s.pool, scanRuleConfig, "SELECT DISTINCT ON (scope) "+ruleConfigColumns+
		" FROM rule_configs ORDER BY scope, version DESC")
	if err != nil {
		return nil, fmt.Errorf("list rule configurations: %w", err)
	}
	return cs, nil
}

func scanRuleConfig(sc pgx.Row) (*vigil.RuleConfig, error) {
	var c vigil.RuleConfig
	var cfg *string
	if err := sc.Scan(&c.Scope, &c.Version, &cfg, &c.Note, &c.Author, &c.Created); err != nil {
		return nil, err
	}
	if cfg != nil {
		c.Config = json.RawMessage(*cfg)
	}
	return &c, nil
}

// Quarantined returns quarantine items matching f, newest first (ties in
// the order stored, last first). f.Reason matches a substring, ignoring the
// case of ASCII letters only. ENOTFOUND if f.Before names no item.
func (s *Store) Quarantined(ctx context.Context, f vigil.QuarantineFilter) ([]vigil.QuarantineItem, error) {
	var a args
	var where []string
	if f.Sender != "" {
		where = append(where, "sender = "+a.add(f.Sender))
	}
	if f.Source != "" {
		where = append(where, "source = "+a.add(f.Source))
	}
	if f.Code != "" {
		where = append(where, "code = "+a.add(f.Code))
	}
	if f.Template != "" {
		where = append(where, "template = "+a.add(f.Template))
		if f.TemplateVersion != 0 {
			where = append(where, "template_version = "+a.add(f.TemplateVersion))
		}
	}
	if f.Reason != "" {
		// A substring, ignoring ASCII case only (as package sqlite does),
		// with no wildcard characters of its own.
		where = append(where, "strpos("+asciiLower("reason")+", "+asciiLower(a.add(f.Reason))+") > 0")
	}
	if f.Before != "" {
		var received time.Time
		var seq int64
		err := s.pool.QueryRow(ctx, "SELECT received, seq FROM quarantine WHERE id = $1", f.Before).Scan(&received, &seq)
		if err != nil {
			return nil, fmt.Errorf("list quarantine: %w", notFound(err, "quarantine item"))
		}
		where = append(where, "(received, seq) < ("+a.add(received)+", "+a.add(seq)+")")
	}
	items, err := queryAll(ctx, s.pool, func(r pgx.Row) (vigil.QuarantineItem, error) {
		var it vigil.QuarantineItem
		var idx, version int32
		err := r.Scan(&it.ID, &it.Received, &it.Source, &it.Sender, &idx, &it.Reason, &it.Code, &it.Payload, &it.Truncated,
			&it.Template, &version)
		it.Index, it.TemplateVersion = int(idx), int(version)
		return it, err
	}, "SELECT id, received, source, sender, idx, reason, code, payload, truncated, template, template_version FROM quarantine"+
		whereClause(where)+" ORDER BY received DESC, seq DESC"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return items, nil
}

// asciiLower returns the SQL of expr with ASCII upper-case letters in lower
// case and every other character as it is (lower() would follow the
// database's locale).
func asciiLower(expr string) string {
	return "translate(" + expr + ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
}
