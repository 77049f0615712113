package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gatt"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mapping"
)

// Defaults for Options.
const (
	DefaultMaxPacketSize  = 256 << 10
	DefaultReceiveMaximum = 64
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxKeepAlive   = 10 * time.Minute
	DefaultWriteTimeout   = 30 * time.Second
	DefaultRate           = 50  // messages per second per device
	DefaultBurst          = 500 // messages
	DefaultStatusInterval = time.Minute
	MaxStatusBytes        = 4 << 10
)

// Source is the adapter name Vigil records for readings and quarantine
// items that arrived over MQTT.
const Source = "mqtt"

// RateLimit bounds how fast one device may publish: a token bucket of
// Burst messages refilled at PerSecond. The zero value means the defaults
// (DefaultRate, DefaultBurst); a negative PerSecond disables the limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// StatusRecorder keeps the connection state and last status of devices
// for the device registry. The server calls it when a device connects or
// disconnects, when it publishes a status message, and otherwise at most
// once per Options.StatusInterval while it is active. Calls for one
// connection are made one at a time, in order. An error is logged; it does not affect
// the device.
type StatusRecorder interface {
	RecordDeviceStatus(ctx context.Context, st DeviceStatus) error
}

// Templates runs mapping templates over vendor messages; *mapping.Service
// implements it. Ingest returns once what it accepted and quarantined is
// durable; its error is as mapping.Service.Ingest's (a refusal, or a log
// failure after which the device must not be acknowledged).
type Templates interface {
	Ingest(ctx context.Context, p *vigil.Principal, source, name string, msg []byte, truncated bool) (*mapping.Answer, error)
}

// Options configure a Server. Ingest, Devices and HashSecret are required.
type Options struct {
	Ingest *ingest.Service // where readings go; Submit returns once they are durable
	// Gateway decodes the characteristic values gateways publish to
	// devices/{id}/gatt; nil: that topic is refused like any other.
	// Its Ingest is replaced by Ingest as the server reads devices.
	Gateway    *gatt.Gateway
	Devices    vigil.DeviceStore // device registry, for authentication
	HashSecret func(secret string) []byte

	// TLSConfig is used by Serve (required there). For client
	// certificates use ClientCertTLSConfig. ServeInsecure, for plain TCP,
	// ignores it.
	TLSConfig *tls.Config

	Auditor vigil.Auditor // may be nil: refusals are then only logged
	// FailureAuditor records refused CONNECTs (bad or missing
	// credentials) in place of Auditor, at a bounded rate per address
	// (audit.FailureLimiter); nil: Auditor.
	FailureAuditor vigil.Auditor
	// AttemptedNames redacts the user names of refused CONNECTs before they
	// are audited or logged (a keyed hash and the first characters; nil:
	// the first characters only): the name as sent is never kept.
	AttemptedNames *auth.NameRedactor
	Status         StatusRecorder // may be nil: status is then kept in memory only
	// Templates maps vendor messages a device publishes to
	// devices/{id}/raw/{template}; nil: those topics are refused like any
	// topic not the device's own.
	Templates Templates
	Logger    *slog.Logger // default: discard
	Now       func() time.Time

	RateLimit      RateLimit     // per device
	MaxPacketSize  int           // largest packet accepted, in bytes; DefaultMaxPacketSize if 0
	ReceiveMaximum int           // QoS 1 publishes one connection may have in flight; DefaultReceiveMaximum if 0
	ConnectTimeout time.Duration // TLS handshake plus CONNECT; DefaultConnectTimeout if 0
	MaxKeepAlive   time.Duration // keep-alive imposed on devices asking for none or more; DefaultMaxKeepAlive if 0
	WriteTimeout   time.Duration // a device that reads nothing for this long is dropped; DefaultWriteTimeout if 0
	StatusInterval time.Duration // most frequent "last seen" update to Status; DefaultStatusInterval if 0
	DeviceCacheTTL time.Duration // reuse of device records by ingest; DefaultDeviceCacheTTL if 0, negative: no cache

	// Broadcaster carries session takeovers between the nodes
	// (ListenTakeovers); nil: one node. NodeID names this node in them.
	Broadcaster vigil.Broadcaster
	NodeID      string
}

