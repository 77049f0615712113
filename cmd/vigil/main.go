// Command vigil runs Vigil, the remote patient monitoring platform.
//
//	vigil demo       run a demonstration ward: server, clinician, virtual patients
//	vigil serve      run the server (HTTPS API, durable log, store)
//	vigil simulate   feed a running server with virtual patients
//	vigil bench      measure the ingest path
//	vigil admin      manage users and tokens on a stopped server (recovery)
//	vigil audit      verify or list the audit log
//	vigil keys       rotate the key-encryption key (the server may run)
//	vigil patients   erase a patient, set or clear a legal hold (server stopped)
//	vigil backup     back up a data directory, also of a running server
//	vigil restore    restore a backup into an empty data directory
//	vigil export     write a de-identified research export (--deidentify)
//	vigil version    print the version
//
// main only parses flags and wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(code)
}

const usage = `Vigil: remote patient monitoring on one binary.

Usage: vigil <command> [flags]

Commands:
  demo       run a demonstration ward in one command: a server, a clinician and virtual patients
  serve      run the server with embedded defaults (HTTPS API, durable log, SQLite store)
  simulate   register virtual patients and devices on a server and send their readings
  bench      measure the ingest path: readings/s and acknowledgement latency
  devices    issue a device's client certificate (vigil devices cert --id …)
  admin      recover access with the server stopped: users, passwords, tokens
  audit      verify the audit log's hash chain; list entries
  keys       rotate the key-encryption key of patients' data keys (the server may run)
  patients   erase a patient, or set or clear a legal hold, with the server stopped
  backup     write a consistent backup of a data directory (the server may run)
  restore    restore a backup into an empty data directory
  export     write a de-identified research export of consenting patients (--deidentify)
  version    print the version

Run 'vigil <command> --help' for a command's flags. Every flag can also be set
as an environment variable: VIGIL_ and the flag name in capitals (--http → VIGIL_HTTP).
`

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "demo":
		err = demo(ctx, args[1:], getenv, stdout, stderr)
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr)
	case "simulate":
		err = simulate(ctx, args[1:], getenv, stdout, stderr)
	case "devices":
		err = devices(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		err = bench(ctx, args[1:], getenv, stdout, stderr)
	case "admin":
		err = admin(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		err = keysCmd(ctx, args[1:], getenv, stdout, stderr)
	case "patients":
		err = patientsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "backup":
		err = backupCmd(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		err = restoreCmd(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		err = exportCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "vigil", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "vigil %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "vigil %s: %v\n", args[0], err)
	return 1
}

// errUsage marks a usage error already reported by the flag package.
var errUsage = errors.New("usage")
