package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// TOTP returns the user's TOTP secret; ENOTFOUND if none.
func (s *Store) TOTP(ctx context.Context, userID string) (*vigil.TOTP, error) {
	t := vigil.TOTP{UserID: userID}
	err := s.r.QueryRowContext(ctx, "SELECT secret, confirmed, last_step FROM user_totp WHERE user_id = ?", userID).
		Scan(&t.Secret, &t.Confirmed, &t.LastStep)
	if err != nil {
		return nil, fmt.Errorf("get totp: %w", notFound(err, "one-time password secret"))
	}
	return &t, nil
}

// SetTOTP replaces the user's secret (unconfirmed) and recovery codes.
func (s *Store) SetTOTP(ctx context.Context, userID string, secret []byte, recoveryHashes [][]byte) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE user_id = ?", userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_totp (user_id, secret, confirmed, last_step) VALUES (?, ?, 0, 0)
			ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed = 0, last_step = 0`, userID, secret); err != nil {
			return constraint(err)
		}
		for _, h := range recoveryHashes {
			if _, err := tx.ExecContext(ctx, "INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)", userID, h); err != nil {
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

// UseTOTPStep records an accepted code's step if it is later than the last.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE user_totp SET last_step = ?, confirmed = 1 WHERE user_id = ? AND last_step < ?", step, userID, step)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var x int
		if err := tx.QueryRowContext(ctx, "SELECT 1 FROM user_totp WHERE user_id = ?", userID).Scan(&x); err != nil {
			return notFound(err, "one-time password secret")
		}
		return vigil.Errorf(vigil.ECONFLICT, "one-time code already used")
	})
	if err != nil {
		return fmt.Errorf("use totp step: %w", err)
	}
	return nil
}

// UseRecoveryCode marks an unused recovery code used.
func (s *Store) UseRecoveryCode(ctx context.Context, userID string, h []byte, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE recovery_codes SET used = ? WHERE user_id = ? AND hash = ? AND used IS NULL", at.UnixMicro(), userID, h)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "recovery code not found")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	return nil
}

// DeleteTOTP removes the user's secret and recovery codes.
func (s *Store) DeleteTOTP(ctx context.Context, userID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE user_id = ?", userID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM user_totp WHERE user_id = ?", userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete totp: %w", err)
	}
	return nil
}

// UserByExternalID returns the user linked to issuer and subject.
func (s *Store) UserByExternalID(ctx context.Context, issuer, subject string) (*vigil.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+
		" FROM users WHERE id = (SELECT user_id FROM external_identities WHERE issuer = ? AND subject = ?)", issuer, subject))
	if err != nil {
		return nil, fmt.Errorf("get user by external id: %w", notFound(err, "user"))
	}
	return u, nil
}

// CreateExternalUser stores u linked to issuer and subject.
func (s *Store) CreateExternalUser(ctx context.Context, u *vigil.User, issuer, subject string) error {
	id := u.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixUser)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			id, u.Username, string(u.Role), u.SubjectID, u.PasswordHash, created.UnixMicro(), u.Disabled, u.DisplayName); err != nil {
			return constraint(err)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO external_identities (issuer, subject, user_id) VALUES (?, ?, ?)", issuer, subject, id)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create external user: %w", err)
	}
	u.ID, u.Created = id, created
	return nil
}
