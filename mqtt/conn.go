package mqtt

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

// conn is one device connection. The reader goroutine (serveConn) reads
// packets; handler goroutines (at most ReceiveMaximum) process publishes;
// the writer goroutine writes what they queue on out, coalescing packets
// into as few writes (and TLS records) as possible.
type conn struct {
	s       *Server
	nc      net.Conn
	remote  string
	version byte

	deviceID  string
	principal vigil.Principal
	limiter   *limiter
	keepAlive time.Duration // read deadline between packets (1.5 × keep-alive)
	problem   bool          // MQTT 5: the client accepts reason strings
	maxOut    int           // largest packet the client accepts
	refusal   string        // handshake: the RefusedMetric label of the CONNACK refusal sent

	nonce      string // random id of the connection, in connect notices
	acceptedAt int64  // when its CONNECT was accepted, Unix nanoseconds; set before register

	out       chan []byte // encoded packets; nil is "flush and close"
	done      chan struct{}
	closeOnce sync.Once
	handlers  sync.WaitGroup
	sem       chan struct{}

	kicked   atomic.Uint32 // reason code+1 set by kick; 0: not kicked
	graceful atomic.Bool   // the kick lets in-flight publishes finish

	mu     sync.Mutex // guards subQoS and nextID
	subQoS int        // QoS granted on the commands topic; -1: not subscribed
	nextID uint16

	statusMu   sync.Mutex // serialises recordStatus; guards lastStatus
	lastStatus time.Time  // when Options.Status was last told
}

// connError ends a connection: MQTT 5 devices are sent DISCONNECT with
// code (when non-zero) first.
type connError struct {
	code byte
	msg  string
}

func (e *connError) Error() string { return e.msg }

func (s *Server) serveConn(nc net.Conn, useTLS bool) {
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		out:    make(chan []byte, 16),
		done:   make(chan struct{}),
		subQoS: -1,
		maxOut: maxVarint + 5,
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("mqtt connection panicked; closed", "panic", r, "remote", c.remote, "device", c.deviceID, "stack", string(debug.Stack()))
			c.close()
		}
		c.handlers.Wait()
		s.unregister(c)
		if c.deviceID != "" {
			c.recordStatus(func(st *DeviceStatus) { st.Connected = false }, true)
		}
	}()
	br, err := c.handshake(useTLS)
	if err != nil {
		if c.refusal == "" {
			c.refusal = RefusedHandshake
		}
		s.refused.WithLabelValues(c.refusal).Inc()
		s.logger.Debug("mqtt connection refused", "remote", c.remote, "err", err)
		c.close()
		return
	}
	go c.writeLoop()
	err = c.readLoop(br)
	c.finish(err)
}

