package hl7

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mllp"
)

// Source is the adapter name Vigil records for readings and quarantine
// items that arrived over MLLP.
const Source = "hl7"

// Defaults for Options.
const (
	DefaultMaxMessageBytes  = 1 << 20
	DefaultMaxConns         = 256
	DefaultIdleTimeout      = 10 * time.Minute
	DefaultFrameTimeout     = 30 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCacheTTL         = 10 * time.Second
	// DefaultQuarantinePerSecond and DefaultQuarantineBurst bound the
	// quarantine writes one client address may cause.
	DefaultQuarantinePerSecond = 5
	DefaultQuarantineBurst     = 100
	// DefaultUnregisteredPerSecond and DefaultUnregisteredBurst bound the
	// quarantine writes of unregistered senders, all addresses together.
	DefaultUnregisteredPerSecond = 2
	DefaultUnregisteredBurst     = 50
	// MaxQuarantinedBytes is the most of one message the quarantine keeps.
	MaxQuarantinedBytes = 64 << 10
	maxBudgetAddrs      = 10000
)

// Options configure a Server. Ingest, Senders, Patients, Devices and
// Codes are required.
type Options struct {
	Ingest   *ingest.Service      // where readings go; SubmitItems returns once they are durable
	Senders  vigil.HL7SenderStore // registered senders (MSH-3, MSH-4)
	Patients vigil.PatientStore   // PID-3 → patient by MRN
	Devices  vigil.DeviceStore    // OBX-18 → a device of the patient
	Codes    Codes                // MDC → LOINC and UCUM

	// FailureAuditor records messages from unregistered senders
	// (auth.signin, denied), bounded per address (audit.FailureLimiter);
	// nil: they are only logged at debug level and counted.
	FailureAuditor vigil.Auditor

	// TLSConfig is used by Serve (required there); ClientCertTLSConfig
	// adds client certificates. ServeInsecure ignores it.
	TLSConfig *tls.Config
	Logger    *slog.Logger // default: discard
	Now       func() time.Time
	// Zone is the time zone of message times sent without an offset; UTC
	// if nil.
	Zone *time.Location

	MaxMessageBytes  int           // largest message; DefaultMaxMessageBytes if 0
	MaxConns         int           // most connections at once; DefaultMaxConns if 0
	IdleTimeout      time.Duration // a connection with no message for this long is closed; DefaultIdleTimeout if 0
	FrameTimeout     time.Duration // a message must arrive whole within this once begun; DefaultFrameTimeout if 0
	WriteTimeout     time.Duration // an ACK not taken within this closes the connection; DefaultWriteTimeout if 0
	HandshakeTimeout time.Duration // TLS handshake; DefaultHandshakeTimeout if 0
	CacheTTL         time.Duration // reuse of sender, patient and device lookups; DefaultCacheTTL if 0, negative: none

	// QuarantinePerSecond and QuarantineBurst bound, per client address,
	// the messages whose refusal is written to the quarantine (a token
	// bucket; defaults DefaultQuarantinePerSecond, DefaultQuarantineBurst).
	// An address over its budget is answered AE and nothing of its
	// messages is stored until the bucket refills: the sender keeps them
	// and sends them again.
	QuarantinePerSecond float64
	QuarantineBurst     int
	// UnregisteredPerSecond and UnregisteredBurst bound, all addresses
	// together, the quarantine writes of messages from unregistered
	// senders; over it they are answered AR and only counted.
	UnregisteredPerSecond float64
	UnregisteredBurst     int
}

