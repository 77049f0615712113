package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/server"
)

// TestSimulateOverMQTT runs `vigil simulate --mqtt-target` against a node: the
// patients are registered over HTTPS and their readings arrive over MQTT.
func TestSimulateOverMQTT(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and the simulator; skipped with -short")
	}
	ctx := context.Background()
	srv, err := server.New(ctx, server.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		AdminPassword: testPassword, AdminReadsClinical: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	// The admin enrols a second factor; the simulator signs in with one of
	// its recovery codes (--totp-code), as a script would.
	recovery := enrolAdmin(t, srv.URL(), srv.CAFile())
	env := map[string]string{"VIGIL_ADMIN_PASSWORD": testPassword, "VIGIL_TOTP_CODE": recovery}
	var stdout, stderr bytes.Buffer
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	code := run(rctx, []string{"simulate", "--url", srv.URL(), "--ca", srv.CAFile(), "--mqtt-target", srv.MQTTAddrs()[0],
		"--patients", "2", "--scenarios", "stable", "--seed", "7", "--backfill", "30m", "--duration", "30m", "--speed", "600"},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("simulate exited %d:\n%s", code, stderr.String())
	}
	m := regexp.MustCompile(`accepted (\d+), rejected (\d+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no summary: %s", stdout.String())
	}
	accepted, _ := strconv.Atoi(m[1])
	if accepted == 0 || m[2] != "0" {
		t.Fatalf("simulate over MQTT: %s", stdout.String())
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := srv.WaitStored(wctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	pats, err := srv.Store().Patients(ctx, vigilFilterAll())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pats {
		page, err := srv.Store().Readings(ctx, readingsOf(p.ID))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Readings {
			if r.Source == "derived" {
				continue // NEWS2 scores computed by the rules engine
			}
			if r.Source != "mqtt" {
				t.Fatalf("reading %s came by %s, want mqtt", r.Key, r.Source)
			}
			n++
		}
	}
	if n != accepted {
		t.Errorf("store holds %d readings, simulate reports %d accepted", n, accepted)
	}
}

func vigilFilterAll() vigil.PatientFilter { return vigil.PatientFilter{} }

func readingsOf(id string) vigil.ReadingQuery {
	return vigil.ReadingQuery{SubjectID: id, Limit: vigil.MaxReadingLimit}
}

// `vigil simulate --backfill 0s --duration 3s` runs live for three seconds
// of wall time: no history, so the virtual clock, which never runs ahead of
// the wall clock, needs the whole duration. (Before, a backfill of nearly
// the duration was derived from --speed and the run ended at once.)
func TestSimulateNoBackfillRunsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and the simulator; skipped with -short")
	}
	ctx := context.Background()
	// The simulator signs admin in with a password alone.
	srv, err := server.New(ctx, server.Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off",
		AdminPassword: testPassword, AdminTOTPOptional: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	env := map[string]string{"VIGIL_ADMIN_PASSWORD": testPassword}
	var stdout, stderr bytes.Buffer
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	code := run(rctx, []string{"simulate", "--url", srv.URL(), "--ca", srv.CAFile(), "--patients", "1",
		"--backfill", "0s", "--duration", "3s"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("simulate exited %d:\n%s", code, stderr.String())
	}
	// The run ends when the virtual clock, started at the wall clock's
	// second, reaches 3 s later: at least 2 s of wall time.
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("simulate --backfill 0s --duration 3s ended after %v: it sent history instead of running live", took)
	}
	if !strings.Contains(stderr.String(), "no history, live for 3s") {
		t.Errorf("simulate does not say it runs live: %s", stderr.String())
	}
}