// handshake runs TLS and CONNECT/CONNACK under ConnectTimeout. On success
// the device is authenticated and registered.
func (c *conn) handshake(useTLS bool) (*bufio.Reader, error) {
	s := c.s
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.ConnectTimeout)
	defer cancel()
	c.nc.SetDeadline(time.Now().Add(s.opts.ConnectTimeout))
	var certCN string
	if useTLS {
		tc := tls.Server(c.nc, s.opts.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
			certCN = st.PeerCertificates[0].Subject.CommonName
		}
		c.nc = tc
	}
	br := bufio.NewReaderSize(c.nc, 2048)
	p, err := ReadPacket(br, 0, s.opts.MaxPacketSize)
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Code == ReasonUnsupportedVersion {
			b, _ := AppendPacket(nil, &Packet{Type: CONNACK, ReasonCode: connBadVersion}, Version311)
			c.nc.Write(b)
		}
		return nil, fmt.Errorf("read CONNECT: %w", err)
	}
	if p.Type != CONNECT {
		return nil, fmt.Errorf("first packet is type %d, not CONNECT", p.Type)
	}
	c.version = p.ProtocolLevel
	ack := &Packet{Type: CONNACK}
	refuse := func(reason byte, why string) (*bufio.Reader, error) {
		if c.version == Version5 {
			ack.ReasonCode = reason
			if c.problem {
				ack.Props.ReasonString = why
			}
		} else {
			ack.ReasonCode = connackCode311(reason)
		}
		c.refusal = refusedLabel(reason)
		b, _ := AppendPacket(nil, ack, c.version)
		c.nc.Write(b)
		return nil, fmt.Errorf("CONNECT refused (0x%02X): %s", reason, why)
	}
	c.problem = c.version == Version5 && (p.Props.RequestProblemInfo == nil || *p.Props.RequestProblemInfo != 0)
	if p.Props.MaximumPacketSize != nil {
		c.maxOut = int(*p.Props.MaximumPacketSize)
	}
	if p.Props.AuthMethod != "" {
		return refuse(ReasonBadAuthMethod, "enhanced authentication is not supported; use user name and password or a client certificate")
	}
	willQoS := (p.ConnectFlags >> 3) & 3
	if c.version == Version5 && willQoS == 2 {
		return refuse(ReasonQoSNotSupported, "will QoS 2 is not supported")
	}
	if c.version == Version5 && p.ConnectFlags&flagWillRetain != 0 {
		return refuse(ReasonRetainNotSupported, "retained messages are not supported")
	}
	if p.ClientID == "" && c.version == Version311 && p.ConnectFlags&flagCleanStart == 0 {
		return refuse(ReasonClientIDInvalid, "an empty client identifier needs a clean session")
	}

	if len(p.Username) > auth.MaxUsernameBytes {
		// Refused before the name is looked up, logged or audited.
		s.oversizeNames.Add(1)
		return refuse(ReasonBadCredentials, fmt.Sprintf("user name longer than %d bytes", auth.MaxUsernameBytes))
	}
	d, reason, why, err := c.authenticate(ctx, p, certCN)
	if err != nil {
		s.logger.Error("mqtt authentication failed on a store error", "err", err, "remote", c.remote)
		return refuse(ReasonServerUnavailable, "server unavailable")
	}
	if reason != ReasonSuccess {
		actor := ""
		if d != nil {
			actor = d.ID
		}
		// The user name as sent may be anything, a token or password among
		// them: only its redacted form is audited and logged. A known
		// device is named by Actor.
		name := p.Username
		if name == "" {
			name = certCN
		}
		name = s.opts.AttemptedNames.Redact(name)
		s.auditRefusedConnect(ctx, vigil.AuditEntry{Actor: actor, ActorName: name, Action: vigil.AuditSignIn, Resource: "mqtt CONNECT",
			Remote: c.remote, Outcome: vigil.AuditDenied, Detail: why})
		return refuse(reason, why)
	}
	c.deviceID = d.ID
	c.principal = vigil.Principal{Role: vigil.RoleDevice, DeviceID: d.ID, SubjectID: d.SubjectID, Name: d.ID}

	ka := time.Duration(p.KeepAlive) * time.Second
	if ka == 0 || ka > s.opts.MaxKeepAlive {
		ka = s.opts.MaxKeepAlive
		if c.version == Version5 {
			ack.Props.ServerKeepAlive = ptr(uint16(ka / time.Second))
		}
	}
	c.keepAlive = ka + ka/2
	if c.version == Version5 {
		ack.Props.ReceiveMaximum = ptr(uint16(s.opts.ReceiveMaximum))
		ack.Props.MaximumQoS = ptr(byte(1))
		ack.Props.RetainAvailable = ptr(byte(0))
		ack.Props.MaximumPacketSize = ptr(uint32(s.opts.MaxPacketSize + 5))
		ack.Props.WildcardSubAvailable = ptr(byte(0))
		ack.Props.SubIDAvailable = ptr(byte(0))
		ack.Props.SharedSubAvailable = ptr(byte(0))
		if p.Props.SessionExpiry != nil && *p.Props.SessionExpiry != 0 {
			// Sessions are not kept: every connection starts clean.
			ack.Props.SessionExpiry = ptr(uint32(0))
		}
		if p.ClientID == "" {
			ack.Props.AssignedClientID = "vigil-" + d.ID
		}
	}
	c.sem = make(chan struct{}, s.opts.ReceiveMaximum)
	c.nonce, c.acceptedAt = newNonce(), time.Now().UnixNano()
	if !s.register(c) {
		return refuse(ReasonServerShuttingDown, "server shutting down")
	}
	b, err := AppendPacket(nil, ack, c.version)
	if err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(b); err != nil {
		return nil, fmt.Errorf("write CONNACK: %w", err)
	}
	c.nc.SetDeadline(time.Time{})
	s.audit(ctx, vigil.AuditEntry{Actor: d.ID, ActorName: d.ID, Action: vigil.AuditSignIn, Resource: "mqtt CONNECT",
		Remote: c.remote, Outcome: vigil.AuditSuccess})
	s.announceConnect(c, p.ClientID)
	c.recordStatus(func(st *DeviceStatus) { st.Connected = true; st.Remote = c.remote }, true)
	return br, nil
}