// ClientCertTLSConfig returns a copy of base that asks for client
// certificates issued by the CAs in pool: required if require, else
// verified when given.
func ClientCertTLSConfig(base *tls.Config, pool *x509.CertPool, require bool) *tls.Config {
	c := base.Clone()
	c.ClientCAs = pool
	c.ClientAuth = tls.VerifyClientCertIfGiven
	if require {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// Server is an MLLP listener for HL7 v2 ORU^R01 messages. Each message
// is answered with an ACK only once the readings it carries are durable
// (or it was refused, and kept in the quarantine). It is safe for
// concurrent use.
type Server struct {
	opts    Options
	logger  *slog.Logger
	mapper  *Mapper
	metrics *metrics
	cache   *lookups

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	budgetMu     sync.Mutex
	budgets      map[string]*bucket // quarantine budget by client host
	unregistered *bucket

	ackSeq   atomic.Uint64
	ackEpoch string
}

// NewServer returns a server for opts; Serve starts it on a listener.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.IdleTimeout, DefaultIdleTimeout)
	def(&opts.FrameTimeout, DefaultFrameTimeout)
	def(&opts.WriteTimeout, DefaultWriteTimeout)
	def(&opts.HandshakeTimeout, DefaultHandshakeTimeout)
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.QuarantinePerSecond <= 0 {
		opts.QuarantinePerSecond = DefaultQuarantinePerSecond
	}
	if opts.QuarantineBurst <= 0 {
		opts.QuarantineBurst = DefaultQuarantineBurst
	}
	if opts.UnregisteredPerSecond <= 0 {
		opts.UnregisteredPerSecond = DefaultUnregisteredPerSecond
	}
	if opts.UnregisteredBurst <= 0 {
		opts.UnregisteredBurst = DefaultUnregisteredBurst
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		logger:    opts.Logger,
		mapper:    &Mapper{Codes: opts.Codes, Zone: opts.Zone},
		metrics:   newMetrics(),
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		budgets:   map[string]*bucket{},
		ackEpoch:  strconv.FormatInt(opts.Now().Unix()%1e9, 36),
	}
	s.unregistered = newBucket(opts.UnregisteredPerSecond, opts.UnregisteredBurst, opts.Now())
	s.cache = newLookups(opts, s.opts.CacheTTL)
	if opts.Ingest != nil && s.opts.CacheTTL > 0 {
		// Ingest checks each message's patient exists: from the cache.
		cp := *opts.Ingest
		cp.Patients = &cachedPatients{PatientStore: cp.Patients, l: s.cache, found: map[string]cached[*vigil.Patient]{}}
		s.opts.Ingest = &cp
	}
	return s
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("hl7: server closed")

// Serve accepts connections on ln until Shutdown and serves MLLP over TLS
// (Options.TLSConfig) on each. It returns ErrServerClosed after Shutdown,
// or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		ln.Close()
		return errors.New("serve hl7: no TLS configuration (use ServeInsecure for plain TCP)")
	}
	return s.serve(ln, true)
}

// ServeInsecure is Serve over plain TCP, for a sender on a private link
// that cannot speak TLS, and for tests.
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
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger.Warn("hl7 accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if len(s.conns) >= s.opts.MaxConns {
			s.mu.Unlock()
			s.metrics.connsRefused.Inc()
			s.logger.Debug("hl7 connection refused: too many connections", "remote", c.remote, "max", s.opts.MaxConns)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.metrics.conns.Inc()
		go c.serve(useTLS)
	}
}

// Shutdown stops accepting connections, closes idle ones, lets each
// message being handled finish and be acknowledged, then closes its
// connection. If ctx ends first, connections are closed at once and
// pending stores are cancelled (their messages stay unacknowledged; the
// senders send them again).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.stopIfIdle()
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
			c.mu.Lock()
			c.nc.Close()
			c.mu.Unlock()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("shut down hl7: %w", ctx.Err())
	}
}

// SendersChanged tells the server that the registered senders changed, so
// that the next message sees them at once (otherwise within CacheTTL).
func (s *Server) SendersChanged() { s.cache.forgetSenders() }

// Collectors are the server's metrics, for the caller to register.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics.collectors() }

// conn is one MLLP connection: one message at a time, as MLLP senders
// wait for each ACK before the next message.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string

	mu   sync.Mutex
	busy bool // a message is being read or handled
	stop bool // Shutdown asked it to stop
}

// stopIfIdle asks the connection to stop after its current message, and
// wakes it at once if it is waiting for one. Called with s.mu held.
func (c *conn) stopIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stop = true
	if !c.busy {
		c.nc.SetReadDeadline(time.Now())
	}
}

