package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// MessageStore is a store of both identity and messages, as the suite of
// RunMessages needs (threads belong to patients).
type MessageStore interface {
	vigil.Store
	vigil.MessageStore
}

// RunMessages runs the suite of vigil.MessageStore. open is as in Run.
func RunMessages(t *testing.T, open func(t *testing.T) MessageStore) {
	t.Run("ThreadReadState", func(t *testing.T) { testThreadReadState(t, open) })
	t.Run("Invalid", func(t *testing.T) { testMessageInvalid(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testMessageConcurrent(t, open) })
	t.Run("Erasure", func(t *testing.T) { testMessageErasure(t, open) })
}

// newThread creates a thread of subject by author with one message.
func newThread(t *testing.T, s vigil.MessageStore, subject, author string, role vigil.Role, topic, body string) (*vigil.Thread, *vigil.Message) {
	t.Helper()
	th := &vigil.Thread{SubjectID: subject, Topic: topic, CreatedBy: author}
	m := &vigil.Message{SubjectID: subject, AuthorID: author, AuthorRole: role, Body: body}
	if err := s.CreateThread(t.Context(), th, m); err != nil {
		t.Fatalf("CreateThread(%s): %v", topic, err)
	}
	return th, m
}

func addMessage(t *testing.T, s vigil.MessageStore, th *vigil.Thread, author string, role vigil.Role, body string) *vigil.Message {
	t.Helper()
	m := &vigil.Message{ThreadID: th.ID, SubjectID: th.SubjectID, AuthorID: author, AuthorRole: role, Body: body}
	if err := s.AddMessage(t.Context(), m); err != nil {
		t.Fatalf("AddMessage(%q): %v", body, err)
	}
	return m
}

// unread returns reader's unread count of thread id among subject's threads.
func unread(t *testing.T, s vigil.MessageStore, subject, reader, id string) int {
	t.Helper()
	ts, err := s.Threads(t.Context(), vigil.ThreadFilter{SubjectID: subject, Reader: reader})
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range ts {
		if th.ID == id {
			return th.Unread
		}
	}
	t.Fatalf("thread %s not among the threads of %s", id, subject)
	return 0
}

func testThreadReadState(t *testing.T, open func(t *testing.T) MessageStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-1")
	other := newPatient(t, s, "M-2")
	const patUser, doc, doc2 = "usr_pat", "usr_doc", "usr_doc2"

	th, first := newThread(t, s, pat, patUser, vigil.RolePatient, "Dizzy", "I feel dizzy since this morning.")
	if th.ID == "" || th.Created.IsZero() || th.Messages != 1 || first.ID == "" || first.Seq != 1 || first.ThreadID != th.ID || first.Sent.IsZero() {
		t.Fatalf("CreateThread: thread %+v, first %+v; want ids, times, seq 1", th, first)
	}
	// The author has read their own message; the clinicians have not.
	if n := unread(t, s, pat, patUser, th.ID); n != 0 {
		t.Errorf("author's unread = %d; want 0", n)
	}
	if n := unread(t, s, pat, doc, th.ID); n != 1 {
		t.Errorf("clinician's unread = %d; want 1", n)
	}
	reply := addMessage(t, s, th, doc, vigil.RoleClinician, "Please take your blood pressure now.")
	if reply.Seq != 2 || !reply.Sent.After(first.Sent) && !reply.Sent.Equal(first.Sent) {
		t.Errorf("reply %+v; want seq 2, sent not before the first", reply)
	}
	// Writing reads the thread up to one's own message.
	if n := unread(t, s, pat, doc, th.ID); n != 0 {
		t.Errorf("clinician's unread after replying = %d; want 0", n)
	}
	if n := unread(t, s, pat, doc2, th.ID); n != 2 {
		t.Errorf("second clinician's unread = %d; want 2 (read state is per reader)", n)
	}
	if n := unread(t, s, pat, patUser, th.ID); n != 1 {
		t.Errorf("patient's unread = %d; want 1", n)
	}
	if err := s.MarkRead(ctx, th.ID, doc2, 1); err != nil {
		t.Fatal(err)
	}
	if n := unread(t, s, pat, doc2, th.ID); n != 1 {
		t.Errorf("after reading seq 1: unread = %d; want 1", n)
	}
	if err := s.MarkRead(ctx, th.ID, doc2, 2); err != nil {
		t.Fatal(err)
	}
	// A read state never moves back.
	if err := s.MarkRead(ctx, th.ID, doc2, 1); err != nil {
		t.Fatal(err)
	}
	if n := unread(t, s, pat, doc2, th.ID); n != 0 {
		t.Errorf("after reading seq 2 then 1: unread = %d; want 0", n)
	}
	if err := s.MarkRead(ctx, "thr_none", doc2, 1); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("MarkRead(unknown thread) = %v; want ENOTFOUND", err)
	}

	// Messages in order, after a seq, bounded.
	ms, err := s.Messages(ctx, th.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].ID != first.ID || ms[1].ID != reply.ID || ms[0].Body != first.Body || ms[1].AuthorRole != vigil.RoleClinician {
		t.Fatalf("Messages = %+v; want first then reply", ms)
	}
	if ms, err := s.Messages(ctx, th.ID, 1, 0); err != nil || len(ms) != 1 || ms[0].Seq != 2 {
		t.Errorf("Messages(after 1) = %v, %v; want the reply only", ms, err)
	}
	if ms, err := s.Messages(ctx, th.ID, 0, 1); err != nil || len(ms) != 1 || ms[0].Seq != 1 {
		t.Errorf("Messages(limit 1) = %v, %v; want the first only", ms, err)
	}

	if got, err := s.Message(ctx, reply.ID); err != nil || got.Body != reply.Body || got.Seq != 2 || got.ThreadID != th.ID || !got.Sent.Equal(reply.Sent) {
		t.Errorf("Message(reply) = %+v, %v; want %+v", got, err, reply)
	}
	if _, err := s.Message(ctx, "msg_none"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Message(unknown) = %v; want ENOTFOUND", err)
	}

	// References are kept.
	ref := &vigil.Message{ThreadID: th.ID, SubjectID: pat, AuthorID: doc, AuthorRole: vigil.RoleClinician,
		Body: "About this alert", AlertID: "alr_1", ReadingID: 42}
	if err := s.AddMessage(ctx, ref); err != nil {
		t.Fatal(err)
	}
	ms, _ = s.Messages(ctx, th.ID, 2, 0)
	if len(ms) != 1 || ms[0].AlertID != "alr_1" || ms[0].ReadingID != 42 {
		t.Errorf("message with references read back as %+v", ms)
	}

	// A message may not be added to a thread through another patient.
	wrong := &vigil.Message{ThreadID: th.ID, SubjectID: other, AuthorID: doc, AuthorRole: vigil.RoleClinician, Body: "x"}
	if err := s.AddMessage(ctx, wrong); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("AddMessage through another patient = %v; want ENOTFOUND", err)
	}
	if err := s.AddMessage(ctx, &vigil.Message{ThreadID: "thr_none", SubjectID: pat, AuthorID: doc, Body: "x"}); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("AddMessage(unknown thread) = %v; want ENOTFOUND", err)
	}

	// Threads: newest activity first, only the patient's.
	th2, _ := newThread(t, s, pat, doc, vigil.RoleClinician, "Follow-up", "How are you today?")
	newThread(t, s, other, "usr_other", vigil.RolePatient, "Other", "Not for this patient.")
	ts, err := s.Threads(ctx, vigil.ThreadFilter{SubjectID: pat, Reader: patUser})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].ID != th2.ID || ts[1].ID != th.ID || ts[0].Unread != 1 || ts[1].Messages != 3 {
		t.Errorf("Threads = %+v; want follow-up (1 unread) then the first thread (3 messages)", ts)
	}
	if ts, _ := s.Threads(ctx, vigil.ThreadFilter{SubjectID: pat, Limit: 1}); len(ts) != 1 {
		t.Errorf("Threads(limit 1) = %d threads", len(ts))
	}
	got, err := s.Thread(ctx, th.ID)
	if err != nil || got.SubjectID != pat || got.Topic != "Dizzy" || got.CreatedBy != patUser || got.Messages != 3 {
		t.Errorf("Thread = %+v, %v", got, err)
	}
	if _, err := s.Thread(ctx, "thr_none"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Thread(unknown) = %v; want ENOTFOUND", err)
	}

	// The worklist's count: per patient, what the reader neither wrote nor read.
	u, err := s.UnreadBySubject(ctx, doc2, []string{pat, other, "pat_none"})
	if err != nil {
		t.Fatal(err)
	}
	// doc2 read th up to 2: unread the reference (3) and th2's message; other's message.
	if u[pat] != 2 || u[other] != 1 || len(u) != 2 {
		t.Errorf("UnreadBySubject(doc2) = %v; want %s:2 %s:1", u, pat, other)
	}
	if u, err := s.UnreadBySubject(ctx, doc2, nil); err != nil || len(u) != 0 {
		t.Errorf("UnreadBySubject(no subjects) = %v, %v", u, err)
	}

	// The rate bound's count.
	n, err := s.CountMessagesBy(ctx, doc, time.Time{})
	if err != nil || n != 3 {
		t.Errorf("CountMessagesBy(doc) = %d, %v; want 3", n, err)
	}
	if n, err := s.CountMessagesBy(ctx, doc, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("CountMessagesBy(doc, future) = %d, %v; want 0", n, err)
	}
}

