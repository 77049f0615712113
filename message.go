package vigil

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// Secure messages (decision 29): threads between a patient and their care
// team. A thread belongs to one patient; everyone who may see the patient
// as a person of their care (the patient themself, a clinician of one of
// the patient's teams) reads and writes it, and each reader has a read
// state of their own. Admins and integrations have no access.

// ID prefixes of threads and messages.
const (
	PrefixThread  = "thr"
	PrefixMessage = "msg"
)

// Bounds of what a client can make Vigil store as messages.
const (
	// MaxMessageBytes is the longest message body, in bytes of UTF-8.
	MaxMessageBytes = 4000
	// MaxTopicBytes is the longest thread topic, in bytes of UTF-8.
	MaxTopicBytes = 200
	// MaxStoredMessageBytes and MaxStoredTopicBytes bound a body and a
	// topic as a store keeps them: sealed (package keys), a text is
	// longer than as written (nonce, tag, base64), and a store checks
	// these bounds, the API the ones above.
	MaxStoredMessageBytes = 6000
	MaxStoredTopicBytes   = 400
)

// Thread is a conversation about one patient. Unread is filled by
// MessageStore.Threads for the reader its filter names.
type Thread struct {
	ID        string    `json:"id"`
	SubjectID string    `json:"patient_id"`
	Topic     string    `json:"topic"`
	CreatedBy string    `json:"created_by"` // user id
	Created   time.Time `json:"created"`
	// Updated is when the newest message was sent.
	Updated time.Time `json:"updated"`
	// Messages counts the thread's messages.
	Messages int `json:"messages"`
	// Unread counts the messages the reader did not write and has not read.
	Unread int `json:"unread"`
}

// Message is one message of a thread. AlertID and ReadingID optionally
// reference an alert or a reading of the same patient; the API checks that
// they belong to the patient before storing them.
type Message struct {
	ID         string    `json:"id"`
	ThreadID   string    `json:"thread_id"`
	SubjectID  string    `json:"patient_id"`
	Seq        int64     `json:"seq"` // position in the thread, from 1
	AuthorID   string    `json:"author_id"`
	AuthorRole Role      `json:"author_role"`
	Body       string    `json:"body"`
	AlertID    string    `json:"alert_id,omitempty"`
	ReadingID  int64     `json:"reading_id,omitempty"`
	Sent       time.Time `json:"sent"`
}

// CheckMessage returns EINVALID unless m has a patient, an author and a
// body that is valid UTF-8, not blank and at most MaxMessageBytes long
// (ETOOLARGE above). It does not check the references.
func CheckMessage(m *Message) error { return checkMessage(m, MaxMessageBytes) }

// CheckStoredMessage is CheckMessage with the bound of a stored body,
// MaxStoredMessageBytes.
func CheckStoredMessage(m *Message) error { return checkMessage(m, MaxStoredMessageBytes) }

func checkMessage(m *Message, limit int) error {
	switch {
	case m.SubjectID == "":
		return Errorf(EINVALID, "message without a patient")
	case m.AuthorID == "":
		return Errorf(EINVALID, "message without an author")
	case !utf8.ValidString(m.Body):
		return Errorf(EINVALID, "message body is not valid UTF-8")
	case blank(m.Body):
		return Errorf(EINVALID, "message body is empty")
	case len(m.Body) > limit:
		return Errorf(ETOOLARGE, "message body is longer than %d bytes", limit)
	case m.ReadingID < 0:
		return Errorf(EINVALID, "reading id must be positive")
	}
	return nil
}

// CheckTopic returns EINVALID unless topic is valid UTF-8, not blank and
// at most MaxTopicBytes long.
func CheckTopic(topic string) error { return checkTopic(topic, MaxTopicBytes) }

// CheckStoredTopic is CheckTopic with the bound of a stored topic,
// MaxStoredTopicBytes.
func CheckStoredTopic(topic string) error { return checkTopic(topic, MaxStoredTopicBytes) }

func checkTopic(topic string, limit int) error {
	switch {
	case !utf8.ValidString(topic):
		return Errorf(EINVALID, "topic is not valid UTF-8")
	case blank(topic):
		return Errorf(EINVALID, "topic is empty")
	case len(topic) > limit:
		return Errorf(ETOOLARGE, "topic is longer than %d bytes", limit)
	}
	return nil
}

// blank reports whether s holds nothing but white space.
func blank(s string) bool { return strings.TrimSpace(s) == "" }

// ThreadFilter selects threads. SubjectID "" matches every patient (with
// Subjects, those of Subjects only); Reader is the user whose unread count
// Thread.Unread reports.
type ThreadFilter struct {
	SubjectID string
	Reader    string
	Limit     int // 0: DefaultThreadLimit
}

// DefaultThreadLimit is how many threads MessageStore.Threads returns at
// most unless the filter says fewer.
const DefaultThreadLimit = 100

// MessageStore keeps message threads, their messages and every reader's
// read state. It is apart from Store (a store implements both), as
// ConsentStore is. All methods are safe for concurrent use.
type MessageStore interface {
	// CreateThread stores t with first as its first message, in one
	// transaction, setting t.ID, t.Created, t.Updated and first's ID,
	// ThreadID, Seq and Sent; the author has read it. EINVALID (ETOOLARGE)
	// if CheckStoredTopic or CheckStoredMessage refuses them, if first's patient is not
	// t's, or if the patient does not exist.
	CreateThread(ctx context.Context, t *Thread, first *Message) error
	// Thread returns one thread (Unread 0); ENOTFOUND if none.
	Thread(ctx context.Context, id string) (*Thread, error)
	// Threads returns the threads matching f, the most recently updated
	// first.
	Threads(ctx context.Context, f ThreadFilter) ([]*Thread, error)
	// AddMessage appends m to the thread m.ThreadID, setting m.ID, m.Seq
	// and m.Sent; the author has read the thread up to m. ENOTFOUND if
	// the thread does not exist or is not of m.SubjectID's patient;
	// EINVALID (ETOOLARGE) if CheckStoredMessage refuses m.
	AddMessage(ctx context.Context, m *Message) error
	// Message returns one message; ENOTFOUND if none.
	Message(ctx context.Context, id string) (*Message, error)
	// Messages returns the messages of a thread after seq after, oldest
	// first, at most limit of them (0: all).
	Messages(ctx context.Context, threadID string, after int64, limit int) ([]*Message, error)
	// MarkRead records that reader has read the thread up to message seq.
	// A read state only moves forward: an older seq changes nothing.
	// ENOTFOUND if the thread does not exist.
	MarkRead(ctx context.Context, threadID, reader string, seq int64) error
	// UnreadBySubject returns, for each of subjects with any, how many
	// messages reader has neither written nor read (the worklist).
	UnreadBySubject(ctx context.Context, reader string, subjects []string) (map[string]int, error)
	// CountMessagesBy counts the messages author sent at or after since
	// (the rate bound of the API).
	CountMessagesBy(ctx context.Context, author string, since time.Time) (int, error)
}
