package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// sealed returns a sealed patient with made-up ciphertexts (the store
// never looks inside) under KEK kek.
func sealed(id, mrnIndex, kek string) *vigil.SealedPatient {
	p := &vigil.SealedPatient{ID: id, Identity: []byte("identity of " + id), Key: vigil.WrappedKey{KEK: kek, Ciphertext: []byte("key of " + id)}}
	if mrnIndex != "" {
		p.MRNIndex = []byte(mrnIndex)
	}
	return p
}

func sealedIDs(ps []*vigil.SealedPatient) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func testIdentity(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("SealedPatients", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		p := sealed("", "idx-1", "k1")
		if err := s.CreateSealedPatient(ctx, p); err != nil {
			t.Fatalf("CreateSealedPatient: %v", err)
		}
		checkCreated(t, "CreateSealedPatient", p.ID, vigil.PrefixPatient, p.Created)
		got, err := s.SealedPatient(ctx, p.ID)
		if err != nil {
			t.Fatalf("SealedPatient: %v", err)
		}
		if !bytes.Equal(got.Identity, p.Identity) || !bytes.Equal(got.MRNIndex, p.MRNIndex) || got.Key.KEK != "k1" ||
			!bytes.Equal(got.Key.Ciphertext, p.Key.Ciphertext) || !got.Created.Equal(p.Created) {
			t.Errorf("SealedPatient = %+v, want %+v", got, p)
		}
		err = s.CreateSealedPatient(ctx, sealed("", "idx-1", "k1"))
		wantCode(t, "CreateSealedPatient with a taken MRN index", err, vigil.ECONFLICT)
		err = s.CreateSealedPatient(ctx, &vigil.SealedPatient{Identity: []byte("x")})
		wantCode(t, "CreateSealedPatient without a key", err, vigil.EINVALID)
		_, err = s.SealedPatient(ctx, "pat_missing")
		wantCode(t, "SealedPatient of an unknown id", err, vigil.ENOTFOUND)

		for _, id := range []string{"pat_b", "pat_c", "pat_d"} {
			if err := s.CreateSealedPatient(ctx, sealed(id, "", "k1")); err != nil {
				t.Fatalf("CreateSealedPatient(no MRN): %v", err)
			}
		}
		all := slices.Sorted(slices.Values([]string{p.ID, "pat_b", "pat_c", "pat_d"}))
		for _, tt := range []struct {
			name string
			f    vigil.SealedPatientFilter
			want []string
		}{
			{"all", vigil.SealedPatientFilter{}, all},
			{"ids", vigil.SealedPatientFilter{IDs: []string{"pat_c", "pat_b", "pat_x"}}, []string{"pat_b", "pat_c"}},
			{"index", vigil.SealedPatientFilter{MRNIndex: []byte("idx-1")}, []string{p.ID}},
			{"no such index", vigil.SealedPatientFilter{MRNIndex: []byte("idx-2")}, nil},
			{"after and limit", vigil.SealedPatientFilter{After: all[0], Limit: 2}, all[1:3]},
		} {
			ps, err := s.SealedPatients(ctx, tt.f)
			if err != nil {
				t.Fatalf("SealedPatients(%s): %v", tt.name, err)
			}
			if got := sealedIDs(ps); !slices.Equal(got, tt.want) {
				t.Errorf("SealedPatients(%s) = %v, want %v", tt.name, got, tt.want)
			}
		}
	})

	t.Run("SealPlaintext", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		plain := &vigil.Patient{Name: "Plain Name", BirthDate: "1950-01-01", MRN: "PLAIN-1"}
		if err := s.CreatePatient(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSealedPatient(ctx, sealed("pat_sealed", "", "k1")); err != nil {
			t.Fatal(err)
		}
		ps, err := s.PlainPatients(ctx, 10)
		if err != nil || len(ps) != 1 || ps[0].ID != plain.ID || ps[0].Name != plain.Name {
			t.Fatalf("PlainPatients = %v, %v; want only %s", ps, err, plain.ID)
		}
		_, err = s.SealedPatient(ctx, plain.ID)
		wantCode(t, "SealedPatient of a plaintext patient", err, vigil.ENOTFOUND)
		sp := sealed(plain.ID, "idx-plain", "k1")
		if err := s.SealPatient(ctx, sp); err != nil {
			t.Fatalf("SealPatient: %v", err)
		}
		if ps, err := s.PlainPatients(ctx, 10); err != nil || len(ps) != 0 {
			t.Errorf("PlainPatients after sealing = %v, %v; want none", ps, err)
		}
		got, err := s.SealedPatient(ctx, plain.ID)
		if err != nil || !bytes.Equal(got.Identity, sp.Identity) || !got.Created.Equal(plain.Created) {
			t.Errorf("SealedPatient after sealing = %+v, %v; want identity %q, created %s", got, err, sp.Identity, plain.Created)
		}
		wantCode(t, "SealPatient twice", s.SealPatient(ctx, sp), vigil.ENOTFOUND)
	})

	t.Run("Rewrap", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		for _, id := range []string{"pat_1", "pat_2"} {
			if err := s.CreateSealedPatient(ctx, sealed(id, "", "k1")); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.SiteKey(ctx, "index")
		wantCode(t, "SiteKey before creation", err, vigil.ENOTFOUND)
		first := vigil.WrappedKey{KEK: "k1", Ciphertext: []byte("site one")}
		if got, err := s.CreateSiteKey(ctx, "index", first); err != nil || !bytes.Equal(got.Ciphertext, first.Ciphertext) {
			t.Fatalf("CreateSiteKey = %+v, %v", got, err)
		}
		got, err := s.CreateSiteKey(ctx, "index", vigil.WrappedKey{KEK: "k1", Ciphertext: []byte("site two")})
		if err != nil || !bytes.Equal(got.Ciphertext, first.Ciphertext) {
			t.Errorf("CreateSiteKey a second time = %+v, %v; want the first key", got, err)
		}
		owners := func() []string {
			ks, err := s.StaleKeys(ctx, "k2", 0)
			if err != nil {
				t.Fatalf("StaleKeys: %v", err)
			}
			var out []string
			for _, k := range ks {
				out = append(out, k.Owner)
			}
			return out
		}
		if got, want := owners(), []string{"pat_1", "pat_2", vigil.SiteKeyOwner("index")}; !slices.Equal(got, want) {
			t.Errorf("StaleKeys = %v, want %v", got, want)
		}
		to := vigil.WrappedKey{KEK: "k2", Ciphertext: []byte("rewrapped")}
		if ok, err := s.RewrapKey(ctx, "pat_1", vigil.WrappedKey{KEK: "k1", Ciphertext: []byte("stale")}, to); err != nil || ok {
			t.Errorf("RewrapKey from a key that is not stored = %v, %v; want false", ok, err)
		}
		for _, k := range []vigil.KeyRecord{{Owner: "pat_1", Key: sealed("pat_1", "", "k1").Key}, {Owner: vigil.SiteKeyOwner("index"), Key: first}} {
			if ok, err := s.RewrapKey(ctx, k.Owner, k.Key, to); err != nil || !ok {
				t.Errorf("RewrapKey(%s) = %v, %v; want true", k.Owner, ok, err)
			}
		}
		if got, want := owners(), []string{"pat_2"}; !slices.Equal(got, want) {
			t.Errorf("StaleKeys after rewrapping = %v, want %v", got, want)
		}
		if p, err := s.SealedPatient(ctx, "pat_1"); err != nil || p.Key.KEK != "k2" || string(p.Key.Ciphertext) != "rewrapped" {
			t.Errorf("SealedPatient after rewrap = %+v, %v", p, err)
		}
		if k, err := s.SiteKey(ctx, "index"); err != nil || k.KEK != "k2" {
			t.Errorf("SiteKey after rewrap = %+v, %v", k, err)
		}
	})
}

