package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

const sealedColumns = "id, identity, mrn_index, kek, wrapped_key, created"

// notErased returns ECONFLICT if id belongs to an erased patient: an
// erased id is never given to another patient.
func notErased(ctx context.Context, tx pgx.Tx, id string) error {
	var erased bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM erasures WHERE subject_id = $1)", id).Scan(&erased); err != nil {
		return fmt.Errorf("look up erasure: %w", err)
	}
	if erased {
		return vigil.Errorf(vigil.ECONFLICT, "patient id %s was erased", id)
	}
	return nil
}

// nilIfEmpty stores an empty byte slice as NULL.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := notErased(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO patients (id, name, birth_date, mrn, created, identity, mrn_index, kek, wrapped_key)
			VALUES ($1, '', '', '', $2, $3, $4, $5, $6)`,
			id, created, p.Identity, nilIfEmpty(p.MRNIndex), p.Key.KEK, p.Key.Ciphertext)
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
	p, err := scanSealed(s.pool.QueryRow(ctx, "SELECT "+sealedColumns+" FROM patients WHERE id = $1 AND identity IS NOT NULL", id))
	if err != nil {
		return nil, fmt.Errorf("get sealed patient: %w", notFound(err, "patient"))
	}
	return p, nil
}

// SealedPatients returns the sealed patients matching f, ordered by id.
func (s *Store) SealedPatients(ctx context.Context, f vigil.SealedPatientFilter) ([]*vigil.SealedPatient, error) {
	var a args
	where := []string{"identity IS NOT NULL"}
	if len(f.IDs) > 0 {
		where = append(where, "id = ANY("+a.add(f.IDs)+")")
	}
	if f.MRNIndex != nil {
		where = append(where, "mrn_index = "+a.add(f.MRNIndex))
	}
	if f.After != "" {
		where = append(where, "id > "+a.add(f.After))
	}
	ps, err := queryAll(ctx, s.pool, scanSealed, "SELECT "+sealedColumns+" FROM patients"+whereClause(where)+" ORDER BY id"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list sealed patients: %w", err)
	}
	return ps, nil
}

func scanSealed(sc pgx.Row) (*vigil.SealedPatient, error) {
	var p vigil.SealedPatient
	if err := sc.Scan(&p.ID, &p.Identity, &p.MRNIndex, &p.Key.KEK, &p.Key.Ciphertext, &p.Created); err != nil {
		return nil, err
	}
	return &p, nil
}

// PlainPatients returns up to limit patients stored in plaintext, ordered
// by id.
func (s *Store) PlainPatients(ctx context.Context, limit int) ([]*vigil.Patient, error) {
	ps, err := queryAll(ctx, s.pool, scanPatient, "SELECT "+plainColumns+" FROM patients WHERE identity IS NULL ORDER BY id"+limitClause(limit))
	if err != nil {
		return nil, fmt.Errorf("list plaintext patients: %w", err)
	}
	return ps, nil
}

// SealPatient replaces the plaintext identity of patient p.ID by p's
// sealed form. The old row version, plaintext, stays in the table's pages
// until vacuumed: Compact vacuums the patients table.
func (s *Store) SealPatient(ctx context.Context, p *vigil.SealedPatient) error {
	if len(p.Identity) == 0 || len(p.Key.Ciphertext) == 0 || p.Key.KEK == "" {
		return vigil.Errorf(vigil.EINVALID, "a sealed patient needs its identity and wrapped key")
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE patients SET name = '', birth_date = '', mrn = '',
			identity = $1, mrn_index = $2, kek = $3, wrapped_key = $4 WHERE id = $5 AND identity IS NULL`,
			p.Identity, nilIfEmpty(p.MRNIndex), p.Key.KEK, p.Key.Ciphertext, p.ID)
		if err != nil {
			return constraint(err)
		}
		if tag.RowsAffected() == 0 {
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
	out, err := queryAll(ctx, s.pool, func(r pgx.Row) (vigil.KeyRecord, error) {
		var k vigil.KeyRecord
		err := r.Scan(&k.Owner, &k.Key.KEK, &k.Key.Ciphertext)
		return k, err
	}, `SELECT owner, kek, wrapped FROM (
			SELECT id AS owner, kek, wrapped_key AS wrapped FROM patients WHERE identity IS NOT NULL AND kek <> $1
			UNION ALL
			SELECT '`+siteOwner+`' || name, kek, wrapped FROM site_keys WHERE kek <> $1
		) k ORDER BY owner COLLATE "C"`+limitClause(limit), kek)
	if err != nil {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		q := "UPDATE patients SET kek = $1, wrapped_key = $2 WHERE id = $3 AND identity IS NOT NULL AND kek = $4 AND wrapped_key = $5"
		key := owner
		if name, ok := strings.CutPrefix(owner, siteOwner); ok {
			q = "UPDATE site_keys SET kek = $1, wrapped = $2 WHERE name = $3 AND kek = $4 AND wrapped = $5"
			key = name
		}
		tag, err := tx.Exec(ctx, q, to.KEK, to.Ciphertext, key, from.KEK, from.Ciphertext)
		n = tag.RowsAffected()
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
	if err := s.pool.QueryRow(ctx, "SELECT kek, wrapped FROM site_keys WHERE name = $1", name).Scan(&k.KEK, &k.Ciphertext); err != nil {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO site_keys (name, kek, wrapped, created) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
			name, k.KEK, k.Ciphertext, s.timestamp()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT kek, wrapped FROM site_keys WHERE name = $1", name).Scan(&got.KEK, &got.Ciphertext)
	})
	if err != nil {
		return vigil.WrappedKey{}, fmt.Errorf("create site key: %w", err)
	}
	return got, nil
}

