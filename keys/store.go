package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Store is a vigil.Store whose PatientStore seals identity: it keeps
// patients through the wrapped store's IdentityStore, encrypted under
// their own data keys, and finds them by MRN through the blind index.
// Every other method is the wrapped store's. It is safe for concurrent
// use.
type Store struct {
	vigil.Store
	keys *Keyring
}

var _ vigil.Store = (*Store)(nil)

// NewStore returns s with sealed identity, keys from k.
func NewStore(s vigil.Store, k *Keyring) *Store { return &Store{Store: s, keys: k} }

// Keyring returns the store's keyring.
func (s *Store) Keyring() *Keyring { return s.keys }

// identity is the sealed part of a patient, as JSON.
type identity struct {
	Name      string `json:"name"`
	BirthDate string `json:"birth_date"`
	MRN       string `json:"mrn"`
}

// identityAAD binds a sealed identity to its patient id: a ciphertext
// copied to another row does not open.
func identityAAD(id string) []byte { return []byte("vigil identity\x00" + id) }

// sealPatient returns p sealed under a new data key.
func (s *Store) sealPatient(ctx context.Context, p *vigil.Patient) (*vigil.SealedPatient, error) {
	dk, w, err := s.keys.NewDataKey(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(identity{Name: p.Name, BirthDate: p.BirthDate, MRN: p.MRN})
	if err != nil {
		return nil, err
	}
	ct, err := Seal(dk, b, identityAAD(p.ID))
	if err != nil {
		return nil, err
	}
	sp := &vigil.SealedPatient{ID: p.ID, Identity: ct, Key: w}
	if p.MRN != "" {
		if sp.MRNIndex, err = s.keys.MRNIndex(ctx, p.MRN); err != nil {
			return nil, err
		}
	}
	return sp, nil
}

// open returns the patient sp seals.
func (s *Store) open(ctx context.Context, sp *vigil.SealedPatient) (*vigil.Patient, error) {
	dk, err := s.keys.DataKey(ctx, sp.ID, sp.Key)
	if err != nil {
		return nil, err
	}
	b, err := Open(dk, sp.Identity, identityAAD(sp.ID))
	if err != nil {
		return nil, fmt.Errorf("open identity of %s: %w", sp.ID, err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("open identity of %s: %w", sp.ID, err)
	}
	return &vigil.Patient{ID: sp.ID, Name: id.Name, BirthDate: id.BirthDate, MRN: id.MRN, Created: sp.Created}, nil
}

// CreatePatient seals p under a new data key and stores it, setting p.ID
// (if empty) and p.Created. ECONFLICT if the MRN (or the id) is taken.
func (s *Store) CreatePatient(ctx context.Context, p *vigil.Patient) error {
	q := *p
	if q.ID == "" {
		q.ID = vigil.NewID(vigil.PrefixPatient) // the data key is bound to it
	}
	sp, err := s.sealPatient(ctx, &q)
	if err != nil {
		return fmt.Errorf("create patient: %w", err)
	}
	if err := s.Store.CreateSealedPatient(ctx, sp); err != nil {
		s.keys.Forget(q.ID)
		return err
	}
	p.ID, p.Created = q.ID, sp.Created
	return nil
}

// Patient returns one patient; ENOTFOUND if none.
func (s *Store) Patient(ctx context.Context, id string) (*vigil.Patient, error) {
	sp, err := s.Store.SealedPatient(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, sp)
}

// Patients returns patients matching f ordered by id.
func (s *Store) Patients(ctx context.Context, f vigil.PatientFilter) ([]*vigil.Patient, error) {
	sf := vigil.SealedPatientFilter{IDs: f.IDs, After: f.After, Limit: f.Limit}
	if f.MRN != "" {
		idx, err := s.keys.MRNIndex(ctx, f.MRN)
		if err != nil {
			return nil, fmt.Errorf("list patients: %w", err)
		}
		sf.MRNIndex = idx
	}
	sps, err := s.Store.SealedPatients(ctx, sf)
	if err != nil {
		return nil, err
	}
	out := make([]*vigil.Patient, 0, len(sps))
	for _, sp := range sps {
		p, err := s.open(ctx, sp)
		if err != nil {
			return nil, fmt.Errorf("list patients: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// SealPlaintext seals every patient the store keeps in plaintext (written
// before identity was encrypted) and returns how many it sealed. A node
// runs it at start, before it serves.
func (s *Store) SealPlaintext(ctx context.Context) (int, error) {
	n := 0
	for {
		ps, err := s.Store.PlainPatients(ctx, 100)
		if err != nil {
			return n, err
		}
		if len(ps) == 0 {
			return n, nil
		}
		for _, p := range ps {
			sp, err := s.sealPatient(ctx, p)
			if err != nil {
				return n, fmt.Errorf("seal patient %s: %w", p.ID, err)
			}
			if err := s.Store.SealPatient(ctx, sp); err != nil {
				return n, err
			}
			n++
		}
	}
}

// SiteKeyQuarantine names the site key that seals quarantined payloads.
const SiteKeyQuarantine = "quarantine"

// sealedPayload starts a quarantined payload sealed by Store; a payload
// without it (kept before payloads were sealed) is returned as it is.
var sealedPayload = []byte("vigil-sealed-1\x00")

// payloadAAD binds a sealed payload to its quarantine item.
func payloadAAD(id string) []byte { return []byte("vigil quarantine\x00" + id) }

// WriteBatches stores bs as the wrapped store does, with every quarantined
// payload sealed under the site's quarantine key: raw input that could not
// be accepted may carry names (an HL7 PID segment, a comment), and it
// belongs to no patient whose key could seal it. Readings are stored as
// they are: pseudonymous, and on the ingest path.
func (s *Store) WriteBatches(ctx context.Context, bs []vigil.Batch) (int, error) {
	sealed := bs
	copied := false
	for i := range bs {
		for j := range bs[i].Quarantine {
			if !copied {
				sealed = make([]vigil.Batch, len(bs))
				copy(sealed, bs)
				copied = true
			}
			if j == 0 {
				sealed[i].Quarantine = append([]vigil.QuarantineItem(nil), bs[i].Quarantine...)
			}
			q := &sealed[i].Quarantine[j]
			ct, err := s.sealPayload(ctx, q.ID, q.Payload)
			if err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
			q.Payload = ct
		}
	}
	n, err := s.Store.WriteBatches(ctx, sealed)
	if copied { // readings' IDs and keys are set in place: hand them back
		for i := range bs {
			bs[i].Readings = sealed[i].Readings
		}
	}
	return n, err
}

// Quarantined returns the wrapped store's items with their payloads
// opened.
func (s *Store) Quarantined(ctx context.Context, f vigil.QuarantineFilter) ([]vigil.QuarantineItem, error) {
	qs, err := s.Store.Quarantined(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range qs {
		rest, ok := bytes.CutPrefix(qs[i].Payload, sealedPayload)
		if !ok {
			continue
		}
		key, err := s.keys.SiteKey(ctx, SiteKeyQuarantine)
		if err != nil {
			return nil, fmt.Errorf("list quarantine: %w", err)
		}
		if qs[i].Payload, err = Open(key, rest, payloadAAD(qs[i].ID)); err != nil {
			return nil, fmt.Errorf("open quarantined payload %s: %w", qs[i].ID, err)
		}
	}
	return qs, nil
}

func (s *Store) sealPayload(ctx context.Context, id string, payload []byte) ([]byte, error) {
	key, err := s.keys.SiteKey(ctx, SiteKeyQuarantine)
	if err != nil {
		return nil, err
	}
	ct, err := Seal(key, payload, payloadAAD(id))
	if err != nil {
		return nil, err
	}
	return append(append([]byte(nil), sealedPayload...), ct...), nil
}
