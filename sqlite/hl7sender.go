package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

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
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO hl7_senders ("+hl7SenderColumns+") VALUES (?, ?, ?, ?, ?)",
			id, hs.Application, hs.Facility, hs.AssigningAuthority, created.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create HL7 sender: %w", err)
	}
	hs.ID, hs.Created = id, created
	return nil
}

// HL7Sender returns the sender registered with application and facility;
// ENOTFOUND if none.
func (s *Store) HL7Sender(ctx context.Context, application, facility string) (*vigil.HL7Sender, error) {
	hs, err := scanHL7Sender(s.r.QueryRowContext(ctx, "SELECT "+hl7SenderColumns+" FROM hl7_senders WHERE application = ? AND facility = ?", application, facility))
	if err != nil {
		return nil, fmt.Errorf("get HL7 sender: %w", notFound(err, "HL7 sender"))
	}
	return hs, nil
}

// HL7Senders returns every registered sender ordered by application, then
// facility.
func (s *Store) HL7Senders(ctx context.Context) ([]*vigil.HL7Sender, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+hl7SenderColumns+" FROM hl7_senders ORDER BY application, facility")
	if err != nil {
		return nil, fmt.Errorf("list HL7 senders: %w", err)
	}
	defer rows.Close()
	var out []*vigil.HL7Sender
	for rows.Next() {
		hs, err := scanHL7Sender(rows)
		if err != nil {
			return nil, fmt.Errorf("list HL7 senders: %w", err)
		}
		out = append(out, hs)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list HL7 senders: %w", err)
	}
	return out, nil
}

func scanHL7Sender(sc scanner) (*vigil.HL7Sender, error) {
	var hs vigil.HL7Sender
	var created int64
	if err := sc.Scan(&hs.ID, &hs.Application, &hs.Facility, &hs.AssigningAuthority, &created); err != nil {
		return nil, err
	}
	hs.Created = time.UnixMicro(created).UTC()
	return &hs, nil
}
