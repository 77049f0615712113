package server

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-health/vigil"
)

// DefaultDiskLowWatermark is the free space below which a node refuses
// optional work: 1 GiB.
const DefaultDiskLowWatermark = "1GiB"

// Watermark is a free-space threshold: an absolute number of bytes, or a
// percentage of the file system's size. The zero value is 0 bytes.
type Watermark struct {
	Bytes   int64   // used when Percent is 0
	Percent float64 // of the file system's size, 0 < Percent < 100
}

// ParseWatermark parses "1GiB", "500MB", "1073741824" or "5%". Units:
// B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (of 1024).
func ParseWatermark(s string) (Watermark, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v >= 100 {
			return Watermark{}, fmt.Errorf("watermark %q: a percentage must be above 0 and below 100", s)
		}
		return Watermark{Percent: v}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return Watermark{}, fmt.Errorf("watermark %q: want a size such as 1GiB or 500MB, or a percentage such as 5%%", s)
	}
	return Watermark{Bytes: n}, nil
}

// ParseSize parses a number of bytes: "4GiB", "500MB", "1073741824".
// Units: B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (of
// 1024).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || v < 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: want a number of bytes such as 4GiB or 500MB", s)
	}
	return int64(v * mult), nil
}

// of returns the threshold in bytes on a file system of total bytes.
func (w Watermark) of(total uint64) uint64 {
	if w.Percent > 0 {
		return uint64(float64(total) * w.Percent / 100)
	}
	return uint64(w.Bytes)
}

func (w Watermark) String() string {
	if w.Percent > 0 {
		return strconv.FormatFloat(w.Percent, 'f', -1, 64) + "%"
	}
	return formatBytes(uint64(w.Bytes))
}

// diskSpace reports the free and total bytes of the file system holding
// a directory (free: available to an unprivileged process).
type diskSpace func(dir string) (free, total uint64, err error)

// diskGuard watches the free space of the data directory's file system.
// Below the watermark the node refuses optional work (CheckOptional), logs
// loudly, and reports it in /metrics and /readyz (degraded, still ready:
// readings keep being taken for as long as the disk holds them). Safe for
// concurrent use.
type diskGuard struct {
	dir       string
	watermark Watermark
	space     diskSpace
	logger    *slog.Logger
	now       func() time.Time

	mu        sync.Mutex
	free      uint64
	total     uint64
	err       error // of the last measure
	low       bool
	lastLoud  time.Time // of the last warning while low
	lowEvents int64     // times the disk went below the watermark
	full      bool      // below the reserve at the last CheckAppend
}

// diskWarnEvery is how often a node still below the watermark says so.
const diskWarnEvery = time.Minute

// refresh measures the free space and logs a change of state.
func (d *diskGuard) refresh() {
	free, total, err := d.space(d.dir)
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
	if err != nil {
		d.logger.Error("cannot measure the free space of the data directory", "err", err)
		return
	}
	d.free, d.total = free, total
	low := free < d.watermark.of(total)
	switch {
	case low && !d.low:
		d.lowEvents++
		d.lastLoud = now
		d.logger.Error("DISK SPACE LOW: the data directory's disk is below its watermark; exports are refused, readings are still taken while space lasts; free space now",
			"free", formatBytes(free), "total", formatBytes(total), "watermark", d.watermark.String())
	case low && now.Sub(d.lastLoud) >= diskWarnEvery:
		d.lastLoud = now
		d.logger.Error("DISK SPACE STILL LOW: free space in the data directory now",
			"free", formatBytes(free), "watermark", d.watermark.String())
	case !low && d.low:
		d.logger.Info("disk space back above the watermark; optional work is accepted again",
			"free", formatBytes(free), "watermark", d.watermark.String())
	}
	d.low = low
}

// run refreshes every interval until ctx ends.
func (d *diskGuard) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.refresh()
		}
	}
}

// CheckOptional returns nil if optional work that will write about need
// bytes into the data directory may start: the free space, measured now,
// minus need stays above the watermark. Otherwise EUNAVAILABLE, saying so.
func (d *diskGuard) CheckOptional(need int64) error {
	d.refresh()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "cannot measure the free disk space of the data directory", Err: d.err}
	}
	mark := d.watermark.of(d.total)
	if d.low || d.free < mark+uint64(max(need, 0)) {
		return vigil.Errorf(vigil.EUNAVAILABLE, "disk space low: %s free on the data directory's disk, the low watermark is %s; optional work (exports) is refused until space is freed",
			formatBytes(d.free), formatBytes(mark))
	}
	return nil
}

