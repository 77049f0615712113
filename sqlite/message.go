package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

const (
	threadColumns  = "id, subject_id, topic, created_by, created, updated, messages"
	messageColumns = "id, thread_id, subject_id, seq, author_id, author_role, body, alert_id, reading_id, sent"
)

var _ vigil.MessageStore = (*Store)(nil)

// CreateThread stores t with its first message; see vigil.MessageStore.
func (s *Store) CreateThread(ctx context.Context, t *vigil.Thread, first *vigil.Message) error {
	if err := checkThread(t, first); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	now := s.timestamp()
	id := vigil.NewID(vigil.PrefixThread)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", t.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "thread of a patient that does not exist", Err: err}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO threads ("+threadColumns+") VALUES (?, ?, ?, ?, ?, ?, 0)",
			id, t.SubjectID, t.Topic, t.CreatedBy, now.UnixMicro(), now.UnixMicro()); err != nil {
			return constraint(err)
		}
		m := *first
		m.ThreadID = id
		if err := addMessage(ctx, tx, &m, now); err != nil {
			return err
		}
		*first = m
		return nil
	})
	if err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	t.ID, t.Created, t.Updated, t.Messages, t.Unread = id, now, now, 1, 0
	return nil
}

// checkThread checks a new thread and its first message.
func checkThread(t *vigil.Thread, first *vigil.Message) error {
	if err := vigil.CheckStoredTopic(t.Topic); err != nil {
		return err
	}
	if t.SubjectID == "" || t.CreatedBy == "" {
		return vigil.Errorf(vigil.EINVALID, "thread without a patient or an author")
	}
	if first == nil || first.SubjectID != t.SubjectID {
		return vigil.Errorf(vigil.EINVALID, "the first message must be of the thread's patient")
	}
	return vigil.CheckStoredMessage(first)
}

// AddMessage appends m to its thread; see vigil.MessageStore.
func (s *Store) AddMessage(ctx context.Context, m *vigil.Message) error {
	if err := vigil.CheckStoredMessage(m); err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	now := s.timestamp()
	c := *m
	err := s.write(ctx, func(tx *sql.Tx) error {
		return addMessage(ctx, tx, &c, now)
	})
	if err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	*m = c
	return nil
}

// addMessage appends m to thread m.ThreadID in tx at time now and moves
// the author's read state to it.
func addMessage(ctx context.Context, tx *sql.Tx, m *vigil.Message, now time.Time) error {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE threads SET messages = messages + 1, updated = ?
		WHERE id = ? AND subject_id = ? RETURNING messages`, now.UnixMicro(), m.ThreadID, m.SubjectID).Scan(&seq)
	if err != nil {
		return notFound(err, "thread")
	}
	m.ID, m.Seq, m.Sent = vigil.NewID(vigil.PrefixMessage), seq, now
	if _, err := tx.ExecContext(ctx, "INSERT INTO messages ("+messageColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		m.ID, m.ThreadID, m.SubjectID, m.Seq, m.AuthorID, string(m.AuthorRole), m.Body, m.AlertID, m.ReadingID, now.UnixMicro()); err != nil {
		return constraint(err)
	}
	return markRead(ctx, tx, m.ThreadID, m.AuthorID, seq)
}

// markRead moves reader's read state of a thread forward to seq.
func markRead(ctx context.Context, tx *sql.Tx, threadID, reader string, seq int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO message_reads (thread_id, reader, seq) VALUES (?, ?, ?)
		ON CONFLICT (thread_id, reader) DO UPDATE SET seq = max(seq, excluded.seq)`, threadID, reader, seq)
	return err
}

// Thread returns one thread; ENOTFOUND if none.
func (s *Store) Thread(ctx context.Context, id string) (*vigil.Thread, error) {
	t, err := scanThread(s.r.QueryRowContext(ctx, "SELECT "+threadColumns+", 0 FROM threads WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get thread: %w", notFound(err, "thread"))
	}
	return t, nil
}

