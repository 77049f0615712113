package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
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
	env := map[string]string{"VIGIL_ADMIN_PASSWORD": testPassword}
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
