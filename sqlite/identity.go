package sqlite

import (
	"context"
	"database/sql"

	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
)

const sealedColumns = "id, identity, mrn_index, kek, wrapped_key, created"

// notErased returns ECONFLICT if id belongs to an erased patient: an
// erased id is never given to another patient.
func notErased(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM erasures WHERE subject_id = ?", id).Scan(&n); err != nil {
		return fmt.Errorf("look up erasure: %w", err)
	}
	if n > 0 {
		return vigil.Errorf(vigil.ECONFLICT, "patient id %s was erased", id)
	}
	return nil
}

// CreateSealedPatient stores p, setting p.ID (if empty) and p.Created.
// ECONFLICT if the id or the MRN index is taken, or the id was erased.
func (s *Store) CreateSealedPatient(ctx context.Context, p *vigil.SealedPatient) error {
	if len(p.Identity) == 0 || len(p.Key.Ciphertext) == 0 || p.Key.KEK == "" {
		return vigil.Errorf(vigil.EINVALID, "a sealed patient needs its identity and wrapped key")
	}
	id := p.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixPatient)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := notErased(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO patients (id, name, birth_date, mrn, created, identity, mrn_index, kek, wrapped_key)
			VALUES (?, '', '', '', ?, ?, ?, ?, ?)`,
			id, created.UnixMicro(), p.Identity, nilIfEmpty(p.MRNIndex), p.Key.KEK, p.Key.Ciphertext)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create sealed patient: %w", err)
	}
	p.ID, p.Created = id, created
	return nil
}

// SealedPatient returns one sealed patient; ENOTFOUND if none.
func (s *Store) SealedPatient(ctx context.Context, id string) (*vigil.SealedPatient, error) {
	p, err := scanSealed(s.r.QueryRowContext(ctx, "SELECT "+sealedColumns+" FROM patients WHERE id = ? AND identity IS NOT NULL", id))
	if err != nil {
		return nil, fmt.Errorf("get sealed patient: %w", notFound(err, "patient"))
	}
	return p, nil
}

// SealedPatients returns the sealed patients matching f, ordered by id.
func (s *Store) SealedPatients(ctx context.Context, f vigil.SealedPatientFilter) ([]*vigil.SealedPatient, error) {
	where := []string{"identity IS NOT NULL"}
	var args []any
	if len(f.IDs) > 0 {
		where = append(where, "id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if f.MRNIndex != nil {
		where = append(where, "mrn_index = ?")
		args = append(args, f.MRNIndex)
	}
	if f.After != "" {
		where = append(where, "id > ?")
		args = append(args, f.After)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+sealedColumns+" FROM patients"+whereClause(where)+" ORDER BY id"+limitClause(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list sealed patients: %w", err)
	}
	defer rows.Close()
	var ps []*vigil.SealedPatient
	for rows.Next() {
		p, err := scanSealed(rows)
		if err != nil {
			return nil, fmt.Errorf("list sealed patients: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sealed patients: %w", err)
	}
	return ps, nil
}

func scanSealed(sc scanner) (*vigil.SealedPatient, error) {
	var p vigil.SealedPatient
	var created sql.NullInt64
	if err := sc.Scan(&p.ID, &p.Identity, &p.MRNIndex, &p.Key.KEK, &p.Key.Ciphertext, &created); err != nil {
		return nil, err
	}
	p.Created = timeOf(created)
	return &p, nil
}

// PlainPatients returns up to limit patients stored in plaintext, ordered
// by id.
func (s *Store) PlainPatients(ctx context.Context, limit int) ([]*vigil.Patient, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+plainColumns+" FROM patients WHERE identity IS NULL ORDER BY id"+limitClause(limit))
	if err != nil {
		return nil, fmt.Errorf("list plaintext patients: %w", err)
	}
	defer rows.Close()
	var ps []*vigil.Patient
	for rows.Next() {
		p, err := scanPatient(rows)
		if err != nil {
			return nil, fmt.Errorf("list plaintext patients: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list plaintext patients: %w", err)
	}
	return ps, nil
}

// SealPatient replaces the plaintext identity of patient p.ID by p's
// sealed form. With secure_delete on (see dsn), the plaintext is
// overwritten in the database file; Compact removes it from the
// write-ahead log.
func (s *Store) SealPatient(ctx context.Context, p *vigil.SealedPatient) error {
	if len(p.Identity) == 0 || len(p.Key.Ciphertext) == 0 || p.Key.KEK == "" {
		return vigil.Errorf(vigil.EINVALID, "a sealed patient needs its identity and wrapped key")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE patients SET name = '', birth_date = '', mrn = '',
			identity = ?, mrn_index = ?, kek = ?, wrapped_key = ? WHERE id = ? AND identity IS NULL`,
			p.Identity, nilIfEmpty(p.MRNIndex), p.Key.KEK, p.Key.Ciphertext, p.ID)
		if err != nil {
			return constraint(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "no plaintext patient %s", p.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seal patient: %w", err)
	}
	return nil
}