const hl7SenderColumns = "id, application, facility, assigning_authority, created"

// CreateHL7Sender stores hs, setting hs.ID (if empty) and hs.Created.
// ECONFLICT if its application and facility are registered already;
// EINVALID if the application is empty.
func (s *Store) CreateHL7Sender(ctx context.Context, hs *vigil.HL7Sender) error {
	if hs.Application == "" {
		return fmt.Errorf("create HL7 sender: %w", vigil.Errorf(vigil.EINVALID, "an HL7 sender needs its application (MSH-3)"))
	}
	id := hs.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixHL7Sender)
	}
	created := s.timestamp()
	if _, err := s.pool.Exec(ctx, "INSERT INTO hl7_senders ("+hl7SenderColumns+") VALUES ($1, $2, $3, $4, $5)",
		id, hs.Application, hs.Facility, hs.AssigningAuthority, created); err != nil {
		return fmt.Errorf("create HL7 sender: %w", constraint(err))
	}
	hs.ID, hs.Created = id, created
	return nil
}

// HL7Sender returns the sender registered with application and facility;
// ENOTFOUND if none.
func (s *Store) HL7Sender(ctx context.Context, application, facility string) (*vigil.HL7Sender, error) {
	hs, err := scanHL7Sender(s.pool.QueryRow(ctx, "SELECT "+hl7SenderColumns+" FROM hl7_senders WHERE application = $1 AND facility = $2", application, facility))
	if err != nil {
		return nil, fmt.Errorf("get HL7 sender: %w", notFound(err, "HL7 sender"))
	}
	return hs, nil
}

// HL7Senders returns every registered sender ordered by application, then
// facility (byte order, as SQLite orders them).
func (s *Store) HL7Senders(ctx context.Context) ([]*vigil.HL7Sender, error) {
	out, err := queryAll(ctx, s.pool, scanHL7Sender, "SELECT "+hl7SenderColumns+` FROM hl7_senders ORDER BY application COLLATE "C", facility COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list HL7 senders: %w", err)
	}
	return out, nil
}

func scanHL7Sender(sc pgx.Row) (*vigil.HL7Sender, error) {
	var hs vigil.HL7Sender
	if err := sc.Scan(&hs.ID, &hs.Application, &hs.Facility, &hs.AssigningAuthority, &hs.Created); err != nil {
		return nil, err
	}
	return &hs, nil
}