func (c *conn) serve(useTLS bool) {
	s := c.s
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("hl7 connection panicked; closed", "panic", r, "remote", c.remote, "stack", string(debug.Stack()))
		}
		c.mu.Lock()
		c.nc.Close()
		c.mu.Unlock()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.metrics.conns.Dec()
		s.wg.Done()
	}()
	if useTLS {
		tc := tls.Server(c.nc, s.opts.TLSConfig)
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.logger.Debug("hl7 TLS handshake failed", "remote", c.remote, "err", err)
			return
		}
		c.mu.Lock()
		c.nc = tc
		c.mu.Unlock()
	}
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		host = c.remote
	}
	r := mllp.NewReader(c.nc)
	var out []byte
	for {
		c.mu.Lock()
		if c.stop {
			c.mu.Unlock()
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		c.mu.Unlock()
		if err := r.WaitFrame(); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logger.Debug("hl7 connection ends", "remote", c.remote, "err", err)
			}
			return
		}
		c.mu.Lock()
		if c.stop {
			c.mu.Unlock()
			return // shutting down: the sender sends this message again
		}
		c.busy = true
		c.mu.Unlock()
		c.nc.SetReadDeadline(time.Now().Add(s.opts.FrameTimeout))
		body, err := r.ReadBody(s.opts.MaxMessageBytes)
		tooLarge := errors.Is(err, mllp.ErrTooLarge)
		if err != nil && !tooLarge {
			s.logger.Debug("hl7 frame unreadable; connection closed", "remote", c.remote, "err", err)
			return
		}
		ack, ok := s.handle(s.ctx, host, body, tooLarge)
		if !ok {
			return
		}
		out = mllp.AppendFrame(out[:0], ack)
		c.nc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if _, err := c.nc.Write(out); err != nil {
			s.logger.Debug("hl7 ACK not delivered", "remote", c.remote, "err", err)
			return
		}
		c.mu.Lock()
		c.busy = false
		stop := c.stop
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// handle answers one message. ok is false when no ACK may be sent (the
// server is shutting down and the store was cancelled).
func (s *Server) handle(ctx context.Context, host string, body []byte, tooLarge bool) (ack []byte, ok bool) {
	now := s.opts.Now()
	d := DefaultDelimiters
	var h Header
	msg, perr := Parse(body)
	if msg != nil {
		d, h = msg.Delims, msg.Header()
	}
	answer := func(a Ack) ([]byte, bool) {
		s.metrics.messages.WithLabelValues(a.Code).Inc()
		id := "V" + s.ackEpoch + "." + strconv.FormatUint(s.ackSeq.Add(1), 36)
		return AppendAck(nil, d, h, a, AckOptions{ControlID: id, Time: now}), true
	}
	refuseWhole := func(code string, p *Problem, registered *vigil.HL7Sender, keep bool) ([]byte, bool) {
		a := Ack{Code: code, Text: p.Reason, Problems: []*Problem{p}}
		if !keep {
			return answer(a)
		}
		principal := s.principal(registered, h)
		kept, err := s.quarantine(ctx, host, principal, registered != nil, body, tooLarge, []*Problem{p})
		if err != nil {
			if ctx.Err() != nil {
				return nil, false
			}
			s.logger.Error("hl7 quarantine failed", "err", err, "remote", host)
			return answer(Ack{Code: AckError, Text: "Vigil could not store the message; send it again", Problems: []*Problem{{Code: ErrCodeApplicationInternal, Reason: "the quarantine could not be written; send the message again"}}})
		}
		if !kept && registered != nil {
			return answer(overBudget())
		}
		return answer(a)
	}

	sender, err := s.lookupSender(ctx, h)
	if err != nil {
		return s.unavailable(ctx, answer, err)
	}
	if tooLarge {
		p := &Problem{Code: ErrCodeApplicationInternal, Reason: fmt.Sprintf("message larger than %d bytes", s.opts.MaxMessageBytes)}
		return refuseWhole(AckReject, p, sender, true)
	}
	if perr != nil {
		p := &Problem{Code: ErrCodeSegmentSequence, Reason: perr.Error()}
		return refuseWhole(AckReject, p, nil, true)
	}
	if sender == nil {
		p := &Problem{Code: ErrCodeApplicationInternal, Segment: "MSH", Position: 1, Field: 3,
			Reason: fmt.Sprintf("sender %s^%s (MSH-3^MSH-4) is not registered with Vigil", clip(h.SendingApplication), clip(h.SendingFacility))}
		s.auditUnregistered(ctx, host, h)
		return refuseWhole(AckReject, p, nil, true)
	}
	if p := CheckHeader(h); p != nil {
		// Training and debugging messages are not clinical data: nothing of
		// them is kept, not even in the quarantine.
		keep := p.Code != ErrCodeUnsupportedProcID || (h.ProcessingID != "T" && h.ProcessingID != "D")
		return refuseWhole(AckReject, p, sender, keep)
	}
	if s.overBudget(host, now) {
		return answer(overBudget())
	}

	mapped := s.mapper.Map(msg)
	refused := mapped.Refused
	principal := s.principal(sender, h)

	// PID-3 → patient; OBX-18 → one of the patient's devices.
	patients := make([]string, len(mapped.Patients))
	patientErr := make([]string, len(mapped.Patients))
	for i, ids := range mapped.Patients {
		id, ok := SelectPatientID(ids, sender.AssigningAuthority)
		if !ok {
			if sender.AssigningAuthority != "" {
				patientErr[i] = fmt.Sprintf("PID-3 has no identifier of assigning authority %s", sender.AssigningAuthority)
			} else {
				patientErr[i] = "PID-3 (patient identifier list) is empty"
			}
			continue
		}
		pid, err := s.cache.patientByMRN(ctx, id.ID)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.ENOTFOUND {
				return s.unavailable(ctx, answer, err)
			}
			patientErr[i] = fmt.Sprintf("no patient has MRN %s", clip(id.ID))
			continue
		}
		patients[i] = pid
	}
	var items []ingest.Item
	var itemObs []int // index into mapped.Observations of each item
	for i := range mapped.Observations {
		ob := &mapped.Observations[i]
		if msg := patientErr[ob.Patient]; msg != "" {
			for _, pos := range ob.Segments {
				refused = append(refused, &Problem{Code: ErrCodeUnknownKey, Segment: "OBX", Position: pos, Reason: msg})
			}
			continue
		}
		it := ob.Item
		it.PatientID = patients[ob.Patient]
		if !ob.Equipment.Empty() {
			dev, err := s.cache.patientDevice(ctx, it.PatientID, ob.Equipment)
			if err != nil {
				return s.unavailable(ctx, answer, err)
			}
			it.DeviceID = dev
		}
		items = append(items, it)
		itemObs = append(itemObs, i)
	}

	stored := 0
	ingestRefused := 0
	if len(items) > 0 {
		res, err := s.opts.Ingest.SubmitItems(ctx, principal, Source, items)
		if res == nil {
			return s.unavailable(ctx, answer, err)
		}
		stored = res.Accepted
		ingestRefused = len(res.Rejected)
		for _, rj := range res.Rejected {
			if rj.Index < 0 {
				for _, ob := range mapped.Observations {
					for _, pos := range ob.Segments {
						refused = append(refused, &Problem{Code: ErrCodeApplicationInternal, Segment: "OBX", Position: pos, Reason: rj.Reason})
					}
				}
				break
			}
			for _, pos := range mapped.Observations[itemObs[rj.Index]].Segments {
				refused = append(refused, &Problem{Code: ErrCodeApplicationInternal, Segment: "OBX", Position: pos, Reason: rj.Reason})
			}
		}
	}
	s.metrics.observations.WithLabelValues("stored").Add(float64(stored))
	s.metrics.observations.WithLabelValues("ignored").Add(float64(mapped.Ignored))
	s.metrics.observations.WithLabelValues("refused").Add(float64(len(refused)))
	if len(refused) == 0 {
		text := fmt.Sprintf("%d readings stored", stored)
		if stored == 0 {
			text = "no readings in the message"
		}
		return answer(Ack{Code: AckAccept, Text: text})
	}
	// The message is kept whole with every reason; the items ingest
	// refused are kept by ingest too, as readings that replay.
	if _, err := s.quarantine(ctx, host, principal, true, body, false, refused); err != nil {
		return s.unavailable(ctx, answer, err)
	}
	s.debit(host, now, ingestRefused)
	if stored > 0 {
		return answer(Ack{Code: AckAccept, Severity: SeverityWarning, Problems: refused,
			Text: fmt.Sprintf("%d readings stored; %d observations refused, kept in Vigil's quarantine", stored, len(refused))})
	}
	return answer(Ack{Code: AckError, Problems: refused, Text: fmt.Sprintf("no reading stored: %s", refused[0].Error())})
}

