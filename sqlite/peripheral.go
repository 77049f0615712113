package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vigil-health/vigil"
)

// AddPeripheral registers p.DeviceID as relayed by gateway p.GatewayID under
// p.Address, setting p.Created (see vigil.PeripheralStore).
func (s *Store) AddPeripheral(ctx context.Context, p *vigil.Peripheral) error {
	if p.GatewayID == p.DeviceID {
		return fmt.Errorf("add peripheral: %w", vigil.Errorf(vigil.EINVALID, "device %s cannot relay for itself", p.DeviceID))
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, id := range []string{p.GatewayID, p.DeviceID} {
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1 FROM devices WHERE id = ?", id).Scan(&one); err != nil {
				return notFound(err, "device "+id)
			}
		}
		var addr string
		err := tx.QueryRowContext(ctx, "SELECT address FROM gateway_peripherals WHERE gateway_id = ? AND (address = ? OR device_id = ?)",
			p.GatewayID, p.Address, p.DeviceID).Scan(&addr)
		switch {
		case err == nil && addr == p.Address:
			return vigil.Errorf(vigil.ECONFLICT, "gateway %s has a peripheral at %s already", p.GatewayID, p.Address)
		case err == nil:
			return vigil.Errorf(vigil.ECONFLICT, "gateway %s relays for device %s already, as %s", p.GatewayID, p.DeviceID, addr)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO gateway_peripherals (gateway_id, address, device_id, created) VALUES (?, ?, ?, ?)",
			p.GatewayID, p.Address, p.DeviceID, created.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("add peripheral: %w", err)
	}
	p.Created = created
	return nil
}

// Peripheral returns the gateway's peripheral at address; ENOTFOUND if none.
func (s *Store) Peripheral(ctx context.Context, gatewayID, address string) (*vigil.Peripheral, error) {
	p := vigil.Peripheral{GatewayID: gatewayID, Address: address}
	var created int64
	err := s.r.QueryRowContext(ctx, "SELECT device_id, created FROM gateway_peripherals WHERE gateway_id = ? AND address = ?",
		gatewayID, address).Scan(&p.DeviceID, &created)
	if err != nil {
		return nil, fmt.Errorf("get peripheral: %w", notFound(err, "peripheral"))
	}
	p.Created = timeOf(sql.NullInt64{Int64: created, Valid: true})
	return &p, nil
}

// Peripherals returns the gateway's peripherals ordered by address.
func (s *Store) Peripherals(ctx context.Context, gatewayID string) ([]*vigil.Peripheral, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT address, device_id, created FROM gateway_peripherals WHERE gateway_id = ? ORDER BY address", gatewayID)
	if err != nil {
		return nil, fmt.Errorf("list peripherals: %w", err)
	}
	defer rows.Close()
	var ps []*vigil.Peripheral
	for rows.Next() {
		p := vigil.Peripheral{GatewayID: gatewayID}
		var created int64
		if err := rows.Scan(&p.Address, &p.DeviceID, &created); err != nil {
			return nil, fmt.Errorf("list peripherals: %w", err)
		}
		p.Created = timeOf(sql.NullInt64{Int64: created, Valid: true})
		ps = append(ps, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list peripherals: %w", err)
	}
	return ps, nil
}

// RemovePeripheral removes the gateway's peripheral at address; ENOTFOUND
// if none.
func (s *Store) RemovePeripheral(ctx context.Context, gatewayID, address string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM gateway_peripherals WHERE gateway_id = ? AND address = ?", gatewayID, address)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "peripheral not found")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove peripheral: %w", err)
	}
	return nil
}

// Relays reports whether gateway gatewayID relays for device deviceID.
func (s *Store) Relays(ctx context.Context, gatewayID, deviceID string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, "SELECT 1 FROM gateway_peripherals WHERE gateway_id = ? AND device_id = ?", gatewayID, deviceID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up peripheral: %w", err)
	}
	return true, nil
}
