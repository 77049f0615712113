//go:build !unix

package http

import "time"

// processCPU returns 0: benchmarks report no CPU time here.
func processCPU() time.Duration { return 0 }