func testErasure(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("LegalHold", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		if err := s.CreateSealedPatient(ctx, sealed("pat_h", "", "k1")); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "SetLegalHold of an unknown patient", s.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: "pat_x", Reason: "r"}), vigil.ENOTFOUND)
		_, err := s.LegalHold(ctx, "pat_h")
		wantCode(t, "LegalHold with none", err, vigil.ENOTFOUND)
		h := &vigil.LegalHold{SubjectID: "pat_h", Reason: "case 12", SetBy: "usr_admin"}
		if err := s.SetLegalHold(ctx, h); err != nil {
			t.Fatal(err)
		}
		got, err := s.LegalHold(ctx, "pat_h")
		if err != nil || got.Reason != "case 12" || got.SetBy != "usr_admin" || !got.Set.Equal(h.Set) || h.Set.IsZero() {
			t.Errorf("LegalHold = %+v, %v; want %+v", got, err, h)
		}
		_, err = s.ShredPatient(ctx, "pat_h", "usr_admin")
		wantCode(t, "ShredPatient under legal hold", err, vigil.ECONFLICT)
		if err := s.ClearLegalHold(ctx, "pat_h"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "ClearLegalHold twice", s.ClearLegalHold(ctx, "pat_h"), vigil.ENOTFOUND)
		if _, err := s.ShredPatient(ctx, "pat_h", "usr_admin"); err != nil {
			t.Errorf("ShredPatient after the hold was cleared: %v", err)
		}
	})

	t.Run("Requests", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		if err := s.CreateSealedPatient(ctx, sealed("pat_r", "", "k1")); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "CreateErasureRequest of an unknown patient", s.CreateErasureRequest(ctx, &vigil.ErasureRequest{SubjectID: "pat_x"}), vigil.ENOTFOUND)
		r := &vigil.ErasureRequest{SubjectID: "pat_r", RequestedBy: "usr_p"}
		if err := s.CreateErasureRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		checkCreated(t, "CreateErasureRequest", r.ID, vigil.PrefixErasureRequest, r.Requested)
		if r.State != vigil.ErasurePending {
			t.Errorf("State = %q, want pending", r.State)
		}
		wantCode(t, "a second pending request", s.CreateErasureRequest(ctx, &vigil.ErasureRequest{SubjectID: "pat_r"}), vigil.ECONFLICT)
		_, err := s.DecideErasureRequest(ctx, r.ID, "maybe", "usr_a", "")
		wantCode(t, "DecideErasureRequest to an unknown state", err, vigil.EINVALID)
		d, err := s.DecideErasureRequest(ctx, r.ID, vigil.ErasureRefused, "usr_a", "records needed")
		if err != nil || d.State != vigil.ErasureRefused || d.DecidedBy != "usr_a" || d.Decided.IsZero() || d.Note != "records needed" {
			t.Errorf("DecideErasureRequest = %+v, %v", d, err)
		}
		_, err = s.DecideErasureRequest(ctx, r.ID, vigil.ErasureApproved, "usr_a", "")
		wantCode(t, "deciding a decided request", err, vigil.EINVALID)
		_, err = s.DecideErasureRequest(ctx, "era_missing", vigil.ErasureApproved, "usr_a", "")
		wantCode(t, "deciding an unknown request", err, vigil.ENOTFOUND)
		r2 := &vigil.ErasureRequest{SubjectID: "pat_r", RequestedBy: "usr_p"}
		if err := s.CreateErasureRequest(ctx, r2); err != nil {
			t.Errorf("a new request after a refusal: %v", err)
		}
		for state, want := range map[string][]string{"": {r.ID, r2.ID}, vigil.ErasurePending: {r2.ID}, vigil.ErasureRefused: {r.ID}} {
			rs, err := s.ErasureRequests(ctx, state)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("ErasureRequests(%q) = %v, want %v", state, got, want)
			}
		}
		got, err := s.ErasureRequest(ctx, r.ID)
		if err != nil || got.State != vigil.ErasureRefused || got.SubjectID != "pat_r" || got.RequestedBy != "usr_p" {
			t.Errorf("ErasureRequest = %+v, %v", got, err)
		}
	})

	t.Run("Erase", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		var g gen
		for _, id := range []string{"pat_e", "pat_keep"} {
			if err := s.CreateSealedPatient(ctx, sealed(id, "idx-"+id, "k1")); err != nil {
				t.Fatal(err)
			}
		}
		dev := &vigil.Device{Kind: "pulse-oximeter", Model: "m", Serial: "s1", SubjectID: "pat_e", TokenHash: hash("dev-e")}
		if err := s.CreateDevice(ctx, dev); err != nil {
			t.Fatal(err)
		}
		u := &vigil.User{Username: "erased.patient", DisplayName: "Erased Patient", Role: vigil.RolePatient, SubjectID: "pat_e", PasswordHash: "$argon2id$x"}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		tok := &vigil.Token{UserID: u.ID, Kind: vigil.TokenSession, Name: "web", Hash: hash("tok-e")}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		var rs []vigil.Reading
		for i := range 5 {
			rs = append(rs, g.reading("pat_e", heartRate, 60+float64(i), at(time.Duration(i)*time.Minute)))
		}
		rs = append(rs, g.bp("pat_e", 120, 80, at(time.Hour)), g.reading("pat_keep", heartRate, 70, at(0)))
		qi := func(sender string) vigil.QuarantineItem {
			return vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: at(0), Source: sourceHTTP, Sender: sender, Reason: "r", Code: vigil.EINVALID, Payload: []byte("raw")}
		}
		if _, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs, Quarantine: []vigil.QuarantineItem{qi(dev.ID), qi(u.ID), qi("dev_other")}}}); err != nil {
			t.Fatal(err)
		}

		e, err := s.ShredPatient(ctx, "pat_e", "usr_admin")
		if err != nil {
			t.Fatalf("ShredPatient: %v", err)
		}
		if e.SubjectID != "pat_e" || e.By != "usr_admin" || e.Erased.IsZero() || !e.Completed.IsZero() ||
			!slices.Equal(e.Senders, slices.Sorted(slices.Values([]string{dev.ID, u.ID}))) {
			t.Errorf("ShredPatient = %+v", e)
		}
		_, err = s.ShredPatient(ctx, "pat_e", "usr_admin")
		wantCode(t, "ShredPatient twice", err, vigil.ENOTFOUND)
		_, err = s.SealedPatient(ctx, "pat_e")
		wantCode(t, "SealedPatient of an erased patient", err, vigil.ENOTFOUND)
		if ks, err := s.StaleKeys(ctx, "none", 0); err != nil || len(ks) != 1 || ks[0].Owner != "pat_keep" {
			t.Errorf("StaleKeys after erasure = %v, %v; want only pat_keep's key", ks, err)
		}
		wantCode(t, "CreateSealedPatient with an erased id", s.CreateSealedPatient(ctx, sealed("pat_e", "", "k1")), vigil.ECONFLICT)
		wantCode(t, "CreatePatient with an erased id", s.CreatePatient(ctx, &vigil.Patient{ID: "pat_e"}), vigil.ECONFLICT)
		if d, err := s.Device(ctx, dev.ID); err != nil || d.SubjectID != "" {
			t.Errorf("device after erasure = %+v, %v; want unassigned", d, err)
		}
		if got, err := s.User(ctx, u.ID); err != nil || !got.Disabled || got.Username != u.ID || got.DisplayName != "" || got.SubjectID != "" || got.PasswordHash != "" {
			t.Errorf("patient's user after erasure = %+v, %v; want disabled, named by id", got, err)
		}
		if got, err := s.Token(ctx, tok.ID); err != nil || got.Revoked == nil {
			t.Errorf("patient's token after erasure = %+v, %v; want revoked", got, err)
		}
		// A reading of the erased patient still in the log is not stored.
		late := g.reading("pat_e", heartRate, 99, at(2*time.Hour))
		if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{late}}}); err != nil || n != 0 {
			t.Errorf("WriteBatches of an erased patient's reading = %d, %v; want 0 stored", n, err)
		}

		total := 0
		for {
			n, err := s.DeleteSubjectData(ctx, "pat_e", 2)
			if err != nil {
				t.Fatalf("DeleteSubjectData: %v", err)
			}
			if n > 2 {
				t.Fatalf("DeleteSubjectData deleted %d, more than its limit 2", n)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != 8 { // 6 readings, 2 quarantine items
			t.Errorf("DeleteSubjectData deleted %d records in all, want 8", total)
		}
		if got := all(t, s, "pat_e"); len(got) != 0 {
			t.Errorf("readings after erasure: %d", len(got))
		}
		if l, err := s.Latest(ctx, "pat_e"); err != nil || len(l) != 0 {
			t.Errorf("Latest after erasure = %v, %v", l, err)
		}
		for _, code := range []string{heartRate, systolic} {
			bs, err := s.Buckets(ctx, vigil.BucketQuery{SubjectID: "pat_e", Code: code, From: at(-time.Hour), To: at(3 * time.Hour), Width: time.Hour})
			if err != nil || len(bs) != 0 {
				t.Errorf("Buckets(%s) after erasure = %v, %v", code, bs, err)
			}
		}
		q, err := s.Quarantined(ctx, vigil.QuarantineFilter{})
		if err != nil || len(q) != 1 || q[0].Sender != "dev_other" {
			t.Errorf("quarantine after erasure = %v, %v; want only dev_other's item", q, err)
		}
		if got := all(t, s, "pat_keep"); len(got) != 1 {
			t.Errorf("another patient's readings after erasure: %d, want 1", len(got))
		}
		if p, err := s.Erasures(ctx, true); err != nil || len(p) != 1 {
			t.Errorf("pending erasures = %v, %v; want 1", p, err)
		}
		if err := s.CompleteErasure(ctx, "pat_e"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "CompleteErasure of no erasure", s.CompleteErasure(ctx, "pat_keep"), vigil.ENOTFOUND)
		if p, err := s.Erasures(ctx, true); err != nil || len(p) != 0 {
			t.Errorf("pending erasures after completion = %v, %v; want none", p, err)
		}
		if got, err := s.Erasure(ctx, "pat_e"); err != nil || got.Completed.IsZero() {
			t.Errorf("Erasure = %+v, %v; want completed", got, err)
		}
		if err := s.Compact(ctx); err != nil && vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
			t.Errorf("Compact: %v", err)
		}
	})
}