// reserve is the free space kept for the stores to copy what the log
// holds, and below which the log takes no more readings: the smaller of
// maxDiskReserve and an eighth of the disk. The embedded log must not meet
// a full disk: a write error stops its stream until the node restarts,
// while a refusal here ends as soon as space is freed.
func (d *diskGuard) reserve(total uint64) uint64 { return min(maxDiskReserve, total/8) }

// maxDiskReserve bounds the reserve: 64 MiB.
const maxDiskReserve = 64 << 20

// CheckAppend returns nil if the log may take more readings: the free
// space, measured now, is above the reserve. Otherwise EUNAVAILABLE.
func (d *diskGuard) CheckAppend() error {
	free, total, err := d.space(d.dir)
	if err != nil {
		return nil // unknown: the log finds out itself
	}
	r := d.reserve(total)
	full := free < r
	d.mu.Lock()
	switch {
	case full && !d.full:
		d.logger.Error("DISK FULL: the data directory's disk is below the reserve kept for the stores; readings are refused until space is freed",
			"free", formatBytes(free), "reserve", formatBytes(r))
	case !full && d.full:
		d.logger.Info("disk space back above the reserve; readings are taken again", "free", formatBytes(free))
	}
	d.full = full
	d.mu.Unlock()
	if full {
		return vigil.Errorf(vigil.EUNAVAILABLE, "disk full: %s free on the data directory's disk, below the %s kept for the stores; readings are refused until space is freed",
			formatBytes(free), formatBytes(r))
	}
	return nil
}

// Ping fails while the disk is below the reserve (readings are refused);
// above it, a low disk degrades the node (Degraded) but leaves it ready.
func (d *diskGuard) Ping(context.Context) error { return d.CheckAppend() }

// Degraded says why optional work is refused, or "".
func (d *diskGuard) Degraded() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.err != nil:
		return "free space unknown"
	case d.low:
		return fmt.Sprintf("disk space low: %s free, below the watermark of %s; optional work refused", formatBytes(d.free), formatBytes(d.watermark.of(d.total)))
	}
	return ""
}

// state returns the last measure, for metrics.
func (d *diskGuard) state() (free, total uint64, low bool, events int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.free, d.total, d.low, d.lowEvents
}

// formatBytes writes n in the largest binary unit that keeps it at least 1.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + []string{"KiB", "MiB", "GiB", "TiB"}[exp]
}

// diskCheckEvery is how often a node measures its free disk space (and
// before every optional job).
const diskCheckEvery = 5 * time.Second

// watchDisk sets up the disk guard of the data directory and its metrics.
func (s *Server) watchDisk() error {
	w := Watermark{}
	if v := s.opts.DiskLowWatermark; v != "0" {
		if v == "" {
			v = DefaultDiskLowWatermark
		}
		var err error
		if w, err = ParseWatermark(v); err != nil {
			return vigil.Errorf(vigil.EINVALID, "disk low watermark: %v", err)
		}
	}
	space := s.opts.space
	if space == nil {
		space = statfsSpace
	}
	s.disk = &diskGuard{dir: s.opts.DataDir, watermark: w, space: space, logger: s.logger, now: time.Now}
	s.disk.refresh()
	gauge := func(name, help string, f func() float64) {
		s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("vigil_disk_free_bytes", "Free bytes on the data directory's disk, as last measured (every 5 s).", func() float64 {
		free, _, _, _ := s.disk.state()
		return float64(free)
	})
	gauge("vigil_disk_low_watermark_bytes", "Free space below which optional work (exports) is refused.", func() float64 {
		_, total, _, _ := s.disk.state()
		return float64(s.disk.watermark.of(total))
	})
	gauge("vigil_disk_low", "1 while the data directory's disk is below its low watermark, else 0.", func() float64 {
		if _, _, low, _ := s.disk.state(); low {
			return 1
		}
		return 0
	})
	return nil
}