// authenticate identifies the device by its verified client certificate
// (certCN) or by user name (device id) and password (device token). reason
// is ReasonSuccess or why it is refused; err is a store failure.
func (c *conn) authenticate(ctx context.Context, p *Packet, certCN string) (d *vigil.Device, reason byte, why string, err error) {
	s := c.s
	id := p.Username
	if certCN != "" {
		if id != "" && id != certCN {
			return nil, ReasonBadCredentials, "user name differs from the client certificate's device id", nil
		}
		id = certCN
	} else if id == "" || p.Password == nil {
		return nil, ReasonBadCredentials, "user name (device id) and password (device token) are required", nil
	}
	d, err = s.opts.Devices.Device(ctx, id)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		// Hash anyway so that an unknown id takes as long as a wrong token.
		s.opts.HashSecret(string(p.Password))
		return nil, ReasonBadCredentials, "bad user name or password", nil
	} else if err != nil {
		return nil, 0, "", fmt.Errorf("look up device: %w", err)
	}
	if certCN == "" && subtle.ConstantTimeCompare(s.opts.HashSecret(string(p.Password)), d.TokenHash) != 1 {
		return d, ReasonBadCredentials, "bad user name or password", nil
	}
	if !d.Active() {
		return d, ReasonNotAuthorized, "device revoked", nil
	}
	return d, ReasonSuccess, "", nil
}

// readLoop reads and dispatches packets until the connection ends.
func (c *conn) readLoop(br *bufio.Reader) error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.keepAlive))
		// kick sets kicked before its deadline, so a kick is seen here or
		// its deadline is the one in force.
		if k := c.kicked.Load(); k != 0 {
			return &connError{code: byte(k - 1), msg: "disconnected by the server"}
		}
		p, err := ReadPacket(br, c.version, c.s.opts.MaxPacketSize)
		if err != nil {
			if k := c.kicked.Load(); k != 0 {
				return &connError{code: byte(k - 1), msg: "disconnected by the server"}
			}
			var pe *ProtocolError
			if errors.As(err, &pe) {
				return &connError{code: pe.Code, msg: pe.Msg}
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return &connError{code: ReasonKeepAliveTimeout, msg: "keep-alive timeout"}
			}
			return err
		}
		c.seen()
		if err := c.dispatch(p); err != nil {
			return err
		}
	}
}

func (c *conn) dispatch(p *Packet) error {
	switch p.Type {
	case PUBLISH:
		return c.publish(p)
	case SUBSCRIBE:
		return c.subscribe(p)
	case UNSUBSCRIBE:
		return c.unsubscribe(p)
	case PINGREQ:
		c.send(&Packet{Type: PINGRESP})
		return nil
	case PUBACK:
		return nil // a device acknowledging a command; commands are not resent
	case DISCONNECT:
		return errClientDisconnect
	}
	return &connError{code: ReasonProtocolError, msg: fmt.Sprintf("unexpected packet type %d", p.Type)}
}

var errClientDisconnect = errors.New("client disconnected")