func testRetention(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("Readings", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		var g gen
		var rs []vigil.Reading
		for _, sub := range []string{subjectA, subjectB} {
			for i := range 4 {
				rs = append(rs, g.reading(sub, heartRate, 60+float64(i), at(time.Duration(i)*time.Hour)))
			}
			rs = append(rs, g.bp(sub, 120, 80, at(30*time.Minute)), g.bp(sub, 130, 85, at(3*time.Hour)))
		}
		write(t, s, rs...)
		cut := at(2 * time.Hour) // keeps the readings at 2h and 3h
		total := 0
		for {
			n, err := s.DeleteReadingsBefore(ctx, cut, 3)
			if err != nil {
				t.Fatalf("DeleteReadingsBefore: %v", err)
			}
			if n > 3 {
				t.Fatalf("DeleteReadingsBefore deleted %d, over its limit 3", n)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != 6 { // per subject: 0h, 1h, the panel at 0:30
			t.Errorf("deleted %d readings, want 6", total)
		}
		for _, sub := range []string{subjectA, subjectB} {
			for _, r := range all(t, s, sub) {
				if r.Time.Before(cut) {
					t.Errorf("%s: reading at %s kept, before the cut %s", sub, r.Time, cut)
				}
			}
			if n := len(all(t, s, sub)); n != 3 {
				t.Errorf("%s: %d readings kept, want 3", sub, n)
			}
			bs, err := s.Buckets(ctx, vigil.BucketQuery{SubjectID: sub, Code: systolic, From: at(-time.Hour), To: at(4 * time.Hour), Width: time.Hour})
			if err != nil || len(bs) != 1 || bs[0].Max != 130 {
				t.Errorf("%s: systolic buckets after retention = %+v, %v; want the one at 3h", sub, bs, err)
			}
			l, err := s.Latest(ctx, sub)
			if err != nil || len(l) == 0 {
				t.Errorf("%s: Latest after retention = %v, %v; want the newest kept", sub, l, err)
			}
		}
	})

	t.Run("LegalHoldKeepsReadings", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		var g gen
		if err := s.CreateSealedPatient(ctx, sealed("pat_held", "", "k1")); err != nil {
			t.Fatal(err)
		}
		write(t, s, g.reading("pat_held", heartRate, 61, at(0)), g.reading(subjectA, heartRate, 62, at(0)))
		if err := s.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: "pat_held", Reason: "case 9", SetBy: "usr_a"}); err != nil {
			t.Fatal(err)
		}
		if held, err := s.HeldSubjects(ctx); err != nil || !slices.Equal(held, []string{"pat_held"}) {
			t.Errorf("HeldSubjects = %v, %v; want [pat_held]", held, err)
		}
		if n, err := s.DeleteReadingsBefore(ctx, at(time.Hour), 10); err != nil || n != 1 {
			t.Errorf("DeleteReadingsBefore with a patient held = %d, %v; want 1 (the other patient's)", n, err)
		}
		if got := all(t, s, "pat_held"); len(got) != 1 {
			t.Errorf("the held patient's readings: %d, want 1 kept", len(got))
		}
		if err := s.ClearLegalHold(ctx, "pat_held"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeleteReadingsBefore(ctx, at(time.Hour), 10); err != nil || n != 1 {
			t.Errorf("DeleteReadingsBefore once the hold is cleared = %d, %v; want 1", n, err)
		}
	})

	t.Run("Quarantine", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		var items []vigil.QuarantineItem
		for i := range 5 {
			items = append(items, vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: at(time.Duration(i) * time.Hour), Source: sourceHTTP, Reason: "r", Code: vigil.EINVALID, Payload: []byte("x")})
		}
		if _, err := s.WriteBatches(ctx, []vigil.Batch{{Quarantine: items}}); err != nil {
			t.Fatal(err)
		}
		n1, err := s.DeleteQuarantineBefore(ctx, at(3*time.Hour), 2)
		if err != nil || n1 != 2 {
			t.Fatalf("DeleteQuarantineBefore = %d, %v; want 2 (the limit)", n1, err)
		}
		n2, err := s.DeleteQuarantineBefore(ctx, at(3*time.Hour), 2)
		if err != nil || n2 != 1 {
			t.Errorf("DeleteQuarantineBefore again = %d, %v; want 1", n2, err)
		}
		q, err := s.Quarantined(ctx, vigil.QuarantineFilter{})
		if err != nil || len(q) != 2 || q[1].ID != items[3].ID {
			t.Errorf("quarantine kept = %v, %v; want the items at 3h and 4h", q, err)
		}
	})
}

