package bus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// noJetStream starts a NATS server on a loopback port without JetStream,
// as a cluster whose stream has no leader answers: the stream cannot be
// set up until JetStream is enabled.
func noJetStream(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// Open on an external NATS whose JetStream does not answer yet tries
// again, saying so in its log, and opens the log once it answers, instead
// of failing at the first try (a node started just after a NATS server
// died exited).
func TestOpenRetriesSetup(t *testing.T) {
	srv := noJetStream(t)
	var logged syncBuffer
	name := fmt.Sprintf("VIGILTEST%d", time.Now().UnixNano())
	opts := Options{URL: srv.ClientURL(), Stream: name, Subject: "vigiltest." + name, SetupTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	type result struct {
		l   *Log
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := Open(context.Background(), opts)
		done <- result{l, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logged.String(), "durable log not set up yet") < 2 {
		select {
		case r := <-done:
			t.Fatalf("Open returned before JetStream answered: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retry logged within 10 s:\n%s", logged.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Open did not return within 30 s of JetStream answering")
	}
	if r.err != nil {
		t.Fatalf("Open: %v\n%s", r.err, logged.String())
	}
	defer r.l.Close(context.Background())
	if err := r.l.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if !strings.Contains(logged.String(), "durable log set up") {
		t.Errorf("no log line of the setup that succeeded:\n%s", logged.String())
	}
}

// Open gives up once SetupTimeout has passed, with the last failure.
func TestOpenSetupGivesUp(t *testing.T) {
	srv := noJetStream(t)
	start := time.Now()
	_, err := Open(context.Background(), Options{URL: srv.ClientURL(), Stream: "VIGILGIVEUP", Subject: "vigiltest.giveup",
		SetupTimeout: 700 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "gave up after 700ms") {
		t.Errorf("Open: %v, want it to give up after 700ms", err)
	}
	if took < 700*time.Millisecond || took > 20*time.Second {
		t.Errorf("Open gave up after %v", took)
	}
}
