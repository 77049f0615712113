package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// HoldWriterForTest opens a write transaction that has written, closes held,
// and waits for release before rolling back.
func (s *Store) HoldWriterForTest(ctx context.Context, held chan<- struct{}, release <-chan struct{}) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE patients SET name = name"); err != nil {
			return err
		}
		close(held)
		<-release
		return errors.New("roll back")
	})
}
