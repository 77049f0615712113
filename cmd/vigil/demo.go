package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sim"
)

// Names of what the demonstration creates.
const (
	demoStateFile = "demo.json"
	demoClinician = "clinician"
	demoTeam      = "Demo ward"
)

// demoState is what a demonstration keeps in its data directory (0600) so
// that running it again resumes it: the same patients, readings, sign-in.
type demoState struct {
	Seed              uint64    `json:"seed"`
	Start             time.Time `json:"start"` // the patients' start
	AdminPassword     string    `json:"admin_password"`
	ClinicianPassword string    `json:"clinician_password"`
	// AdminCreated is set once a server has started with AdminPassword,
	// which it then gave the admin user; later starts pass no password.
	AdminCreated bool `json:"admin_created"`
}

// demoKnobs are settings tests change to see the course sooner.
type demoKnobs struct {
	backfill time.Duration // history sent at start, ending now
	speed    float64       // virtual seconds per second while sending it
	interval time.Duration // wall-clock time between the simulator's steps
}

func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runDemo(ctx, args, getenv, stdout, stderr, demoKnobs{backfill: 2 * time.Minute, speed: 60, interval: time.Second})
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, k demoKnobs) error {
	fs := newFlagSet("demo", "Run a demonstration ward in one command: a server with embedded defaults, a clinician and a\ncare team, and virtual patients whose condition worsens within minutes. It prints the address\nand the clinician's sign-in. Ctrl-C stops everything; running it again with the same --data\nresumes the same ward with the same sign-in.", stderr)
	var (
		o         = serveDefaults() // what vigil serve's flags default to; demo has no flag for most
		patients  int
		scenarios string
		logLevel  string
		shutdown  time.Duration
	)
	fs.StringVar(&o.DataDir, "data", "./vigil-demo", "data directory of the demonstration (not for real patients)")
	fs.StringVar(&o.HTTPAddr, "http", ":8443", "HTTPS listen address")
	fs.StringVar(&o.MQTTAddr, "mqtt", "off", `MQTT over TLS listen address ("off": no MQTT)`)
	fs.IntVar(&patients, "patients", 6, "number of virtual patients; a later run with more adds patients, one with fewer leaves the rest registered but silent")
	fs.StringVar(&scenarios, "scenarios", "hypoxia,sepsis,stable,hypoglycaemia,stable,heart-failure", "scenarios assigned to patients in turn, on a timeline compressed to minutes")
	fs.StringVar(&logLevel, "log-level", "warn", "log level of the server and the simulator: debug, info, warn, error")
	fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if patients < 1 {
		return fmt.Errorf("%w: --patients must be at least 1, not %d", errUsage, patients)
	}
	var scs []sim.Scenario
	for _, s := range strings.Split(scenarios, ",") {
		sc, err := sim.ParseScenario(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%w: --scenarios: %v", errUsage, err)
		}
		scs = append(scs, sc)
	}
	logger, err := newLogger(stderr, logLevel, "text")
	if err != nil {
		return usageError(err)
	}

	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	st, resumed, err := loadDemoState(filepath.Join(o.DataDir, demoStateFile), time.Now().Add(-k.backfill).Truncate(time.Second))
	if err != nil {
		return err
	}
	if !st.AdminCreated {
		o.AdminPassword = st.AdminPassword
	}
	o.Logger = logger
	o.Version = version
	// The demo's admin is the demo's own: it signs in with its password to
	// set up the ward (users sign in as the clinician), so the second factor
	// admins need by default is off here, as --admin-totp=false does.
	o.AdminTOTPOptional = true
	o.Announce = func(format string, args ...any) {
		if !strings.Contains(format, "password") { // the demo prints its own sign-in
			fmt.Fprintf(stderr, "vigil: "+format+"\n", args...)
		}
	}

	srv, err := server.New(ctx, o)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	stop := func() error {
		fmt.Fprintln(stderr, "vigil: shutting down: finishing requests in flight and storing what the log holds")
		sctx, cancel := context.WithTimeout(context.Background(), shutdown)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		fmt.Fprintln(stderr, "vigil: stopped")
		return nil
	}
	if !st.AdminCreated {
		st.AdminCreated = true
		if err := saveDemoState(filepath.Join(o.DataDir, demoStateFile), st); err != nil {
			return errors.Join(err, stop())
		}
	}

	c, err := client.New(srv.URL(), client.WithCAFile(srv.CAFile()))
	if err != nil {
		return errors.Join(err, stop())
	}
	teamID, err := setUpWard(ctx, c, st)
	if err != nil {
		return errors.Join(fmt.Errorf("set up the demonstration ward: %w", err), stop())
	}
	r := &sim.Runner{
		Client: c, Patients: patients, Scenarios: scs, Seed: st.Seed, Start: st.Start,
		Timeline: sim.Scenario.DemoTimeline, Speed: k.speed, Backfill: k.backfill, Interval: k.interval,
		LogEvery: time.Minute, Logger: logger,
		OnPatient: func(ctx context.Context, _ int, patientID string) error {
			return c.EnrollPatient(ctx, teamID, patientID)
		},
		OnRegistered: func() {
			fmt.Fprintf(stdout, "vigil demo: %d patients and their devices registered; readings are flowing\n", patients)
		},
	}
	what := "started"
	if resumed {
		what = "resumed"
	}
	fmt.Fprintf(stdout, `Vigil demo %s: %d virtual patients in care team %q; data in %s.

  Open      %s/worklist   (the certificate is issued by Vigil's own CA: %s)
  Sign in   user %s, password %s
  Admin     user admin, password in %s

Patients start to deteriorate within minutes; a high-priority alert reaches the worklist
within about 5 minutes. Ctrl-C stops everything; run the same command again to resume.
`, what, patients, demoTeam, o.DataDir, srv.URL(), srv.CAFile(), demoClinician, st.ClinicianPassword, filepath.Join(o.DataDir, demoStateFile))

	runErr := r.Run(ctx)
	if errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded) {
		runErr = nil
	}
	if runErr != nil {
		runErr = fmt.Errorf("simulator: %w", runErr)
	}
	if runErr == nil {
		<-ctx.Done() // a finished simulation (it has no Duration) leaves the server up
	}
	s := r.Stats()
	fmt.Fprintf(stdout, "vigil demo: readings generated %d, accepted %d, rejected %d\n", s.Generated, s.Accepted, s.Rejected)
	return errors.Join(runErr, stop())
}

