package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

const (
	threadColumns  = "id, subject_id, topic, created_by, created, updated, messages"
	messageColumns = "id, thread_id, subject_id, seq, author_id, author_role, body, alert_id, reading_id, sent"
)

var _ vigil.MessageStore = (*Store)(nil)

// CreateThread stores t with its first message; see vigil.MessageStore.
func (s *Store) CreateThread(ctx context.Context, t *vigil.Thread, first *vigil.Message) error {
	if err := vigil.CheckStoredTopic(t.Topic); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	if t.SubjectID == "" || t.CreatedBy == "" {
		return fmt.Errorf("create thread: %w", vigil.Errorf(vigil.EINVALID, "thread without a patient or an author"))
	}
	if first == nil || first.SubjectID != t.SubjectID {
		return fmt.Errorf("create thread: %w", vigil.Errorf(vigil.EINVALID, "the first message must be of the thread's patient"))
	}
	if err := vigil.CheckStoredMessage(first); err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	id := vigil.NewID(vigil.PrefixThread)
	var now time.Time
	var m vigil.Message
	err := s.write(ctx, func(tx pgx.Tx) error {
		now = s.timestamp()
		// The patient's row is shared-locked: an erasure waits for the
		// thread, and then deletes it.
		var pid string
		if err := tx.QueryRow(ctx, "SELECT id FROM patients WHERE id = $1 FOR SHARE", t.SubjectID).Scan(&pid); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return &vigil.Error{Code: vigil.EINVALID, Message: "thread of a patient that does not exist", Err: notFound(err, "patient")}
			}
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO threads ("+threadColumns+") VALUES ($1, $2, $3, $4, $5, $5, 0)",
			id, t.SubjectID, t.Topic, t.CreatedBy, now); err != nil {
			return constraint(err)
		}
		m = *first
		m.ThreadID = id
		return addMessage(ctx, tx, &m, now)
	})
	if err != nil {
		return fmt.Errorf("create thread: %w", err)
	}
	*first = m
	t.ID, t.Created, t.Updated, t.Messages, t.Unread = id, now, now, 1, 0
	return nil
}

// AddMessage appends m to its thread; see vigil.MessageStore.
func (s *Store) AddMessage(ctx context.Context, m *vigil.Message) error {
	if err := vigil.CheckStoredMessage(m); err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	var c vigil.Message
	err := s.write(ctx, func(tx pgx.Tx) error {
		c = *m
		return addMessage(ctx, tx, &c, s.timestamp())
	})
	if err != nil {
		return fmt.Errorf("add message: %w", err)
	}
	*m = c
	return nil
}

// addMessage appends m to thread m.ThreadID in tx at time now and moves
// the author's read state to it. The thread's row lock orders concurrent
// messages.
func addMessage(ctx context.Context, tx pgx.Tx, m *vigil.Message, now time.Time) error {
	var seq int64
	err := tx.QueryRow(ctx, `UPDATE threads SET messages = messages + 1, updated = $1
		WHERE id = $2 AND subject_id = $3 RETURNING messages`, now, m.ThreadID, m.SubjectID).Scan(&seq)
	if err != nil {
		return notFound(err, "thread")
	}
	m.ID, m.Seq, m.Sent = vigil.NewID(vigil.PrefixMessage), seq, now
	if _, err := tx.Exec(ctx, "INSERT INTO messages ("+messageColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		m.ID, m.ThreadID, m.SubjectID, m.Seq, m.AuthorID, string(m.AuthorRole), m.Body, m.AlertID, m.ReadingID, now); err != nil {
		return constraint(err)
	}
	return markRead(ctx, tx, m.ThreadID, m.AuthorID, seq)
}

// markRead moves reader's read state of a thread forward to seq.
func markRead(ctx context.Context, tx pgx.Tx, threadID, reader string, seq int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO message_reads (thread_id, reader, seq) VALUES ($1, $2, $3)
		ON CONFLICT (thread_id, reader) DO UPDATE SET seq = greatest(message_reads.seq, excluded.seq)`, threadID, reader, seq)
	return err
}

// Thread returns one thread; ENOTFOUND if none.
func (s *Store) Thread(ctx context.Context, id string) (*vigil.Thread, error) {
	t, err := scanThread(s.pool.QueryRow(ctx, "SELECT "+threadColumns+", 0 FROM threads WHERE id = $1", id))
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
	q := "SELECT " + threadColumns + `, (SELECT count(*) FROM messages m WHERE m.thread_id = t.id AND m.author_id <> $1
		AND m.seq > COALESCE((SELECT r.seq FROM message_reads r WHERE r.thread_id = t.id AND r.reader = $1), 0))
		FROM threads t WHERE ($2 = '' OR subject_id = $2) ORDER BY updated DESC, id DESC LIMIT $3`
	ts, err := queryAll(ctx, s.pool, scanThread, q, f.Reader, f.SubjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	return ts, nil
}

func scanThread(row pgx.Row) (*vigil.Thread, error) {
	var t vigil.Thread
	var messages, unread int64
	if err := row.Scan(&t.ID, &t.SubjectID, &t.Topic, &t.CreatedBy, &t.Created, &t.Updated, &messages, &unread); err != nil {
		return nil, err
	}
	t.Created, t.Updated = t.Created.UTC(), t.Updated.UTC()
	t.Messages, t.Unread = int(messages), int(unread)
	return &t, nil
}

func scanMessage(row pgx.Row) (*vigil.Message, error) {
	var m vigil.Message
	var role string
	if err := row.Scan(&m.ID, &m.ThreadID, &m.SubjectID, &m.Seq, &m.AuthorID, &role, &m.Body, &m.AlertID, &m.ReadingID, &m.Sent); err != nil {
		return nil, err
	}
	m.AuthorRole, m.Sent = vigil.Role(role), m.Sent.UTC()
	return &m, nil
}

// Message returns one message; ENOTFOUND if none.
func (s *Store) Message(ctx context.Context, id string) (*vigil.Message, error) {
	m, err := scanMessage(s.pool.QueryRow(ctx, "SELECT "+messageColumns+" FROM messages WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get message: %w", notFound(err, "message"))
	}
	return m, nil
}

// Messages returns a thread's messages after seq after, oldest first.
func (s *Store) Messages(ctx context.Context, threadID string, after int64, limit int) ([]*vigil.Message, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	ms, err := queryAll(ctx, s.pool, scanMessage, "SELECT "+messageColumns+
		" FROM messages WHERE thread_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", threadID, after, lim)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return ms, nil
}

// MarkRead moves reader's read state of a thread forward to seq.
func (s *Store) MarkRead(ctx context.Context, threadID, reader string, seq int64) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM threads WHERE id = $1)", threadID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return vigil.Errorf(vigil.ENOTFOUND, "thread not found")
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
	rows, err := s.pool.Query(ctx, `SELECT m.subject_id, count(*) FROM messages m
		LEFT JOIN message_reads r ON r.thread_id = m.thread_id AND r.reader = $1
		WHERE m.subject_id = ANY($2) AND m.author_id <> $1 AND m.seq > COALESCE(r.seq, 0)
		GROUP BY m.subject_id`, reader, subjects)
	if err != nil {
		return nil, fmt.Errorf("count unread messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count unread messages: %w", err)
		}
		out[id] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count unread messages: %w", err)
	}
	return out, nil
}

// CountMessagesBy counts the messages author sent at or after since.
func (s *Store) CountMessagesBy(ctx context.Context, author string, since time.Time) (int, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM messages WHERE author_id = $1 AND sent >= $2", author, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("count messages: %w", err)
	}
	return int(n), nil
}
