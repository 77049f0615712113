package auth

import (
	"context"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
)

// PatientStore is what PatientAccess reads: care-team membership and
// break-glass grants. vigil.Store implements it.
type PatientStore interface {
	// UserSeesPatient reports whether the user is a member of a team the
	// patient is enrolled in.
	UserSeesPatient(ctx context.Context, userID, subjectID string) (bool, error)
	// UserPatients returns the patients of every team the user is in.
	UserPatients(ctx context.Context, userID string) ([]string, error)
	// ActiveBreakGlass returns the user's grant for the patient in force at
	// now; ENOTFOUND if there is none.
	ActiveBreakGlass(ctx context.Context, userID, subjectID string, now time.Time) (*vigil.BreakGlass, error)
	// BreakGlasses lists grants.
	BreakGlasses(ctx context.Context, f vigil.BreakGlassFilter) ([]*vigil.BreakGlass, error)
}

// PatientAccess is the one rule of "may this principal see this patient",
// asked by every adapter that serves or takes patient data (the JSON API,
// the FHIR API, the dashboard, the event stream). The rule, by role:
//
//   - admin: every patient's demographics, which admins manage; clinical
//     data (readings, alerts, rule settings) only with AdminReadsClinical;
//   - patient: their own record only (Principal.SubjectID);
//   - integration: the patients whose sharing consent names it (Consent;
//     decision 26), or every patient if the site exempted it or no
//     Consent gate is set — its token's scopes, checked before, narrow
//     what it may do;
//   - clinician: the patients enrolled in one of their care teams, and
//     those they hold break-glass access to that has not expired;
//   - device, and any other role: none. A device writes readings only for
//     the patient it is assigned to, which ingest decides with the device
//     record — and a gateway for the patients of the peripherals
//     registered to it (vigil.PeripheralStore), each reading as the
//     peripheral's; it reads nothing.
//
// The zero value is not usable: Store is required. Safe for concurrent use
// if Store is.
type PatientAccess struct {
	Store PatientStore
	// AdminReadsClinical lets admins see patients' clinical data.
	AdminReadsClinical bool
	// Now is the clock break-glass expiry is judged by; time.Now if nil.
	Now func() time.Time
	// Consent gates integrations by the patients' sharing consents; nil:
	// integrations are not gated (tests of other concerns; the server
	// always sets it).
	Consent ConsentGate
}

func (a *PatientAccess) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// Check returns nil if p may see patient id's data (clinical: readings,
// alerts and other clinical data; otherwise demographics). A principal
// that may not is answered ENOTFOUND, the same error as a patient that
// does not exist, so that no caller can learn which patients exist by
// probing; other errors are the store's (a failure to decide, never a
// permission). Check does not look the patient up: for a caller allowed
// every patient, whether the patient exists is the handler's question.
func (a *PatientAccess) Check(ctx context.Context, p *vigil.Principal, id string, clinical bool) error {
	notFound := vigil.Errorf(vigil.ENOTFOUND, "patient %s not found", id)
	switch p.Role {
	case vigil.RoleAdmin:
		if !clinical || a.AdminReadsClinical {
			return nil
		}
		return notFound
	case vigil.RolePatient:
		if p.SubjectID != "" && p.SubjectID == id {
			return nil
		}
		return notFound
	case vigil.RoleIntegration:
		if a.Consent != nil {
			return a.Consent.Allows(ctx, p, id) // ENOTFOUND without consent
		}
		return nil // its scopes were checked
	case vigil.RoleClinician:
		ok, err := a.Store.UserSeesPatient(ctx, p.UserID, id)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		_, err = a.Store.ActiveBreakGlass(ctx, p.UserID, id, a.now())
		if err == nil {
			return nil
		}
		if vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return err
		}
	}
	return notFound
}