func testMessageInvalid(t *testing.T, open func(t *testing.T) MessageStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-3")
	th, _ := newThread(t, s, pat, "usr_pat", vigil.RolePatient, "Topic", "Body")
	for _, c := range []struct {
		name  string
		topic string
		m     vigil.Message
		code  string
	}{
		{"blank body", "t", vigil.Message{SubjectID: pat, AuthorID: "usr_pat", Body: " \n\t"}, vigil.EINVALID},
		{"long body", "t", vigil.Message{SubjectID: pat, AuthorID: "usr_pat", Body: strings.Repeat("a", vigil.MaxStoredMessageBytes+1)}, vigil.ETOOLARGE},
		{"bad utf-8", "t", vigil.Message{SubjectID: pat, AuthorID: "usr_pat", Body: "\xff"}, vigil.EINVALID},
		{"no author", "t", vigil.Message{SubjectID: pat, Body: "b"}, vigil.EINVALID},
		{"blank topic", " ", vigil.Message{SubjectID: pat, AuthorID: "usr_pat", Body: "b"}, vigil.EINVALID},
		{"long topic", strings.Repeat("t", vigil.MaxStoredTopicBytes+1), vigil.Message{SubjectID: pat, AuthorID: "usr_pat", Body: "b"}, vigil.ETOOLARGE},
		{"unknown patient", "t", vigil.Message{SubjectID: "pat_none", AuthorID: "usr_pat", Body: "b"}, vigil.EINVALID},
	} {
		m := c.m
		tt := &vigil.Thread{SubjectID: m.SubjectID, Topic: c.topic, CreatedBy: "usr_pat"}
		if err := s.CreateThread(ctx, tt, &m); vigil.ErrorCode(err) != c.code {
			t.Errorf("CreateThread(%s) = %v; want %s", c.name, err, c.code)
		}
		if c.topic == "t" && c.m.SubjectID == pat {
			m := c.m
			m.ThreadID = th.ID
			if err := s.AddMessage(ctx, &m); vigil.ErrorCode(err) != c.code {
				t.Errorf("AddMessage(%s) = %v; want %s", c.name, err, c.code)
			}
		}
	}
	// A first message of another patient than the thread's.
	other := newPatient(t, s, "M-4")
	if err := s.CreateThread(ctx, &vigil.Thread{SubjectID: pat, Topic: "t", CreatedBy: "usr_pat"},
		&vigil.Message{SubjectID: other, AuthorID: "usr_pat", Body: "b"}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("CreateThread with another patient's message = %v; want EINVALID", err)
	}
	if ts, _ := s.Threads(ctx, vigil.ThreadFilter{SubjectID: pat}); len(ts) != 1 {
		t.Errorf("refused threads were stored: %d threads", len(ts))
	}
	if ms, _ := s.Messages(ctx, th.ID, 0, 0); len(ms) != 1 {
		t.Errorf("refused messages were stored: %d messages", len(ms))
	}
}

