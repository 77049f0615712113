package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
)

const patientColumns = "id, name, birth_date, mrn, created"

// plainColumns reads a patient row and whether it is sealed.
const plainColumns = patientColumns + ", identity IS NOT NULL"

// CreatePatient stores p in plaintext, setting p.ID (if empty) and
// p.Created. ECONFLICT if the MRN (or the id) is taken, or the id was
// erased. An empty MRN clashes with none. A node stores patients sealed,
// through package keys (CreateSealedPatient).
func (s *Store) CreatePatient(ctx context.Context, p *vigil.Patient) error {
	id := p.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixPatient)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := notErased(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO patients ("+patientColumns+") VALUES (?, ?, ?, ?, ?)",
			id, p.Name, p.BirthDate, p.MRN, created.UnixMicro())
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
	p, err := scanPatient(s.r.QueryRowContext(ctx, "SELECT "+plainColumns+" FROM patients WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get patient: %w", notFound(err, "patient"))
	}
	return p, nil
}

// Patients returns patients matching f ordered by id; EINTERNAL if one of
// them is sealed (read them through package keys).
func (s *Store) Patients(ctx context.Context, f vigil.PatientFilter) ([]*vigil.Patient, error) {
	var where []string
	var args []any
	if len(f.IDs) > 0 {
		where = append(where, "id IN ("+placeholders(len(f.IDs))+")")
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if f.MRN != "" {
		where = append(where, "mrn = ?")
		args = append(args, f.MRN)
	}
	if f.After != "" {
		where = append(where, "id > ?")
		args = append(args, f.After)
	}
	q := "SELECT " + plainColumns + " FROM patients" + whereClause(where) + " ORDER BY id" + limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list patients: %w", err)
	}
	defer rows.Close()
	var ps []*vigil.Patient
	for rows.Next() {
		p, err := scanPatient(rows)
		if err != nil {
			return nil, fmt.Errorf("list patients: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list patients: %w", err)
	}
	return ps, nil
}

// errSealed is returned by the plaintext PatientStore for a sealed row.
var errSealed = &vigil.Error{Code: vigil.EINTERNAL, Message: "patient identity is sealed: read it through package keys"}

// scanPatient scans plainColumns; errSealed for a sealed row.
func scanPatient(sc scanner) (*vigil.Patient, error) {
	var p vigil.Patient
	var created sql.NullInt64
	var sealed bool
	if err := sc.Scan(&p.ID, &p.Name, &p.BirthDate, &p.MRN, &created, &sealed); err != nil {
		return nil, err
	}
	if sealed {
		return nil, errSealed
	}
	p.Created = timeOf(created)
	return &p, nil
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// whereClause joins conditions with AND into a WHERE clause, or returns ""
// for none.
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// limitClause returns a LIMIT clause for n > 0, or "" for no limit.
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}