// Visible computes the patients whose clinical data p may see, by the same
// rule as Check with clinical set. It costs two queries for a clinician,
// one for an integration gated by consent, and none for other roles. The result is a snapshot: team changes after
// it are not reflected, break-glass grants keep their expiry.
func (a *PatientAccess) Visible(ctx context.Context, p *vigil.Principal) (*Visibility, error) {
	v := &Visibility{}
	switch p.Role {
	case vigil.RoleAdmin:
		v.all = a.AdminReadsClinical
	case vigil.RoleIntegration:
		if a.Consent == nil || !a.Consent.Gated(p) {
			v.all = true
			break
		}
		ids, _, err := a.Consent.Subjects(ctx, p, "", 0)
		if err != nil {
			return nil, err
		}
		v.ids = make(map[string]bool, len(ids))
		for _, id := range ids {
			v.ids[id] = true
		}
		v.gated = true
	case vigil.RolePatient:
		if p.SubjectID != "" {
			v.ids = map[string]bool{p.SubjectID: true}
		}
	case vigil.RoleClinician:
		ids, err := a.Store.UserPatients(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		v.ids = make(map[string]bool, len(ids))
		for _, id := range ids {
			v.ids[id] = true
		}
		bgs, err := a.Store.BreakGlasses(ctx, vigil.BreakGlassFilter{UserID: p.UserID, Open: true})
		if err != nil {
			return nil, err
		}
		now := a.now()
		for _, b := range bgs {
			if b.Active(now) && b.Expires.After(v.until[b.SubjectID]) {
				if v.until == nil {
					v.until = map[string]time.Time{}
				}
				v.until[b.SubjectID] = b.Expires
			}
		}
	}
	return v, nil
}

// Visibility is the set of patients whose clinical data a principal may
// see, as computed at one time (PatientAccess.Visible). Break-glass grants
// keep their expiry, so that Sees stays right as they run out. Not safe
// for concurrent use with itself being replaced; reads are safe.
type Visibility struct {
	all   bool                 // every patient: integrations, admins with AdminReadsClinical
	ids   map[string]bool      // the clinician's team patients; the patient's own record
	until map[string]time.Time // break-glass grants: patient → expiry
	gated bool                 // an integration's consented patients: revocations after the snapshot must be checked again (Recheck)
}

// Gated reports whether the visible patients are an integration's
// consented patients, as they were when Visible computed them: a consent
// revoked since is not reflected, so whoever keeps a Visibility (an event
// stream) checks each patient again with PatientAccess.Recheck before
// showing it.
func (v *Visibility) Gated() bool { return v.gated }

// All reports whether every patient is visible.
func (v *Visibility) All() bool { return v.all }

// Sees reports whether the patient id is visible at now.
func (v *Visibility) Sees(id string, now time.Time) bool {
	if v.all || v.ids[id] {
		return true
	}
	exp, ok := v.until[id]
	return ok && now.Before(exp)
}

// Subjects returns the visible patients at now, sorted; meaningless when
// All.
func (v *Visibility) Subjects(now time.Time) []string {
	out := make([]string, 0, len(v.ids)+len(v.until))
	for id := range v.ids {
		out = append(out, id)
	}
	for id, exp := range v.until {
		if !v.ids[id] && now.Before(exp) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Recheck returns nil if p's consent to see the patient still holds:
// ENOTFOUND if p is an integration gated by consent that the patient has
// not (or no longer) consented to; nil for every other principal. One
// indexed lookup for a gated integration, none otherwise: an event stream
// calls it for each event it would send, so that a revocation stops the
// next event.
func (a *PatientAccess) Recheck(ctx context.Context, p *vigil.Principal, id string) error {
	if a.Consent == nil || !a.Consent.Gated(p) {
		return nil
	}
	return a.Consent.Allows(ctx, p, id)
}

// DeviceWritesFor returns the patient whose readings device d may send:
// the one patient it is assigned to. patientID, when a reading names one,
// must be that patient. Errors are EFORBIDDEN: d is revoked, is assigned
// to no patient, or to another patient than patientID. This is the write
// side of the rule for devices (they read nothing: Check refuses them);
// ingest applies it to every reading a device sends, whatever the adapter
// it came through (HTTP, FHIR, MQTT, a Bluetooth gateway), with d the
// sending device or, for a gateway's reading of a peripheral it relays
// for, the peripheral.
func DeviceWritesFor(d *vigil.Device, patientID string) (string, error) {
	if !d.Active() {
		return "", vigil.Errorf(vigil.EFORBIDDEN, "device %s is revoked", d.ID)
	}
	if d.SubjectID == "" {
		return "", vigil.Errorf(vigil.EFORBIDDEN, "device %s is not assigned to a patient", d.ID)
	}
	if patientID != "" && patientID != d.SubjectID {
		return "", vigil.Errorf(vigil.EFORBIDDEN, "device %s is not assigned to patient %s", d.ID, patientID)
	}
	return d.SubjectID, nil
}