// setUpWard signs in as admin and makes sure the clinician and the care
// team exist and the clinician is a member; it returns the team's id. Each
// step finds what an earlier run made.
func setUpWard(ctx context.Context, c *client.Client, st demoState) (string, error) {
	if _, err := c.Login(ctx, "admin", st.AdminPassword); err != nil {
		return "", fmt.Errorf("sign in as admin with the password in %s: %w", demoStateFile, err)
	}
	userID := ""
	u, err := c.CreateUser(ctx, client.UserIn{Username: demoClinician, Password: st.ClinicianPassword, Role: "clinician"})
	switch {
	case err == nil:
		userID = u.ID
	case isConflict(err):
		us, err := c.Users(ctx)
		if err != nil {
			return "", err
		}
		for _, u := range us {
			if u.Username == demoClinician {
				userID = u.ID
			}
		}
		if userID == "" {
			return "", fmt.Errorf("user %s exists but is not listed", demoClinician)
		}
	default:
		return "", err
	}
	teamID := ""
	t, err := c.CreateTeam(ctx, demoTeam)
	switch {
	case err == nil:
		teamID = t.ID
	case isConflict(err):
		ts, err := c.Teams(ctx)
		if err != nil {
			return "", err
		}
		for _, t := range ts {
			if t.Name == demoTeam {
				teamID = t.ID
			}
		}
		if teamID == "" {
			return "", fmt.Errorf("team %q exists but is not listed", demoTeam)
		}
	default:
		return "", err
	}
	return teamID, c.AddTeamMember(ctx, teamID, userID)
}

func isConflict(err error) bool {
	var apiErr *client.Error
	return errors.As(err, &apiErr) && apiErr.Status == 409
}

// loadDemoState reads the demonstration's state file, or, if there is none,
// creates one with new passwords, a new seed and the given start; resumed
// reports whether it existed.
func loadDemoState(path string, start time.Time) (st demoState, resumed bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil || st.AdminPassword == "" || st.ClinicianPassword == "" || st.Start.IsZero() {
			return st, false, fmt.Errorf("%s is damaged (remove the data directory to start a new demonstration)", path)
		}
		return st, true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return st, false, fmt.Errorf("read demo state: %w", err)
	}
	var seed [2]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return st, false, err
	}
	st = demoState{
		Seed:          uint64(seed[0])<<8 | uint64(seed[1]) + 1,
		Start:         start.UTC(),
		AdminPassword: rand.Text(), ClinicianPassword: rand.Text(),
	}
	return st, false, saveDemoState(path, st)
}

// saveDemoState writes the state file atomically, readable by its owner
// only: it holds passwords.
func saveDemoState(path string, st demoState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write demo state: %w", err)
	}
	return nil
}