// siteOwner is the prefix of site keys' owners (vigil.SiteKeyOwner).
const siteOwner = "site:"

// StaleKeys returns up to limit wrapped keys, of patients and of the
// site, whose KEK is not kek, ordered by owner.
func (s *Store) StaleKeys(ctx context.Context, kek string, limit int) ([]vigil.KeyRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT owner, kek, wrapped FROM (
			SELECT id AS owner, kek, wrapped_key AS wrapped FROM patients WHERE identity IS NOT NULL AND kek <> ?1
			UNION ALL
			SELECT '`+siteOwner+`' || name, kek, wrapped FROM site_keys WHERE kek <> ?1
		) ORDER BY owner`+limitClause(limit), kek)
	if err != nil {
		return nil, fmt.Errorf("list stale keys: %w", err)
	}
	defer rows.Close()
	var out []vigil.KeyRecord
	for rows.Next() {
		var k vigil.KeyRecord
		if err := rows.Scan(&k.Owner, &k.Key.KEK, &k.Key.Ciphertext); err != nil {
			return nil, fmt.Errorf("list stale keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list stale keys: %w", err)
	}
	return out, nil
}

// RewrapKey replaces the wrapped key of owner by to if it is still from.
func (s *Store) RewrapKey(ctx context.Context, owner string, from, to vigil.WrappedKey) (bool, error) {
	if to.KEK == "" || len(to.Ciphertext) == 0 {
		return false, vigil.Errorf(vigil.EINVALID, "a wrapped key needs its KEK and ciphertext")
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if name, ok := strings.CutPrefix(owner, siteOwner); ok {
			res, err = tx.ExecContext(ctx, "UPDATE site_keys SET kek = ?, wrapped = ? WHERE name = ? AND kek = ? AND wrapped = ?",
				to.KEK, to.Ciphertext, name, from.KEK, from.Ciphertext)
		} else {
			res, err = tx.ExecContext(ctx, "UPDATE patients SET kek = ?, wrapped_key = ? WHERE id = ? AND identity IS NOT NULL AND kek = ? AND wrapped_key = ?",
				to.KEK, to.Ciphertext, owner, from.KEK, from.Ciphertext)
		}
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("rewrap key: %w", err)
	}
	return n == 1, nil
}

// SiteKey returns the site key named name; ENOTFOUND if none.
func (s *Store) SiteKey(ctx context.Context, name string) (vigil.WrappedKey, error) {
	var k vigil.WrappedKey
	err := s.r.QueryRowContext(ctx, "SELECT kek, wrapped FROM site_keys WHERE name = ?", name).Scan(&k.KEK, &k.Ciphertext)
	if err != nil {
		return vigil.WrappedKey{}, fmt.Errorf("get site key: %w", notFound(err, "site key"))
	}
	return k, nil
}

// CreateSiteKey stores k under name unless a key of that name exists, and
// returns the key stored under name.
func (s *Store) CreateSiteKey(ctx context.Context, name string, k vigil.WrappedKey) (vigil.WrappedKey, error) {
	if k.KEK == "" || len(k.Ciphertext) == 0 {
		return vigil.WrappedKey{}, vigil.Errorf(vigil.EINVALID, "a wrapped key needs its KEK and ciphertext")
	}
	var got vigil.WrappedKey
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO site_keys (name, kek, wrapped, created) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
			name, k.KEK, k.Ciphertext, s.timestamp().UnixMicro()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT kek, wrapped FROM site_keys WHERE name = ?", name).Scan(&got.KEK, &got.Ciphertext)
	})
	if err != nil {
		return vigil.WrappedKey{}, fmt.Errorf("create site key: %w", err)
	}
	return got, nil
}

// nilIfEmpty stores an empty byte slice as NULL.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
