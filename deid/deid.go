// Package deid de-identifies patient data for research, after the HIPAA
// Safe Harbor method (45 CFR 164.514(b)(2)): it removes the direct
// identifiers, gives each patient a stable research id (a keyed hash of
// the subject id), shifts every date of a patient by a secret offset of
// their own (whole days, so intervals and times of day are kept), groups
// ages into five-year bands with every age over 89 in one band (90+), and
// drops free text. It reports what it did in a Manifest, with a
// k-anonymity report on the quasi-identifiers it keeps (the age band).
//
// The de-identification itself (Deidentifier, Export's Write methods) is
// pure; Export.Run drives it over a Source and writes NDJSON files.
// docs/security.md ("De-identification") states the method and its limits.
package deid

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// MinKeyBytes is the least length of a research key.
const MinKeyBytes = 32

// DefaultMaxShiftDays is the default bound of the date shift.
const DefaultMaxShiftDays = 365

// PrefixResearch is the prefix of research ids.
const PrefixResearch = "rsh"

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// Deidentifier holds the site's research key and derives from it, per
// patient, the research id and the date shift. The same key gives the same
// ids and shifts in every export, so exports can be joined by research id;
// without the key neither can be reversed or recomputed. It is safe for
// concurrent use.
type Deidentifier struct {
	key     []byte
	maxDays int
}

// NewDeidentifier returns a Deidentifier with the research key (at least
// MinKeyBytes bytes, secret) and dates shifted by 1 to maxShiftDays days
// (DefaultMaxShiftDays if not positive), earlier or later. EINVALID-like
// plain error for a short key.
func NewDeidentifier(key []byte, maxShiftDays int) (*Deidentifier, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("research key of %d bytes: want at least %d", len(key), MinKeyBytes)
	}
	if maxShiftDays <= 0 {
		maxShiftDays = DefaultMaxShiftDays
	}
	return &Deidentifier{key: append([]byte(nil), key...), maxDays: maxShiftDays}, nil
}

func (d *Deidentifier) mac(purpose, subject string) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(subject))
	return m.Sum(nil)
}

// ResearchID returns the patient's research id: "rsh_" and 128 bits of
// HMAC-SHA256(key, subject id) in Crockford base32.
func (d *Deidentifier) ResearchID(subjectID string) string {
	return PrefixResearch + "_" + idEncoding.EncodeToString(d.mac("research-id", subjectID)[:16])
}

// ObservationID returns the research id of one of the patient's readings,
// so that a reading keeps one id across exports without its store id.
func (d *Deidentifier) ObservationID(subjectID string, readingID int64) string {
	return idEncoding.EncodeToString(d.mac("observation", subjectID+"\x00"+strconv.FormatInt(readingID, 10))[:16])
}

// Shift returns the patient's date shift: a whole number of days from 1 to
// the maximum, earlier or later, never zero. Every date of the patient
// moves by the same shift.
func (d *Deidentifier) Shift(subjectID string) time.Duration {
	h := d.mac("date-shift", subjectID)
	days := int(binary.BigEndian.Uint64(h[:8])%uint64(d.maxDays)) + 1
	if h[8]&1 == 1 {
		days = -days
	}
	return time.Duration(days) * 24 * time.Hour
}

// MaxShiftDays is the bound of the shift.
func (d *Deidentifier) MaxShiftDays() int { return d.maxDays }

// AgeBand returns the five-year band ("40-44") of the age at asOf of a
// person born on birthDate (YYYY-MM-DD), "90+" for every age over 89, and
// "unknown" if the birth date is missing, malformed or after asOf.
func AgeBand(birthDate string, asOf time.Time) string {
	b, err := time.Parse(time.DateOnly, birthDate)
	if err != nil {
		return "unknown"
	}
	asOf = asOf.UTC()
	age := asOf.Year() - b.Year()
	if asOf.Month() < b.Month() || (asOf.Month() == b.Month() && asOf.Day() < b.Day()) {
		age--
	}
	switch {
	case age < 0:
		return "unknown"
	case age > 89:
		return "90+"
	}
	lo := age / 5 * 5
	return strconv.Itoa(lo) + "-" + strconv.Itoa(lo+4)
}

// KeyFile is the file in the data directory holding the site's research
// key: 32 random bytes, 0600, created by the first de-identified export.
// Backups carry it, so that research ids and shifts survive a restore;
// whoever holds it can recompute both, so it is kept like the other keys.
const KeyFile = "research-key"

// LoadKey reads the research key at path, creating it (32 random bytes,
// mode 0600, synced) if it does not exist.
func LoadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, MinKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate research key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create research key: %w", err)
		}
		_, err = f.Write(key)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write research key: %w", err)
		}
		return key, nil
	} else if err != nil {
		return nil, fmt.Errorf("read research key: %w", err)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("research key %s has %d bytes: want at least %d", path, len(key), MinKeyBytes)
	}
	return key, nil
}