// ClientCertTLSConfig returns a copy of base that also accepts (but does
// not require) client certificates issued by the CAs in pool; a device
// presenting a verified certificate is identified by its CommonName and
// needs no password.
func ClientCertTLSConfig(base *tls.Config, pool *x509.CertPool) *tls.Config {
	c := base.Clone()
	c.ClientCAs = pool
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return c
}

// Server is an MQTT 3.1.1 and 5 listener for devices. It is safe for
// concurrent use.
type Server struct {
	opts    Options
	logger  *slog.Logger
	ingest  *ingest.Service // a copy of Options.Ingest reading devices through cache
	gateway *gatt.Gateway   // a copy of Options.Gateway submitting through ingest; nil without one
	devices *deviceCache    // nil without a cache

	ctx    context.Context // for Submit and the store; cancelled when Shutdown gives up
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	conned    map[string]*conn         // authenticated connections by device id
	status    map[string]*DeviceStatus // by device id, since start
	limiters  map[string]*limiter      // by device id, kept across reconnects
	closing   bool
	announce  bool           // ListenTakeovers is on: broadcast connect notices
	wg        sync.WaitGroup // connection goroutines

	oversizeNames atomic.Int64 // CONNECTs refused for a user name over auth.MaxUsernameBytes
	refused       *prometheus.CounterVec
}

// OversizeUsernames returns how many CONNECTs were refused for a user name
// longer than auth.MaxUsernameBytes.
func (s *Server) OversizeUsernames() int64 { return s.oversizeNames.Load() }

// NewServer returns a server for opts; Serve starts it on a listener.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPacketSize <= 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.MaxPacketSize > maxVarint {
		opts.MaxPacketSize = maxVarint
	}
	if opts.ReceiveMaximum <= 0 {
		opts.ReceiveMaximum = DefaultReceiveMaximum
	}
	if opts.ReceiveMaximum > 65535 {
		opts.ReceiveMaximum = 65535
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.MaxKeepAlive <= 0 {
		opts.MaxKeepAlive = DefaultMaxKeepAlive
	}
	if opts.MaxKeepAlive > 65535*time.Second {
		opts.MaxKeepAlive = 65535 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = DefaultStatusInterval
	}
	if opts.RateLimit.PerSecond == 0 {
		opts.RateLimit = RateLimit{PerSecond: DefaultRate, Burst: DefaultBurst}
	}
	if opts.RateLimit.Burst <= 0 {
		opts.RateLimit.Burst = 1
	}
	if opts.DeviceCacheTTL == 0 {
		opts.DeviceCacheTTL = DefaultDeviceCacheTTL
	}
	svc := opts.Ingest
	var cache *deviceCache
	if opts.DeviceCacheTTL > 0 && svc != nil {
		cache = newDeviceCache(svc.Devices, opts.DeviceCacheTTL, opts.Now)
		cp := *svc
		cp.Devices = cache
		svc = &cp
	}
	var gw *gatt.Gateway
	if opts.Gateway != nil {
		cp := *opts.Gateway
		cp.Ingest = svc
		gw = &cp
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:      opts,
		logger:    opts.Logger,
		ingest:    svc,
		gateway:   gw,
		devices:   cache,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		conned:    map[string]*conn{},
		status:    map[string]*DeviceStatus{},
		limiters:  map[string]*limiter{},
		refused:   newRefusedCounter(),
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("mqtt: server closed")

// Serve accepts connections on ln until Shutdown and serves MQTT over TLS
// (Options.TLSConfig) on each, in its own goroutine. It returns
// ErrServerClosed after Shutdown, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		ln.Close()
		return errors.New("serve mqtt: no TLS configuration (use ServeInsecure for plain TCP)")
	}
	return s.serve(ln, true)
}

// ServeInsecure is Serve over plain TCP: device tokens cross the network
// in clear. Use it only where the operator enabled it for a listener
// (a gateway on a private link, tests).
func (s *Server) ServeInsecure(ln net.Listener) error { return s.serve(ln, false) }

func (s *Server) serve(ln net.Listener, useTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or similar: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger.Warn("mqtt accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc, useTLS)
	}
}

// Shutdown stops accepting connections, stops reading from every
// connection, waits for the publishes in flight to become durable and be
// acknowledged, then disconnects every device (MQTT 5: reason 0x8B server
// shutting down). If ctx ends first, connections are closed at once and
// pending Submits are cancelled (their publishes stay unacknowledged).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.kick(ReasonServerShuttingDown, true)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.close()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("shut down mqtt: %w", ctx.Err())
	}
}

