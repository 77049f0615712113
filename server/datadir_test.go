package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A second node on a data directory that a running node holds is refused,
// names the holder's pid, and leaves the running node's audit journal alone.
func TestDataDirLockedByRunningNode(t *testing.T) {
	h := start(t, "")
	journal := filepath.Join(h.dir, AuditJournalDir)
	before, err := os.ReadDir(journal)
	if err != nil {
		t.Fatal(err)
	}
	var announced []string
	_, err = New(context.Background(), Options{DataDir: h.dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Announce: func(f string, a ...any) { announced = append(announced, fmt.Sprintf(f, a...)) }})
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second New on a held directory: err = %v, want ErrDataDirInUse", err)
	}
	if want := "process " + strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
	if len(announced) > 0 {
		t.Errorf("refused start announced %q", announced)
	}
	after, err := os.ReadDir(journal)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || (len(after) > 0 && after[0].Name() != before[0].Name()) {
		t.Errorf("refused start touched the running node's audit journal: %v → %v", before, after)
	}
	// The running node still works.
	if code, _ := h.do("GET", "/api/v1/patients/"+h.pid, h.admin.Token(), nil); code != 200 {
		t.Errorf("running node after the refused start: GET patient = %d", code)
	}
	// Once it stops, the directory is free again.
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := LockDataDir(h.dir)
	if err != nil {
		t.Fatalf("lock after shutdown: %v", err)
	}
	l.Unlock()
}

// A node whose address is taken fails before it creates anything: no admin
// user, no one-time password printed for an account nobody can then use.
func TestListenBeforeCreatingAdmin(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ name, http, mqtt string }{
		{"https address taken", busy.Addr().String(), "off"},
		{"mqtt address taken", "127.0.0.1:0", busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var announced []string
			srv, err := New(context.Background(), Options{DataDir: dir, HTTPAddr: tc.http, MQTTAddr: tc.mqtt,
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
				Announce: func(f string, a ...any) { announced = append(announced, fmt.Sprintf(f, a...)) }})
			if err == nil {
				err = srv.Start()
				srv.Shutdown(context.Background())
			}
			if err == nil {
				t.Fatal("start on a taken address succeeded")
			}
			for _, a := range announced {
				if strings.Contains(a, "password") {
					t.Errorf("failed start announced %q", a)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "vigil.db")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed start created the store (stat: %v)", err)
			}
			// The lock was released with the failure.
			l, err := LockDataDir(dir)
			if err != nil {
				t.Fatalf("lock after failed start: %v", err)
			}
			l.Unlock()
		})
	}
}

// TestAdminPasswordForExistingAdmin: VIGIL_ADMIN_PASSWORD given for a data
// directory whose admin exists is not ignored silently: the node says it
// was not used and how to reset the password.
func TestAdminPasswordForExistingAdmin(t *testing.T) {
	dir := t.TempDir()
	start := func(pw string) []string {
		t.Helper()
		var announced []string
		srv, err := New(context.Background(), Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: pw,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Announce: func(f string, a ...any) { announced = append(announced, fmt.Sprintf(f, a...)) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		return announced
	}
	said := func(announced []string, want string) bool {
		for _, a := range announced {
			if strings.Contains(a, want) {
				return true
			}
		}
		return false
	}
	if a := start("first start password 1"); !said(a, "created user admin with the password from VIGIL_ADMIN_PASSWORD") {
		t.Errorf("first start announced %q", a)
	}
	if a := start("another password 2"); !said(a, "VIGIL_ADMIN_PASSWORD only sets the password when admin is created") || !said(a, "vigil admin reset-password --username admin") {
		t.Errorf("second start with a password announced %q, want that it was not used and how to reset", a)
	}
	if a := start(""); said(a, "VIGIL_ADMIN_PASSWORD") {
		t.Errorf("second start without a password announced %q", a)
	}
}
