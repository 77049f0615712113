//go:build !unix

package hl7

import "time"

// cpuTime is not measured here: BenchmarkMLLP reports 0 CPU per message.
func cpuTime() time.Duration { return 0 }
