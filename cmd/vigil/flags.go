package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet returns a flag set for a subcommand whose usage text lists
// every flag with its environment variable.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil %s [flags]\n\n%s\n\nFlags (each can also be set by the environment variable shown):\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			if strings.HasPrefix(f.Usage, deprecatedPrefix) {
				fmt.Fprintf(stderr, "  --%s\n      %s\n", f.Name, f.Usage)
				return
			}
			fmt.Fprintf(stderr, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// envName is the environment variable for a flag: VIGIL_ and the flag name
// upper-cased with dashes as underscores (--tls-cert → VIGIL_TLS_CERT).
func envName(flagName string) string {
	return "VIGIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// deprecatedPrefix starts the usage of a flag kept under an old name for
// the command line only: parseFlags sets no deprecated flag from the
// environment, and its usage line names no environment variable.
const deprecatedPrefix = "deprecated: "

// parseFlags parses args, then sets every flag not given on the command
// line from its environment variable, if set. Command-line flags win.
// Deprecated flags (see deprecatedPrefix) are not read from the environment.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags are --name=value)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || strings.HasPrefix(f.Usage, deprecatedPrefix) {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s: %w", envName(f.Name), e)
			}
		}
	})
	return err
}
