package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

const deviceColumns = "id, kind, model, serial, subject_id, token_hash, created, revoked"

// CreateDevice stores d, setting d.ID (if empty) and d.Created.
// ECONFLICT if the token hash (or the id) is taken.
func (s *Store) CreateDevice(ctx context.Context, d *vigil.Device) error {
	id := d.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixDevice)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO devices ("+deviceColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			id, d.Kind, d.Model, d.Serial, d.SubjectID, hashArg(d.TokenHash), created.UnixMicro(), microsPtr(d.Revoked))
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create device: %w", err)
	}
	d.ID, d.Created = id, created
	return nil
}

// Device returns one device; ENOTFOUND if none.
func (s *Store) Device(ctx context.Context, id string) (*vigil.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, "SELECT "+deviceColumns+" FROM devices WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get device: %w", notFound(err, "device"))
	}
	return d, nil
}

// DeviceByTokenHash returns the device whose token hashes to h, revoked or
// not; ENOTFOUND if none.
func (s *Store) DeviceByTokenHash(ctx context.Context, h []byte) (*vigil.Device, error) {
	if len(h) == 0 {
		return nil, fmt.Errorf("get device by token: %w", vigil.Errorf(vigil.ENOTFOUND, "device not found"))
	}
	st, err := s.byTokenHash.get(ctx, s.r, "SELECT "+deviceColumns+" FROM devices WHERE token_hash = ?")
	if err != nil {
		return nil, fmt.Errorf("get device by token: %w", err)
	}
	d, err := scanDevice(st.QueryRowContext(ctx, h))
	if err != nil {
		return nil, fmt.Errorf("get device by token: %w", notFound(err, "device"))
	}
	return d, nil
}

// Devices returns devices matching f ordered by id.
func (s *Store) Devices(ctx context.Context, f vigil.DeviceFilter) ([]*vigil.Device, error) {
	var where []string
	var args []any
	if f.SubjectID != "" {
		where = append(where, "subject_id = ?")
		args = append(args, f.SubjectID)
	}
	q := "SELECT " + deviceColumns + " FROM devices" + whereClause(where) + " ORDER BY id" + limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var ds []*vigil.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// UpdateDevice applies u and returns the device as it now is; ENOTFOUND if
// none, ECONFLICT if u.TokenHash is another device's. A device revoked
// already keeps its first revocation time.
func (s *Store) UpdateDevice(ctx context.Context, id string, u vigil.DeviceUpdate) (*vigil.Device, error) {
	var d *vigil.Device
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = scanDevice(tx.QueryRowContext(ctx, "SELECT "+deviceColumns+" FROM devices WHERE id = ?", id))
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
		_, err = tx.ExecContext(ctx, "UPDATE devices SET subject_id = ?, token_hash = ?, revoked = ? WHERE id = ?",
			d.SubjectID, hashArg(d.TokenHash), microsPtr(d.Revoked), id)
		return constraint(err)
	})
	if err != nil {
		return nil, fmt.Errorf("update device: %w", err)
	}
	return d, nil
}

func scanDevice(sc scanner) (*vigil.Device, error) {
	var d vigil.Device
	var created, revoked sql.NullInt64
	if err := sc.Scan(&d.ID, &d.Kind, &d.Model, &d.Serial, &d.SubjectID, &d.TokenHash, &created, &revoked); err != nil {
		return nil, err
	}
	d.Created = timeOf(created)
	d.Revoked = timePtrOf(revoked)
	return &d, nil
}

// hashArg returns h for storage, or nil (NULL) when empty so that devices
// without a token do not clash on the unique index.
func hashArg(h []byte) any {
	if len(h) == 0 {
		return nil
	}
	return h
}

// SaveDeviceStatuses stores the last known status of each device in sts.
func (s *Store) SaveDeviceStatuses(ctx context.Context, sts map[string][]byte) error {
	if len(sts) == 0 {
		return nil
	}
	now := s.timestamp().UnixMicro()
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO device_status (device_id, status, updated) VALUES (?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET status = excluded.status, updated = excluded.updated`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, st := range sts {
			if _, err := stmt.ExecContext(ctx, id, string(st), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save device statuses: %w", err)
	}
	return nil
}

// DeviceStatuses returns every stored device status by device id.
func (s *Store) DeviceStatuses(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT device_id, status FROM device_status")
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
