package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe for a server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A second vigil serve on a data directory that a running one holds
// refuses to start and names the holder's pid.
func TestServeRefusesHeldDataDir(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VIGIL_ADMIN_PASSWORD": "correct-horse-battery-staple"}
	getenv := func(k string) string { return env[k] }
	args := []string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt", "off", "--mllp", "off"}
	ctx, cancel := context.WithCancel(context.Background())
	first := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, getenv, &lockedBuffer{}, first) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("first serve exited %d: %s", code, first.String())
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(first.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("first serve did not start: %s", first.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out, errOut lockedBuffer
	// Bounded: a second serve that started would run until this ends.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	code := run(ctx2, args, getenv, &out, &errOut)
	want := "held by process " + strconv.Itoa(os.Getpid())
	if code != 1 || !strings.Contains(errOut.String(), "data directory in use") || !strings.Contains(errOut.String(), want) {
		t.Errorf("second serve: exit %d, stderr %q; want exit 1 with %q", code, errOut.String(), want)
	}
	if strings.Contains(errOut.String(), "listening") || strings.Contains(errOut.String(), "password") {
		t.Errorf("second serve went on: %q", errOut.String())
	}
}