// Threads returns the threads matching f, most recently updated first,
// with f.Reader's unread counts.
func (s *Store) Threads(ctx context.Context, f vigil.ThreadFilter) ([]*vigil.Thread, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = vigil.DefaultThreadLimit
	}
	q := "SELECT " + threadColumns + `, (SELECT count(*) FROM messages m WHERE m.thread_id = t.id AND m.author_id != ?1
		AND m.seq > COALESCE((SELECT r.seq FROM message_reads r WHERE r.thread_id = t.id AND r.reader = ?1), 0))
		FROM threads t WHERE (?2 = '' OR subject_id = ?2) ORDER BY updated DESC, id DESC LIMIT ?3`
	rows, err := s.r.QueryContext(ctx, q, f.Reader, f.SubjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	defer rows.Close()
	var out []*vigil.Thread
	for rows.Next() {
		t, err := scanThread(rows)
		if err != nil {
			return nil, fmt.Errorf("list threads: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	return out, nil
}

func scanThread(sc scanner) (*vigil.Thread, error) {
	var t vigil.Thread
	var created, updated sql.NullInt64
	if err := sc.Scan(&t.ID, &t.SubjectID, &t.Topic, &t.CreatedBy, &created, &updated, &t.Messages, &t.Unread); err != nil {
		return nil, err
	}
	t.Created, t.Updated = timeOf(created), timeOf(updated)
	return &t, nil
}

func scanMessage(sc scanner) (*vigil.Message, error) {
	var m vigil.Message
	var role string
	var sent sql.NullInt64
	if err := sc.Scan(&m.ID, &m.ThreadID, &m.SubjectID, &m.Seq, &m.AuthorID, &role, &m.Body, &m.AlertID, &m.ReadingID, &sent); err != nil {
		return nil, err
	}
	m.AuthorRole, m.Sent = vigil.Role(role), timeOf(sent)
	return &m, nil
}

// Message returns one message; ENOTFOUND if none.
func (s *Store) Message(ctx context.Context, id string) (*vigil.Message, error) {
	m, err := scanMessage(s.r.QueryRowContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get message: %w", notFound(err, "message"))
	}
	return m, nil
}

// Messages returns a thread's messages after seq after, oldest first.
func (s *Store) Messages(ctx context.Context, threadID string, after int64, limit int) ([]*vigil.Message, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+messageColumns+" FROM messages WHERE thread_id = ? AND seq > ? ORDER BY seq LIMIT ?",
		threadID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []*vigil.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return out, nil
}

// MarkRead moves reader's read state of a thread forward to seq.
func (s *Store) MarkRead(ctx context.Context, threadID, reader string, seq int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "thread", "SELECT 1 FROM threads WHERE id = ?", threadID); err != nil {
			return err
		}
		return markRead(ctx, tx, threadID, reader, seq)
	})
	if err != nil {
		return fmt.Errorf("mark read: %w", err)
	}
	return nil
}

// UnreadBySubject counts, per patient of subjects, the messages reader
// has neither written nor read.
func (s *Store) UnreadBySubject(ctx context.Context, reader string, subjects []string) (map[string]int, error) {
	out := map[string]int{}
	if len(subjects) == 0 {
		return out, nil
	}
	b, err := json.Marshal(subjects)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT m.subject_id, count(*) FROM messages m
		LEFT JOIN message_reads r ON r.thread_id = m.thread_id AND r.reader = ?1
		WHERE m.subject_id IN (SELECT value FROM json_each(?2)) AND m.author_id != ?1 AND m.seq > COALESCE(r.seq, 0)
		GROUP BY m.subject_id`, reader, string(b))
	if err != nil {
		return nil, fmt.Errorf("count unread messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count unread messages: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// CountMessagesBy counts the messages author sent at or after since.
func (s *Store) CountMessagesBy(ctx context.Context, author string, since time.Time) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM messages WHERE author_id = ? AND sent >= ?",
		author, since.UnixMicro()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return n, nil
}