// topic kinds a device may publish to.
const (
	topicReadings = "readings"
	topicStatus   = "status"
	topicGATT     = "gatt" // a gateway's relayed characteristic values; only with Options.Gateway
	topicCommands = "commands"
	// topicRawPrefix is followed by a mapping template's name: the
	// payload is a vendor's message for that template (Options.Templates).
	topicRawPrefix = "raw/"
)

// ownTopic returns the kind of a topic devices/{id}/{kind} for c's own id,
// or "" if it is not one of c's topics.
func (c *conn) ownTopic(topic string) string {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return ""
	}
	id, kind, ok := strings.Cut(rest, "/")
	if !ok || id != c.deviceID {
		return ""
	}
	return kind
}

func (c *conn) publish(p *Packet) error {
	s := c.s
	v5 := c.version == Version5
	switch {
	case p.QoS() == 2:
		// Maximum QoS is 1 (CONNACK); a 3.1.1 device learns it by the close.
		return &connError{code: ReasonQoSNotSupported, msg: "QoS 2 is not supported"}
	case v5 && p.Retain():
		return &connError{code: ReasonRetainNotSupported, msg: "retained messages are not supported"}
	case v5 && p.Props.TopicAlias != nil:
		return &connError{code: ReasonTopicAliasInvalid, msg: "topic aliases are not supported"}
	}
	if !c.limiter.allow(s.opts.Now()) {
		if v5 {
			if p.QoS() == 1 {
				c.puback(p.PacketID, vigil.Errorf(vigil.ERATELIMITED, "message rate too high: at most %g messages/s", s.opts.RateLimit.PerSecond), "")
			}
			return nil
		}
		// MQTT 3.1.1 has no way to refuse: slow the device down instead.
		if err := c.limiter.wait(s.opts.Now, c.done); err != nil {
			return err
		}
	}
	kind := c.ownTopic(p.Topic)
	template, raw := strings.CutPrefix(kind, topicRawPrefix)
	raw = raw && s.opts.Templates != nil && vigil.ValidMappingName(template)
	gattTopic := kind == topicGATT && s.gateway != nil
	if kind != topicReadings && kind != topicStatus && !raw && !gattTopic {
		s.audit(s.ctx, vigil.AuditEntry{Actor: c.deviceID, ActorName: c.deviceID, Action: vigil.AuditAccessDenied,
			Resource: "mqtt PUBLISH " + truncate(p.Topic, 200), Remote: c.remote, Outcome: vigil.AuditDenied,
			Detail: "a device may publish only to devices/{its id}/readings, /status, /raw/{template} and (a gateway) /gatt"})
		if !v5 {
			// MQTT-3.3.5-2: acknowledge or close; closing tells the device.
			return &connError{msg: "publish to a topic not the device's own"}
		}
		if p.QoS() == 1 {
			c.puback(p.PacketID, vigil.Errorf(vigil.EFORBIDDEN, "topic %q is not yours: publish to devices/%s/readings or devices/%s/status", truncate(p.Topic, 200), c.deviceID, c.deviceID), "")
		}
		return nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.done:
		return errors.New("connection closed")
	}
	c.handlers.Add(1)
	go func() {
		defer func() {
			<-c.sem
			c.handlers.Done()
			if r := recover(); r != nil {
				s.logger.Error("mqtt publish handler panicked; connection closed", "panic", r, "device", c.deviceID, "stack", string(debug.Stack()))
				c.kick(ReasonImplementation, false)
			}
		}()
		var detail string
		var err error
		switch {
		case raw:
			detail, err = c.submitRaw(template, p.Payload)
		case kind == topicReadings:
			detail, err = c.submitReadings(p.Payload)
		case gattTopic:
			detail, err = c.submitGATT(p.Payload)
		default:
			err = c.handleStatus(p.Payload)
		}
		if _, ack := pubackReason(err); !ack {
			s.logger.Error("mqtt publish not durable; closing so the device sends it again", "err", err, "device", c.deviceID)
			c.kick(ReasonUnspecified, false)
			return
		}
		if p.QoS() == 1 {
			c.puback(p.PacketID, err, detail)
		}
	}()
	return nil
}