func overBudget() Ack {
	return Ack{Code: AckError, Text: "too many refused messages from this address: nothing stored; send again later",
		Problems: []*Problem{{Code: ErrCodeApplicationInternal, Reason: "too many refused messages from this address: nothing of this message was stored; send it again later"}}}
}

// unavailable answers a message Vigil could not store for a failure of
// its own (store or log): AE, so that the sender sends it again; nothing
// when the server is shutting down.
func (s *Server) unavailable(ctx context.Context, answer func(Ack) ([]byte, bool), err error) ([]byte, bool) {
	if ctx.Err() != nil {
		return nil, false
	}
	s.logger.Error("hl7 message not stored", "err", err)
	return answer(Ack{Code: AckError, Text: "Vigil could not store the message; send it again",
		Problems: []*Problem{{Code: ErrCodeApplicationInternal, Reason: "Vigil could not store the message; send it again"}}})
}

// principal is who the readings of a message are from: the registered
// sender, as an integration; an unregistered one is named for the
// quarantine only.
func (s *Server) principal(sender *vigil.HL7Sender, h Header) *vigil.Principal {
	if sender != nil {
		return &vigil.Principal{Role: vigil.RoleIntegration, UserID: sender.ID, Name: "hl7 " + sender.Application + "^" + sender.Facility}
	}
	name := "hl7:" + clip(h.SendingApplication) + "^" + clip(h.SendingFacility)
	return &vigil.Principal{Role: vigil.RoleIntegration, UserID: name, Name: name}
}

