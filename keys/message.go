package keys

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
)

// sealedText starts a message body or thread topic sealed by Messages; a
// text without it is one kept in plaintext (of a patient whose identity
// is not sealed) and is returned as it is.
const sealedText = "vigil-sealed-1:"

// messageAAD binds a sealed text to its patient and field: a ciphertext
// copied to another patient's thread, or from a topic to a body, does not
// open.
func messageAAD(subjectID, field string) []byte {
	return []byte("vigil message\x00" + field + "\x00" + subjectID)
}

// Messages is a vigil.MessageStore whose thread topics and message bodies
// are sealed under the patient's own data key (decision 29), as identity
// is: free text a patient or a clinician writes names people and
// conditions, and erasing the patient destroys the key, so a copy left in
// a backup or a write-ahead log does not open. Every other field (ids,
// times, authors, references) is stored as it is. Texts of a patient kept
// in plaintext (not yet sealed: see Store.SealPlaintext) stay plaintext.
// It is safe for concurrent use.
type Messages struct {
	vigil.MessageStore
	Identity vigil.IdentityStore
	Keys     *Keyring
}

var _ vigil.MessageStore = (*Messages)(nil)

// dataKey returns the patient's data key; nil (no error) if the patient's
// identity is kept in plaintext.
func (s *Messages) dataKey(ctx context.Context, subjectID string) ([]byte, error) {
	sp, err := s.Identity.SealedPatient(ctx, subjectID)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Keys.DataKey(ctx, subjectID, sp.Key)
}

func (s *Messages) seal(dk []byte, subjectID, field, text string) (string, error) {
	if dk == nil {
		return text, nil
	}
	ct, err := Seal(dk, []byte(text), messageAAD(subjectID, field))
	if err != nil {
		return "", err
	}
	return sealedText + base64.RawStdEncoding.EncodeToString(ct), nil
}

// open returns the plaintext of a stored text; dk is fetched on first need.
func (s *Messages) open(ctx context.Context, dk *[]byte, subjectID, field, stored string) (string, error) {
	rest, ok := strings.CutPrefix(stored, sealedText)
	if !ok {
		return stored, nil
	}
	if *dk == nil {
		k, err := s.dataKey(ctx, subjectID)
		if err != nil {
			return "", err
		}
		if k == nil {
			return "", vigil.Errorf(vigil.ENOTFOUND, "the key of patient %s is gone", subjectID)
		}
		*dk = k
	}
	ct, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("open %s of %s: %w", field, subjectID, err)
	}
	b, err := Open(*dk, ct, messageAAD(subjectID, field))
	if err != nil {
		return "", fmt.Errorf("open %s of %s: %w", field, subjectID, err)
	}
	return string(b), nil
}

// CreateThread stores t and first with topic and body sealed.
func (s *Messages) CreateThread(ctx context.Context, t *vigil.Thread, first *vigil.Message) error {
	if err := vigil.CheckTopic(t.Topic); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	if first == nil {
		return fmt.Errorf("create thread: %w", vigil.Errorf(vigil.EINVALID, "a thread needs a first message"))
	}
	if err := vigil.CheckMessage(first); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	dk, err := s.dataKey(ctx, t.SubjectID)
	if err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	st, sm := *t, *first
	if st.Topic, err = s.seal(dk, t.SubjectID, "topic", t.Topic); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	if sm.Body, err = s.seal(dk, first.SubjectID, "body", first.Body); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	if err := s.MessageStore.CreateThread(ctx, &st, &sm); err != nil {
		return err
	}
	st.Topic, sm.Body = t.Topic, first.Body
	*t, *first = st, sm
	return nil
}

// AddMessage stores m with its body sealed.
func (s *Messages) AddMessage(ctx context.Context, m *vigil.Message) error {
	if err := vigil.CheckMessage(m); err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	dk, err := s.dataKey(ctx, m.SubjectID)
	if err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	sm := *m
	if sm.Body, err = s.seal(dk, m.SubjectID, "body", m.Body); err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	if err := s.MessageStore.AddMessage(ctx, &sm); err != nil {
		return err
	}
	sm.Body = m.Body
	*m = sm
	return nil
}

// Thread returns one thread with its topic opened.
func (s *Messages) Thread(ctx context.Context, id string) (*vigil.Thread, error) {
	t, err := s.MessageStore.Thread(ctx, id)
	if err != nil {
		return nil, err
	}
	var dk []byte
	if t.Topic, err = s.open(ctx, &dk, t.SubjectID, "topic", t.Topic); err != nil {
		return nil, fmt.Errorf("get thread: %w", err)
	}
	return t, nil
}

// Threads returns threads with their topics opened.
func (s *Messages) Threads(ctx context.Context, f vigil.ThreadFilter) ([]*vigil.Thread, error) {
	ts, err := s.MessageStore.Threads(ctx, f)
	if err != nil {
		return nil, err
	}
	keys := map[string][]byte{}
	for _, t := range ts {
		dk := keys[t.SubjectID]
		if t.Topic, err = s.open(ctx, &dk, t.SubjectID, "topic", t.Topic); err != nil {
			return nil, fmt.Errorf("list threads: %w", err)
		}
		keys[t.SubjectID] = dk
	}
	return ts, nil
}

// Message returns one message with its body opened.
func (s *Messages) Message(ctx context.Context, id string) (*vigil.Message, error) {
	m, err := s.MessageStore.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	var dk []byte
	if m.Body, err = s.open(ctx, &dk, m.SubjectID, "body", m.Body); err != nil {
		return nil, fmt.Errorf("get message: %w", err)
	}
	return m, nil
}

// Messages returns messages with their bodies opened.
func (s *Messages) Messages(ctx context.Context, threadID string, after int64, limit int) ([]*vigil.Message, error) {
	ms, err := s.MessageStore.Messages(ctx, threadID, after, limit)
	if err != nil {
		return nil, err
	}
	var dk []byte
	for _, m := range ms {
		if m.Body, err = s.open(ctx, &dk, m.SubjectID, "body", m.Body); err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
	}
	return ms, nil
}