func testAlertEraser(t *testing.T, open func(t *testing.T) vigil.AlertWebhookStore) {
	ctx := t.Context()
	s := open(t)
	save := func(a *vigil.Alert) {
		a.ID = vigil.NewID(vigil.PrefixAlert)
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a},
			Events: []vigil.AlertEvent{{AlertID: a.ID, Time: a.Updated, Type: "opened"}},
			States: map[string][]byte{a.SubjectID: []byte("state")}}); err != nil {
			t.Fatal(err)
		}
	}
	resolved := func(subject, key string, updated time.Time) *vigil.Alert {
		a := newAlert(subject, key, vigil.PriorityLow, updated)
		a.State = vigil.AlertResolved
		a.Resolved = &updated
		return a
	}
	for i := range 3 {
		save(newAlert(subjectA, "k"+string(rune('0'+i)), vigil.PriorityHigh, at(0)))
	}
	oldB, newB, openB := resolved(subjectB, "old", at(0)), resolved(subjectB, "new", at(48*time.Hour)), newAlert(subjectB, "open", vigil.PriorityHigh, at(0))
	for _, a := range []*vigil.Alert{oldB, newB, openB} {
		save(a)
	}
	// A state of the patient under another log partition (written before
	// the partitions were changed) goes too.
	if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectA: []byte("p2")}, Partition: 2}); err != nil {
		t.Fatal(err)
	}

	total := 0
	for {
		n, err := s.DeleteSubjectAlerts(ctx, subjectA, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 3 {
		t.Errorf("DeleteSubjectAlerts deleted %d, want 3", total)
	}
	if as, err := s.Alerts(ctx, vigil.AlertFilter{SubjectIDs: []string{subjectA}}); err != nil || len(as) != 0 {
		t.Errorf("alerts of the erased patient = %v, %v", as, err)
	}
	_, states, err := s.EngineCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := states[subjectA]; ok {
		t.Error("the engine's state of the erased patient is kept")
	}
	if _, ok := states[subjectB]; !ok {
		t.Error("the engine's state of another patient was deleted")
	}
	if pc, ok := s.(vigil.PartitionCheckpointer); ok {
		if _, states, err := pc.PartitionCheckpoint(ctx, 2); err != nil || len(states) != 0 {
			t.Errorf("partition 2's states after the erasure = %q, %v; want none", states, err)
		}
	}

	heldOld := resolved("pat_held", "old", at(0))
	save(heldOld)
	n, err := s.DeleteAlertsBefore(ctx, at(24*time.Hour), []string{"pat_held"}, 10)
	if err != nil || n != 1 {
		t.Errorf("DeleteAlertsBefore = %d, %v; want 1 (the old resolved alert of a patient not held)", n, err)
	}
	as, err := s.Alerts(ctx, vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(slices.Values(alertIDs(as))), slices.Sorted(slices.Values([]string{newB.ID, openB.ID, heldOld.ID})); !slices.Equal(got, want) {
		t.Errorf("alerts kept = %v, want %v (the newer resolved one, the open one, the held patient's)", got, want)
	}
	if n, err := s.DeleteAlertsBefore(ctx, at(24*time.Hour), nil, 10); err != nil || n != 1 {
		t.Errorf("DeleteAlertsBefore once the hold is gone = %d, %v; want 1", n, err)
	}
	if ev, err := s.AlertEvents(ctx, oldB.ID); err != nil || len(ev) != 0 {
		t.Errorf("events of a deleted alert = %v, %v", ev, err)
	}
}
