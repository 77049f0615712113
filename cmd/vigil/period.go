package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// period is a flag value for long durations: a Go duration ("36h"), or a
// whole number of days ("90d") or years ("7y", 365 days each); "0" is
// none. Retention periods are written in days and years.
type period struct{ d *time.Duration }

func (p period) String() string {
	if p.d == nil || *p.d == 0 {
		return "0"
	}
	d := *p.d
	switch {
	case d%(365*24*time.Hour) == 0:
		return fmt.Sprintf("%dy", d/(365*24*time.Hour))
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (p period) Set(s string) error {
	d, err := parsePeriod(s)
	if err != nil {
		return err
	}
	*p.d = d
	return nil
}

// parsePeriod parses a period flag's value (see period).
func parsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v < 0 || v > 1000*365 {
				return 0, fmt.Errorf("period %q: want a whole number of days (90d) or years (7y), or a duration (36h)", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("period %q: want a whole number of days (90d) or years (7y), or a duration (36h)", s)
	}
	return d, nil
}