// testMessageConcurrent adds messages to one thread at once: every one is
// stored with a seq of its own.
func testMessageConcurrent(t *testing.T, open func(t *testing.T) MessageStore) {
	s := open(t)
	pat := newPatient(t, s, "M-5")
	th, _ := newThread(t, s, pat, "usr_pat", vigil.RolePatient, "Topic", "Body")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &vigil.Message{ThreadID: th.ID, SubjectID: pat, AuthorID: "usr_doc", AuthorRole: vigil.RoleClinician, Body: "reply " + string(rune('a'+i))}
			errs <- s.AddMessage(t.Context(), m)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.Messages(t.Context(), th.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != n+1 {
		t.Fatalf("%d messages; want %d", len(ms), n+1)
	}
	for i, m := range ms {
		if m.Seq != int64(i+1) {
			t.Errorf("message %d has seq %d", i, m.Seq)
		}
	}
	if got, _ := s.Thread(t.Context(), th.ID); got.Messages != n+1 {
		t.Errorf("thread counts %d messages; want %d", got.Messages, n+1)
	}
}

// testMessageErasure erases a patient: their threads, messages and read
// states are gone; another patient's stay.
func testMessageErasure(t *testing.T, open func(t *testing.T) MessageStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-6")
	keep := newPatient(t, s, "M-7")
	th, first := newThread(t, s, pat, "usr_pat", vigil.RolePatient, "Topic", "Body")
	addMessage(t, s, th, "usr_doc", vigil.RoleClinician, "Reply")
	if err := s.MarkRead(ctx, th.ID, "usr_doc2", 1); err != nil {
		t.Fatal(err)
	}
	kept, _ := newThread(t, s, keep, "usr_keep", vigil.RolePatient, "Kept", "Stays")
	if _, err := s.ShredPatient(ctx, pat, "usr_admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Thread(ctx, th.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Thread of an erased patient = %v; want ENOTFOUND", err)
	}
	if ms, err := s.Messages(ctx, th.ID, 0, 0); err != nil || len(ms) != 0 {
		t.Errorf("Messages of an erased patient = %d, %v; want none", len(ms), err)
	}
	if _, err := s.Message(ctx, first.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Message of an erased patient = %v; want ENOTFOUND", err)
	}
	if ts, err := s.Threads(ctx, vigil.ThreadFilter{SubjectID: pat}); err != nil || len(ts) != 0 {
		t.Errorf("Threads of an erased patient = %d, %v; want none", len(ts), err)
	}
	if n, err := s.CountMessagesBy(ctx, "usr_doc", time.Time{}); err != nil || n != 0 {
		t.Errorf("messages to an erased patient still counted: %d, %v", n, err)
	}
	if u, err := s.UnreadBySubject(ctx, "usr_doc2", []string{pat, keep}); err != nil || u[pat] != 0 || u[keep] != 1 {
		t.Errorf("UnreadBySubject after erasure = %v, %v; want only %s:1", u, err, keep)
	}
	if ms, err := s.Messages(ctx, kept.ID, 0, 0); err != nil || len(ms) != 1 {
		t.Errorf("another patient's messages after erasure = %d, %v; want 1", len(ms), err)
	}
}
