package vigil

import (
	"context"
	"time"
)

// WrappedKey is a key encrypted by a key-encryption key (KEK). KEK names
// the key-encryption key and its version, as the wrapper that made it
// writes it (package keys: "file:3" for version 3 of the key file); a
// store keeps both as given and never looks inside.
type WrappedKey struct {
	KEK        string
	Ciphertext []byte
}

// SealedPatient is a patient's identity as a store keeps it: encrypted
// under the patient's own data key, which is kept beside it wrapped by a
// key-encryption key (package keys does both; the store only keeps bytes).
// Destroying Key makes Identity unreadable everywhere it was copied to
// (crypto-shredding).
type SealedPatient struct {
	ID       string
	Identity []byte     // the encrypted identity (name, birth date, MRN)
	MRNIndex []byte     // keyed blind index of the MRN; nil when the patient has none
	Key      WrappedKey // the patient's data key, wrapped
	Created  time.Time
}

// SealedPatientFilter selects sealed patients, ordered by id. Zero values
// match everything.
type SealedPatientFilter struct {
	IDs      []string
	MRNIndex []byte // only the patient with this blind index
	After    string // resume after this patient id
	Limit    int
}

// KeyRecord is one wrapped key and whom it belongs to: a patient id, or
// "site:" and the name of a site key.
type KeyRecord struct {
	Owner string
	Key   WrappedKey
}

// SiteKeyOwner is the KeyRecord.Owner of the site key named name.
func SiteKeyOwner(name string) string { return "site:" + name }

// IdentityStore keeps patient identities sealed (encrypted) and the
// wrapped keys that open them. It is what a store offers package keys,
// which implements PatientStore on top of it, so that every store backend
// gets the same encryption. All methods are safe for concurrent use.
type IdentityStore interface {
	// CreateSealedPatient stores p, setting p.ID (if empty) and p.Created.
	// ECONFLICT if the id or the MRN index is taken, or the id belongs to
	// an erased patient.
	CreateSealedPatient(ctx context.Context, p *SealedPatient) error
	// SealedPatient returns one sealed patient; ENOTFOUND if none (also
	// when the patient is stored in plaintext: see PlainPatients).
	SealedPatient(ctx context.Context, id string) (*SealedPatient, error)
	// SealedPatients returns the sealed patients matching f, ordered by id.
	SealedPatients(ctx context.Context, f SealedPatientFilter) ([]*SealedPatient, error)
	// PlainPatients returns up to limit patients whose identity is stored
	// in plaintext (by PatientStore.CreatePatient, or before identity was
	// encrypted), ordered by id.
	PlainPatients(ctx context.Context, limit int) ([]*Patient, error)
	// SealPatient replaces the plaintext identity of patient p.ID by p's
	// sealed form (Identity, MRNIndex, Key; Created is kept), in one
	// transaction, leaving no plaintext identity in the row. ENOTFOUND if
	// there is no plaintext patient p.ID; ECONFLICT if the MRN index is
	// taken.
	SealPatient(ctx context.Context, p *SealedPatient) error

	// StaleKeys returns up to limit wrapped keys, of patients and of the
	// site, whose KEK is not kek, ordered by owner: those a KEK rotation
	// still has to re-wrap.
	StaleKeys(ctx context.Context, kek string, limit int) ([]KeyRecord, error)
	// RewrapKey replaces the wrapped key of owner by to if it is still
	// from (compare and swap) and reports whether it did: false if the key
	// changed meanwhile or is gone (an erased patient).
	RewrapKey(ctx context.Context, owner string, from, to WrappedKey) (bool, error)
	// SiteKey returns the site key named name; ENOTFOUND if none.
	SiteKey(ctx context.Context, name string) (WrappedKey, error)
	// CreateSiteKey stores k under name unless a key of that name exists,
	// and returns the key stored under name: k, or the one that was there
	// first.
	CreateSiteKey(ctx context.Context, name string, k WrappedKey) (WrappedKey, error)
}
