package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/sim"
)

func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("simulate", "Register virtual patients and their devices on a running Vigil through its API, then send\ntheir readings. History (--backfill) arrives --speed times faster than real time, then the\npatients carry on live until Ctrl-C (or for --duration of virtual time).", stderr)
	var (
		url, caFile, username, password, scenarios string
		mqttAddr                                   string
		patients                                   int
		seed                                       uint64
		speed                                      float64
		backfill, duration                         time.Duration
	)
	fs.StringVar(&url, "url", "https://localhost:8443", "Vigil server")
	fs.StringVar(&caFile, "ca", "./vigil-data/tls/ca.pem", "CA file the server's certificate is issued by (printed by vigil serve)")
	fs.StringVar(&username, "username", "admin", "user that registers the patients and devices")
	fs.StringVar(&password, "admin-password", "", "that user's password (the same variable vigil serve reads)")
	code := fs.String("totp-code", "", "a current one-time code (or a recovery code) of that user's second factor, if it has one")
	fs.IntVar(&patients, "patients", 10, "number of virtual patients")
	fs.StringVar(&scenarios, "scenarios", "stable,sepsis,hypoxia,hypoglycaemia,heart-failure", "scenarios assigned to patients in turn")
	fs.Uint64Var(&seed, "seed", 0, "seed of the run (patients' MRNs are SIM-<seed>-<n>); 0 picks one from the clock")
	fs.Float64Var(&speed, "speed", 60, "virtual seconds per second while sending history")
	fs.DurationVar(&backfill, "backfill", time.Hour, "history to send first, ending now; 0: none, the run is live from the start")
	fs.DurationVar(&duration, "duration", 0, "virtual time to simulate; 0 runs until interrupted")
	fs.StringVar(&mqttAddr, "mqtt-target", "", "send readings over MQTT (TLS) to this address, e.g. localhost:8883, instead of HTTPS")
	// --mqtt was this flag's name; VIGIL_MQTT is vigil serve's listen
	// address, so the old name is taken from the command line only.
	fs.Func("mqtt", deprecatedPrefix+"use --mqtt-target (VIGIL_MQTT is vigil serve's MQTT listen address, not read here)", func(v string) error {
		fmt.Fprintln(stderr, "vigil simulate: --mqtt is deprecated; use --mqtt-target")
		mqttAddr = v
		return nil
	})
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if patients < 1 {
		return fmt.Errorf("%w: --patients must be at least 1, not %d", errUsage, patients)
	}
	if password == "" {
		return fmt.Errorf("%w: set VIGIL_ADMIN_PASSWORD (or --admin-password) to the password of %s", errUsage, username)
	}
	var scs []sim.Scenario
	for _, s := range strings.Split(scenarios, ",") {
		sc, err := sim.ParseScenario(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		scs = append(scs, sc)
	}
	if backfill == 0 {
		// No history: live from now for --duration. (At a speed above 1 the
		// runner would take a backfill of nearly --duration instead.)
		speed = 1
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano() % 1_000_000)
	}
	c, err := client.New(url, client.WithCAFile(caFile))
	if err != nil {
		return err
	}
	if _, err := c.LoginWithCode(ctx, username, password, *code); err != nil {
		return fmt.Errorf("sign in to %s: %w", url, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	r := &sim.Runner{Client: c, Patients: patients, Scenarios: scs, Seed: seed, Speed: speed, Backfill: backfill, Duration: duration, Logger: logger}
	if mqttAddr != "" {
		m, err := newMQTTSender(mqttAddr, caFile)
		if err != nil {
			return err
		}
		defer m.Close()
		r.Send = m.Send
	}
	plan := fmt.Sprintf("%s of history at %gx, then live", backfill, speed)
	if backfill == 0 {
		plan = "no history, live"
	}
	if duration > 0 {
		plan += " for " + duration.String() + " of virtual time in all"
	}
	fmt.Fprintf(stderr, "simulate: %d patients (seed %d, MRNs SIM-%d-<n>) on %s; %s\n", patients, seed, seed, url, plan)
	err = r.Run(ctx)
	st := r.Stats()
	fmt.Fprintf(stdout, "simulate: %d patients, %d devices; readings generated %d, accepted %d, rejected %d, retries %d\n",
		st.Patients, st.Devices, st.Generated, st.Accepted, st.Rejected, st.Retries)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
