package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantAge  time.Duration
		wantErr  string
	}{
		{"defaults", nil, nil, ":8443", time.Hour, ""},
		{"environment", nil, map[string]string{"VIGIL_HTTP": ":9443", "VIGIL_LOG_MAX_AGE": "2h"}, ":9443", 2 * time.Hour, ""},
		{"flag beats environment", []string{"--http", ":1"}, map[string]string{"VIGIL_HTTP": ":9443"}, ":1", time.Hour, ""},
		{"bad environment value", nil, map[string]string{"VIGIL_LOG_MAX_AGE": "soon"}, "", 0, "VIGIL_LOG_MAX_AGE"},
		{"stray argument", []string{"extra"}, nil, "", 0, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			addr := fs.String("http", ":8443", "")
			age := fs.Duration("log-max-age", time.Hour, "")
			err := parseFlags(fs, tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.wantAddr || *age != tt.wantAge {
				t.Errorf("got %q %v, want %q %v", *addr, *age, tt.wantAddr, tt.wantAge)
			}
		})
	}
}

// A flag kept under an old name is taken from the command line only: its
// environment variable may mean something else now (VIGIL_MQTT is vigil
// serve's listen address, no longer vigil simulate's target).
func TestDeprecatedFlagNotFromEnvironment(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"environment ignored", nil, ""},
		{"command line taken", []string{"--mqtt", "host:1"}, "host:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			target := fs.String("mqtt-target", "", "")
			fs.Func("mqtt", deprecatedPrefix+"use --mqtt-target", func(v string) error { *target = v; return nil })
			env := map[string]string{"VIGIL_MQTT": ":8883"}
			if err := parseFlags(fs, tt.args, func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			if *target != tt.want {
				t.Errorf("target %q, want %q", *target, tt.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	run(context.Background(), []string{"simulate", "--mqtt", "localhost:8883"}, func(string) string { return "" }, &out, &errOut)
	if !strings.Contains(errOut.String(), "--mqtt is deprecated; use --mqtt-target") {
		t.Errorf("simulate --mqtt does not say it is deprecated: %q", errOut.String())
	}
}

// TestHelpListsEveryFlagWithItsVariable checks each command's --help.
func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	for _, cmd := range []string{"serve", "simulate", "bench", "demo"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, &out, &errOut)
		if code != 0 {
			t.Errorf("%s --help exited %d", cmd, code)
		}
		help := errOut.String()
		for _, want := range []string{"--data", "[VIGIL_DATA]"} {
			if cmd == "serve" && !strings.Contains(help, want) {
				t.Errorf("serve --help lacks %q:\n%s", want, help)
			}
		}
		if n, m := strings.Count(help, "\n  --"), strings.Count(help, "[VIGIL_")+strings.Count(help, "      "+deprecatedPrefix); n == 0 || n != m {
			t.Errorf("%s --help: %d flags, %d environment variables", cmd, n, m)
		}
	}
	// Every command and subcommand answers --help with exit 0.
	for _, args := range [][]string{
		{"--help"}, {"demo", "--help"}, {"serve", "--help"}, {"simulate", "--help"}, {"bench", "--help"}, {"devices", "--help"},
		{"devices", "cert", "--help"}, {"admin", "--help"}, {"audit", "--help"}, {"audit", "verify", "--help"},
		{"audit", "list", "--help"}, {"backup", "--help"}, {"restore", "--help"}, {"admin", "reset-password", "--help"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); code != 0 {
			t.Errorf("vigil %s exited %d: %s", strings.Join(args, " "), code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--patients", "0"}, func(string) string { return "" }, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--patients must be at least 1") {
		t.Errorf("simulate --patients 0: exit %d, %q", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
}
