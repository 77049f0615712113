package keys_test

import (
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/storetest"
)

// sealedMessages is a store with sealed identity and sealed messages, as
// a node runs them.
type sealedMessages struct {
	*keys.Store
	*messages
}

// messages names the embedded field apart from its method Messages.
type messages = keys.Messages

func openMessages(t *testing.T, dir string) sealedMessages {
	s, db := open(t, dir)
	return sealedMessages{Store: s, messages: &keys.Messages{MessageStore: db, Identity: db, Keys: s.Keyring()}}
}

// TestMessageSuite runs the message suite through the sealing stores:
// messages behave as the contract says with topics and bodies encrypted.
func TestMessageSuite(t *testing.T) {
	storetest.RunMessages(t, func(t *testing.T) storetest.MessageStore { return openMessages(t, t.TempDir()) })
}

// TestMessagesSealedAtRest: what a patient writes is not in the database's
// files, reads back whole, and a ciphertext moved to another patient's
// thread does not open.
func TestMessagesSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s := openMessages(t, dir)
	ctx := t.Context()
	var pats []string
	for _, mrn := range []string{"MSG-1", "MSG-2"} {
		p := &vigil.Patient{Name: "Patient " + mrn, MRN: mrn}
		if err := s.CreatePatient(ctx, p); err != nil {
			t.Fatal(err)
		}
		pats = append(pats, p.ID)
	}
	const topic, body = "Palpitations Quagmirefield", "My heart races at night, Dr Wobblethorpe"
	th := &vigil.Thread{SubjectID: pats[0], Topic: topic, CreatedBy: "usr_p"}
	m := &vigil.Message{SubjectID: pats[0], AuthorID: "usr_p", AuthorRole: vigil.RolePatient, Body: body}
	if err := s.CreateThread(ctx, th, m); err != nil {
		t.Fatal(err)
	}
	if th.Topic != topic || m.Body != body {
		t.Errorf("CreateThread handed back %q, %q; want the plaintext", th.Topic, m.Body)
	}
	got, err := s.Thread(ctx, th.ID)
	if err != nil || got.Topic != topic {
		t.Fatalf("Thread = %+v, %v; want topic %q", got, err, topic)
	}
	ms, err := s.messages.Messages(ctx, th.ID, 0, 0)
	if err != nil || len(ms) != 1 || ms[0].Body != body {
		t.Fatalf("Messages = %+v, %v; want %q", ms, err, body)
	}
	db := s.messages.MessageStore
	raw, err := db.Messages(ctx, th.ID, 0, 0)
	if err != nil || len(raw) != 1 || raw[0].Body == body {
		t.Fatalf("stored body %v, %v: want a ciphertext", raw, err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{topic, body} {
		if hits := fileHolds(t, dir, []byte(v)); len(hits) > 0 {
			t.Errorf("%q in plaintext in %v", v, hits)
		}
	}
	// The longest body and topic, in multi-byte characters, fit sealed.
	longTopic, longBody := strings.Repeat("é", vigil.MaxTopicBytes/2), strings.Repeat("€", vigil.MaxMessageBytes/3)
	long := &vigil.Message{SubjectID: pats[0], AuthorID: "usr_p", AuthorRole: vigil.RolePatient, Body: longBody}
	if err := s.CreateThread(ctx, &vigil.Thread{SubjectID: pats[0], Topic: longTopic, CreatedBy: "usr_p"}, long); err != nil {
		t.Fatalf("the longest body and topic, sealed: %v", err)
	}
	if ms, err := s.messages.Messages(ctx, long.ThreadID, 0, 0); err != nil || len(ms) != 1 || ms[0].Body != longBody {
		t.Errorf("the longest body read back: %v", err)
	}
	if err := s.AddMessage(ctx, &vigil.Message{ThreadID: th.ID, SubjectID: pats[0], AuthorID: "usr_p", Body: longBody + "xx"}); vigil.ErrorCode(err) != vigil.ETOOLARGE {
		t.Errorf("a body over the bound: %v; want ETOOLARGE", err)
	}
	// The same ciphertext stored in another patient's thread does not open.
	other := &vigil.Thread{SubjectID: pats[1], Topic: "t", CreatedBy: "usr_q"}
	moved := &vigil.Message{SubjectID: pats[1], AuthorID: "usr_q", AuthorRole: vigil.RolePatient, Body: raw[0].Body}
	if err := db.CreateThread(ctx, other, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := s.messages.Messages(ctx, other.ID, 0, 0); err == nil {
		t.Error("a body sealed for one patient opened in another patient's thread")
	}
}