// submitGATT hands a gateway's characteristic values to the gateway
// adapter; detail as for submitReadings.
func (c *conn) submitGATT(payload []byte) (detail string, err error) {
	res, err := c.s.gateway.Submit(c.s.ctx, &c.principal, payload)
	if err == nil && res != nil && len(res.Rejected) > 0 {
		r := res.Rejected[0]
		detail = fmt.Sprintf("accepted %d, quarantined %d; item %d: %s", res.Accepted, len(res.Rejected), r.Index, r.Reason)
	}
	return detail, err
}

// submitReadings hands a readings payload to ingest. detail summarises
// partly refused submissions for the reason string.
func (c *conn) submitReadings(payload []byte) (detail string, err error) {
	res, err := c.s.ingest.Submit(c.s.ctx, &c.principal, Source, payload)
	if err == nil && res != nil && len(res.Rejected) > 0 {
		r := res.Rejected[0]
		detail = fmt.Sprintf("accepted %d, quarantined %d; item %d: %s", res.Accepted, len(res.Rejected), r.Index, r.Reason)
	}
	return detail, err
}

// submitRaw hands a vendor message to the mapping template named, like
// submitReadings; its refusals are indexed by record.
func (c *conn) submitRaw(template string, payload []byte) (detail string, err error) {
	ans, err := c.s.opts.Templates.Ingest(c.s.ctx, &c.principal, Source, template, payload, false)
	if err == nil && ans != nil && len(ans.Rejected) > 0 {
		r := ans.Rejected[0]
		detail = fmt.Sprintf("accepted %d, quarantined %d; record %d: %s", ans.Accepted, len(ans.Rejected), r.Index, r.Reason)
	}
	return detail, err
}

func (c *conn) handleStatus(payload []byte) error {
	s := c.s
	w, err := parseStatus(payload)
	if err != nil {
		if qerr := s.ingest.Quarantine(s.ctx, &c.principal, Source, truncateBytes(payload, MaxStatusBytes), len(payload) > MaxStatusBytes, err); qerr != nil {
			return qerr
		}
		return err
	}
	now := s.opts.Now().UTC()
	c.recordStatus(func(st *DeviceStatus) { st.apply(w, payload, now) }, true)
	// Battery and sensor state also go through the log to the rules
	// engine (low battery, sensor off); a QoS 1 status is acknowledged
	// once that is durable.
	sensor := ""
	if w.Sensor != nil {
		sensor = *w.Sensor
	}
	return s.ingest.SubmitStatus(s.ctx, &c.principal, w.Battery, sensor)
}

// puback queues the acknowledgement of a QoS 1 publish. MQTT 5 devices get
// the reason code of err and, if they accept them, a reason string.
func (c *conn) puback(id uint16, err error, detail string) {
	ack := &Packet{Type: PUBACK, PacketID: id}
	if c.version == Version5 {
		ack.ReasonCode, _ = pubackReason(err)
		if c.problem {
			if err != nil {
				ack.Props.ReasonString = truncate(vigil.ErrorMessage(err), 512)
			} else if detail != "" {
				ack.Props.ReasonString = truncate(detail, 512)
			}
			if len(ack.Props.ReasonString)+16 > c.maxOut {
				ack.Props.ReasonString = ""
			}
		}
	}
	c.send(ack)
}

func (c *conn) subscribe(p *Packet) error {
	ack := &Packet{Type: SUBACK, PacketID: p.PacketID, ReasonCodes: make([]byte, len(p.Subscriptions))}
	for i, sub := range p.Subscriptions {
		if c.ownTopic(sub.Filter) == topicCommands {
			q := min(int(sub.Options&3), 1)
			c.mu.Lock()
			c.subQoS = q
			c.mu.Unlock()
			ack.ReasonCodes[i] = byte(q)
			continue
		}
		c.s.audit(c.s.ctx, vigil.AuditEntry{Actor: c.deviceID, ActorName: c.deviceID, Action: vigil.AuditAccessDenied,
			Resource: "mqtt SUBSCRIBE " + truncate(sub.Filter, 200), Remote: c.remote, Outcome: vigil.AuditDenied,
			Detail: "a device may subscribe only to devices/{its id}/commands"})
		if c.version == Version5 {
			ack.ReasonCodes[i] = ReasonNotAuthorized
		} else {
			ack.ReasonCodes[i] = subackFailure311
		}
	}
	c.send(ack)
	return nil
}