// lookupSender returns the registered sender of h; nil and no error if it
// is not registered; an error if the store failed.
func (s *Server) lookupSender(ctx context.Context, h Header) (*vigil.HL7Sender, error) {
	if h.SendingApplication == "" || len(h.SendingApplication) > vigil.MaxHL7NameBytes || len(h.SendingFacility) > vigil.MaxHL7NameBytes {
		return nil, nil
	}
	sn, err := s.cache.sender(ctx, h.SendingApplication, h.SendingFacility)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, nil
	}
	return sn, err
}

// quarantine keeps the message (its first MaxQuarantinedBytes) with the
// reasons, within the budget of host (and, for unregistered senders, the
// budget they all share). kept is false when over budget: then nothing
// was written.
func (s *Server) quarantine(ctx context.Context, host string, p *vigil.Principal, registered bool, body []byte, truncated bool, problems []*Problem) (kept bool, err error) {
	now := s.opts.Now()
	if s.overBudget(host, now) || !registered && !s.takeUnregistered(now) {
		s.metrics.suppressed.Inc()
		return false, nil
	}
	s.debit(host, now, 1)
	if len(body) > MaxQuarantinedBytes {
		body, truncated = body[:MaxQuarantinedBytes], true
	}
	var reason strings.Builder
	for i, pr := range problems {
		if i > 0 {
			reason.WriteString("; ")
		}
		if reason.Len() > 2000 {
			fmt.Fprintf(&reason, "and %d more", len(problems)-i)
			break
		}
		reason.WriteString(pr.Error())
	}
	err = s.opts.Ingest.QuarantineAll(ctx, p, Source, []ingest.Refusal{{Index: -1, Payload: body, Truncated: truncated,
		Reason: vigil.Errorf(vigil.EINVALID, "%s", reason.String())}})
	return err == nil, err
}

// auditUnregistered records a message from a sender not registered, as a
// refused sign-in, through the FailureAuditor (bounded per address).
func (s *Server) auditUnregistered(ctx context.Context, host string, h Header) {
	name := "hl7 " + clip(h.SendingApplication) + "^" + clip(h.SendingFacility)
	s.logger.Debug("hl7 message from an unregistered sender", "sender", name, "remote", host)
	if s.opts.FailureAuditor == nil {
		return
	}
	e := vigil.AuditEntry{Time: s.opts.Now().UTC(), ActorName: name, Role: vigil.RoleIntegration, Action: vigil.AuditSignIn,
		Resource: "mllp message", Remote: host, Outcome: vigil.AuditDenied, Detail: "HL7 sender not registered"}
	if err := s.opts.FailureAuditor.Record(ctx, e); err != nil {
		s.logger.Error("hl7 audit record failed", "err", err)
	}
}

// clip bounds a name taken from a message for reasons and logs.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