// Disconnect closes the connection of device id at once (MQTT 5: reason
// 0x98 administrative action). Call it when a device is revoked; its
// reconnection is then refused because the registry says it is revoked.
// It reports whether the device was connected here. With ListenTakeovers
// on, the other nodes are told too (DeviceTopic), and close theirs.
func (s *Server) Disconnect(deviceID string) bool {
	s.announceDevice(deviceID, true)
	return s.disconnectLocal(deviceID)
}

func (s *Server) disconnectLocal(deviceID string) bool {
	s.forgetDevice(deviceID)
	s.mu.Lock()
	c := s.conned[deviceID]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.kick(ReasonAdministrative, false)
	return true
}

// DeviceChanged tells the server that device id was changed in the
// registry (reassigned, token rotated, revoked), so that the next message
// uses the new record. Without it a change is seen within DeviceCacheTTL.
// With ListenTakeovers on, the other nodes are told too.
func (s *Server) DeviceChanged(deviceID string) {
	s.announceDevice(deviceID, false)
	s.forgetDevice(deviceID)
}

func (s *Server) forgetDevice(deviceID string) {
	if s.devices != nil {
		s.devices.forget(deviceID)
	}
}

// Connected reports whether device id has an open connection.
func (s *Server) Connected(deviceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conned[deviceID] != nil
}

// ConnectedCount returns how many devices are connected.
func (s *Server) ConnectedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conned)
}

// Publish sends payload to device id on devices/{id}/commands at the QoS
// it subscribed with (0 or 1). It returns once the message is queued for
// the connection, not when the device has it: a command is not kept for a
// device that is offline or not subscribed (ENOTFOUND) and is not resent
// after a disconnect. ETOOLARGE if the device's maximum packet size is
// smaller than the message.
func (s *Server) Publish(ctx context.Context, deviceID string, payload []byte) error {
	s.mu.Lock()
	c := s.conned[deviceID]
	s.mu.Unlock()
	if c == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "device %s is not connected", deviceID)
	}
	return c.publishCommand(ctx, payload)
}

// Status returns what the server knows of device id since it started:
// connection state, last seen, and its last status message.
func (s *Server) Status(deviceID string) (DeviceStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[deviceID]
	if !ok {
		return DeviceStatus{}, false
	}
	return st.clone(), true
}

// register makes c the connection of its device, taking over (and
// kicking) any previous one. The device's rate limiter outlives its
// connections, so reconnecting does not refill the bucket.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	c.limiter = s.limiters[c.deviceID]
	if c.limiter == nil {
		c.limiter = newLimiter(s.opts.RateLimit, s.opts.Now())
		s.limiters[c.deviceID] = c.limiter
	}
	if old := s.conned[c.deviceID]; old != nil {
		old.kick(ReasonSessionTakenOver, false)
	}
	s.conned[c.deviceID] = c
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if c.deviceID != "" && s.conned[c.deviceID] == c {
		delete(s.conned, c.deviceID)
	}
}

func (s *Server) audit(ctx context.Context, e vigil.AuditEntry) {
	s.record(ctx, s.opts.Auditor, slog.LevelInfo, e)
}

// auditRefusedConnect records a refused CONNECT through FailureAuditor
// (bounded per address), and logs it at debug level only: a stranger
// could otherwise fill the server log.
func (s *Server) auditRefusedConnect(ctx context.Context, e vigil.AuditEntry) {
	a := s.opts.FailureAuditor
	if a == nil {
		a = s.opts.Auditor
	}
	s.record(ctx, a, slog.LevelDebug, e)
}

func (s *Server) record(ctx context.Context, a vigil.Auditor, level slog.Level, e vigil.AuditEntry) {
	e.Time = s.opts.Now().UTC()
	if e.Role == "" && e.Actor != "" {
		e.Role = vigil.RoleDevice
	}
	s.logger.Log(ctx, level, "mqtt audit", "action", e.Action, "actor", e.ActorName, "resource", e.Resource, "outcome", e.Outcome, "detail", e.Detail, "remote", e.Remote)
	if a == nil {
		return
	}
	if err := a.Record(ctx, e); err != nil {
		s.logger.Error("mqtt audit record failed", "err", err, "action", e.Action, "actor", e.ActorName)
	}
}
