package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// AddPeripheral registers p.DeviceID as relayed by gateway p.GatewayID under
// p.Address, setting p.Created (see vigil.PeripheralStore).
func (s *Store) AddPeripheral(ctx context.Context, p *vigil.Peripheral) error {
	if p.GatewayID == p.DeviceID {
		return fmt.Errorf("add peripheral: %w", vigil.Errorf(vigil.EINVALID, "device %s cannot relay for itself", p.DeviceID))
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		for _, id := range []string{p.GatewayID, p.DeviceID} {
			var one int
			if err := tx.QueryRow(ctx, "SELECT 1 FROM devices WHERE id = $1", id).Scan(&one); err != nil {
				return notFound(err, "device "+id)
			}
		}
		// The gateway's row is locked, so that two additions to one
		// gateway are checked one after the other.
		if _, err := tx.Exec(ctx, "SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", p.GatewayID); err != nil {
			return err
		}
		var addr string
		err := tx.QueryRow(ctx, "SELECT address FROM gateway_peripherals WHERE gateway_id = $1 AND (address = $2 OR device_id = $3)",
			p.GatewayID, p.Address, p.DeviceID).Scan(&addr)
		switch {
		case err == nil && addr == p.Address:
			return vigil.Errorf(vigil.ECONFLICT, "gateway %s has a peripheral at %s already", p.GatewayID, p.Address)
		case err == nil:
			return vigil.Errorf(vigil.ECONFLICT, "gateway %s relays for device %s already, as %s", p.GatewayID, p.DeviceID, addr)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO gateway_peripherals (gateway_id, address, device_id, created) VALUES ($1, $2, $3, $4)",
			p.GatewayID, p.Address, p.DeviceID, created)
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
	err := s.pool.QueryRow(ctx, "SELECT device_id, created FROM gateway_peripherals WHERE gateway_id = $1 AND address = $2",
		gatewayID, address).Scan(&p.DeviceID, &p.Created)
	if err != nil {
		return nil, fmt.Errorf("get peripheral: %w", notFound(err, "peripheral"))
	}
	return &p, nil
}

// Peripherals returns the gateway's peripherals ordered by address (byte
// order, as SQLite orders them).
func (s *Store) Peripherals(ctx context.Context, gatewayID string) ([]*vigil.Peripheral, error) {
	ps, err := queryAll(ctx, s.pool, func(r pgx.Row) (*vigil.Peripheral, error) {
		p := vigil.Peripheral{GatewayID: gatewayID}
		err := r.Scan(&p.Address, &p.DeviceID, &p.Created)
		return &p, err
	}, `SELECT address, device_id, created FROM gateway_peripherals WHERE gateway_id = $1 ORDER BY address COLLATE "C"`, gatewayID)
	if err != nil {
		return nil, fmt.Errorf("list peripherals: %w", err)
	}
	return ps, nil
}

// RemovePeripheral removes the gateway's peripheral at address; ENOTFOUND
// if none.
func (s *Store) RemovePeripheral(ctx context.Context, gatewayID, address string) error {
	if err := execOne(ctx, s.pool, "peripheral", "DELETE FROM gateway_peripherals WHERE gateway_id = $1 AND address = $2", gatewayID, address); err != nil {
		return fmt.Errorf("remove peripheral: %w", err)
	}
	return nil
}

// Relays reports whether gateway gatewayID relays for device deviceID.
func (s *Store) Relays(ctx context.Context, gatewayID, deviceID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM gateway_peripherals WHERE gateway_id = $1 AND device_id = $2)", gatewayID, deviceID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up peripheral: %w", err)
	}
	return ok, nil
}