func (c *conn) unsubscribe(p *Packet) error {
	ack := &Packet{Type: UNSUBACK, PacketID: p.PacketID, ReasonCodes: make([]byte, len(p.Subscriptions))}
	for i, sub := range p.Subscriptions {
		c.mu.Lock()
		if c.ownTopic(sub.Filter) == topicCommands && c.subQoS >= 0 {
			c.subQoS = -1
			ack.ReasonCodes[i] = ReasonSuccess
		} else {
			ack.ReasonCodes[i] = ReasonNoSubscription
		}
		c.mu.Unlock()
	}
	c.send(ack)
	return nil
}

func (c *conn) publishCommand(ctx context.Context, payload []byte) error {
	c.mu.Lock()
	q := c.subQoS
	var id uint16
	if q == 1 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		id = c.nextID
	}
	c.mu.Unlock()
	if q < 0 {
		return vigil.Errorf(vigil.ENOTFOUND, "device %s is not subscribed to devices/%s/commands", c.deviceID, c.deviceID)
	}
	b, err := AppendPacket(nil, &Packet{Type: PUBLISH, Flags: byte(q) << 1, Topic: "devices/" + c.deviceID + "/commands", PacketID: id, Payload: payload}, c.version)
	if err != nil {
		return vigil.Errorf(vigil.ETOOLARGE, "command too large: %v", err)
	}
	if len(b) > c.maxOut {
		return vigil.Errorf(vigil.ETOOLARGE, "command of %d bytes exceeds the device's maximum packet size %d", len(b), c.maxOut)
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return vigil.Errorf(vigil.ENOTFOUND, "device %s disconnected", c.deviceID)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send queues p for the writer; it is dropped if the connection is closed.
func (c *conn) send(p *Packet) {
	b, err := AppendPacket(nil, p, c.version)
	if err != nil {
		c.s.logger.Error("mqtt encode failed", "err", err, "type", p.Type)
		return
	}
	select {
	case c.out <- b:
	case <-c.done:
	}
}

// writeLoop writes queued packets, flushing when the queue is empty, until
// it takes nil from out or the connection closes.
func (c *conn) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.Error("mqtt writer panicked; connection closed", "panic", r, "device", c.deviceID, "stack", string(debug.Stack()))
		}
		c.close()
	}()
	bw := bufio.NewWriterSize(c.nc, 2048)
	for {
		var b []byte
		select {
		case b = <-c.out:
		case <-c.done:
			return
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
		yielded := false
		for {
			if b == nil {
				bw.Flush()
				return
			}
			if _, err := bw.Write(b); err != nil {
				return
			}
			select {
			case b = <-c.out:
				continue
			default:
			}
			if !yielded {
				// The publishes one log commit made durable are
				// acknowledged by as many goroutines, woken together:
				// let them queue their PUBACKs so that one write system
				// call carries them all, instead of one each.
				yielded = true
				runtime.Gosched()
				select {
				case b = <-c.out:
					continue
				default:
				}
			}
			break
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// kick ends the connection from outside the reader: the reader's blocked
// read returns and it disconnects with reason. graceful lets publishes in
// flight be acknowledged first (shutdown).
func (c *conn) kick(reason byte, graceful bool) {
	if c.kicked.CompareAndSwap(0, uint32(reason)+1) {
		c.graceful.Store(graceful)
	}
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// finish ends the connection after the read loop returned err: MQTT 5
// devices get a DISCONNECT with the reason, after the acknowledgements
// already queued (and, when graceful, those of publishes in flight).
func (c *conn) finish(err error) {
	var ce *connError
	code := byte(0)
	if errors.As(err, &ce) {
		code = ce.code
	}
	if err != nil && !errors.Is(err, errClientDisconnect) {
		c.s.logger.Debug("mqtt connection ended", "device", c.deviceID, "remote", c.remote, "err", err)
	}
	if c.graceful.Load() || errors.Is(err, errClientDisconnect) {
		c.handlers.Wait()
	}
	var final []byte
	if c.version == Version5 && code != 0 && !errors.Is(err, errClientDisconnect) {
		final, _ = AppendPacket(nil, &Packet{Type: DISCONNECT, ReasonCode: code}, c.version)
	}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	enqueue := func(b []byte) bool {
		select {
		case c.out <- b:
			return true
		case <-c.done:
		case <-timer.C:
			c.close()
		}
		return false
	}
	if final != nil && !enqueue(final) {
		return
	}
	if !enqueue(nil) {
		return
	}
	select {
	case <-c.done:
	case <-timer.C:
		c.close()
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

// seen notes activity.
func (c *conn) seen() { c.recordStatus(nil, false) }

// recordStatus updates the in-memory status of c's device with fn (if
// not nil) and its last-seen time, and tells the StatusRecorder: always
// when force, else at most once per StatusInterval.
func (c *conn) recordStatus(fn func(*DeviceStatus), force bool) {
	s := c.s
	now := s.opts.Now().UTC()
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	due := force || now.Sub(c.lastStatus) >= s.opts.StatusInterval
	var snap DeviceStatus
	s.mu.Lock()
	st := s.status[c.deviceID]
	if st == nil {
		st = &DeviceStatus{DeviceID: c.deviceID}
		s.status[c.deviceID] = st
	}
	if cur := s.conned[c.deviceID]; cur != nil && cur != c {
		// Another connection of the same device owns the state now.
		fn = nil
	}
	if fn != nil {
		fn(st)
	}
	st.LastSeen = now
	if due {
		snap = st.clone()
	}
	s.mu.Unlock()
	if !due {
		return
	}
	c.lastStatus = now
	if s.opts.Status == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	defer func() {
		// The recorder is someone else's code: its panic must not end the
		// connection, let alone the process.
		if r := recover(); r != nil {
			s.logger.Error("mqtt status recorder panicked", "panic", r, "device", c.deviceID, "stack", string(debug.Stack()))
		}
	}()
	if err := s.opts.Status.RecordDeviceStatus(ctx, snap); err != nil {
		s.logger.Error("mqtt record device status failed", "err", err, "device", c.deviceID)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

// limiter is one device's token bucket (golang.org/x/time/rate), read
// with the server's clock so that tests can drive it. It is used by one
// connection at a time (the reader goroutine) but handed on at takeover;
// rate.Limiter is safe for concurrent use.
type limiter struct {
	l *rate.Limiter
}

// newLimiter returns a full bucket of r.Burst tokens refilled at
// r.PerSecond; r.PerSecond < 0 means no limit.
func newLimiter(r RateLimit, now time.Time) *limiter {
	lim := rate.Limit(r.PerSecond)
	if r.PerSecond < 0 {
		lim = rate.Inf
	}
	l := rate.NewLimiter(lim, r.Burst)
	l.AllowN(now, 0) // start the refill clock at now, not at the zero time
	return &limiter{l: l}
}

// allow takes a token if one is available at now.
func (l *limiter) allow(now time.Time) bool {
	return l.l.AllowN(now, 1)
}

// wait blocks until a token is available and takes it, or done closes; a
// token reserved but not waited for is given back.
func (l *limiter) wait(now func() time.Time, done <-chan struct{}) error {
	t0 := now()
	r := l.l.ReserveN(t0, 1)
	if !r.OK() {
		return errors.New("rate limit burst is zero")
	}
	d := r.DelayFrom(t0)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-done:
		r.CancelAt(now())
		return errors.New("connection closed")
	}
}
