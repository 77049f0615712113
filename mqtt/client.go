package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	Version   byte          // Version311 or Version5 (default)
	ClientID  string        // "" lets the server choose (MQTT 5) or needs a clean session (3.1.1)
	Username  string        // the device id
	Password  string        // the device token; "" with a client certificate
	TLSConfig *tls.Config   // nil: plain TCP
	KeepAlive time.Duration // default 60 s; the client pings when idle this long
}

// Client is a minimal MQTT device client: clean session, QoS 0 and 1
// publishes, and subscriptions. It is what `vigil simulate` and the tests
// and benchmarks use; it is safe for concurrent use, and concurrent
// Publish calls are pipelined on the one connection.
type Client struct {
	nc      net.Conn
	version byte
	ConnAck *Packet // the server's CONNACK

	out  chan []byte
	done chan struct{}
	once sync.Once
	err  error // why the connection ended; set before done closes

	mu       sync.Mutex
	nextID   uint16
	pending  map[uint16]chan *Packet
	messages chan *Packet
}

// RefusedError is a CONNACK or PUBACK (MQTT 5) that refused: Code is the
// MQTT 5 reason code (for MQTT 3.1.1 CONNACKs, the 3.1.1 return code) and
// Reason the server's reason string, if any.
type RefusedError struct {
	Packet byte
	Code   byte
	Reason string
}

func (e *RefusedError) Error() string {
	name := "PUBACK"
	if e.Packet == CONNACK {
		name = "CONNACK"
	} else if e.Packet == SUBACK {
		name = "SUBACK"
	}
	if e.Reason != "" {
		return fmt.Sprintf("mqtt: %s refused (0x%02X): %s", name, e.Code, e.Reason)
	}
	return fmt.Sprintf("mqtt: %s refused (0x%02X)", name, e.Code)
}

// Dial connects to addr and sends CONNECT. A refused CONNACK is a
// *RefusedError.
func Dial(ctx context.Context, addr string, o ClientOptions) (*Client, error) {
	if o.Version == 0 {
		o.Version = Version5
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 60 * time.Second
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial mqtt: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if o.TLSConfig != nil {
		tc := tls.Client(nc, o.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("mqtt tls handshake: %w", err)
		}
		nc = tc
	}
	p := &Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: o.Version, ConnectFlags: flagCleanStart,
		KeepAlive: uint16(o.KeepAlive / time.Second), ClientID: o.ClientID}
	if o.Username != "" {
		p.ConnectFlags |= flagUsername
		p.Username = o.Username
	}
	if o.Password != "" {
		p.ConnectFlags |= flagPassword
		p.Password = []byte(o.Password)
	}
	b, err := AppendPacket(nil, p, o.Version)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	br := bufio.NewReader(nc)
	ack, err := ReadPacket(br, o.Version, maxVarint)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if ack.Type != CONNACK {
		nc.Close()
		return nil, fmt.Errorf("mqtt: expected CONNACK, got packet type %d", ack.Type)
	}
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, &RefusedError{Packet: CONNACK, Code: ack.ReasonCode, Reason: ack.Props.ReasonString}
	}
	nc.SetDeadline(time.Time{})
	c := &Client{nc: nc, version: o.Version, ConnAck: ack, out: make(chan []byte, 64), done: make(chan struct{}),
		pending: map[uint16]chan *Packet{}, messages: make(chan *Packet, 64)}
	go c.readLoop(br)
	go c.writeLoop(o.KeepAlive)
	return c, nil
}

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (a *RefusedError for a server
// DISCONNECT with a reason code), or nil while it is open.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Messages delivers PUBLISH packets from the server (commands).
func (c *Client) Messages() <-chan *Packet { return c.messages }

func (c *Client) end(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.nc.Close()
	})
}

func (c *Client) readLoop(br *bufio.Reader) {
	for {
		p, err := ReadPacket(br, c.version, maxVarint)
		if err != nil {
			c.end(fmt.Errorf("mqtt read: %w", err))
			return
		}
		switch p.Type {
		case PUBACK, SUBACK, UNSUBACK:
			c.mu.Lock()
			ch := c.pending[p.PacketID]
			delete(c.pending, p.PacketID)
			c.mu.Unlock()
			if ch != nil {
				ch <- p
			}
		case PUBLISH:
			if p.QoS() == 1 {
				c.queue(&Packet{Type: PUBACK, PacketID: p.PacketID})
			}
			select {
			case c.messages <- p:
			default: // nobody is reading commands; drop
			}
		case DISCONNECT:
			c.end(&RefusedError{Packet: DISCONNECT, Code: p.ReasonCode, Reason: p.Props.ReasonString})
			return
		}
	}
}

func (c *Client) writeLoop(keepAlive time.Duration) {
	bw := bufio.NewWriter(c.nc)
	ping, _ := AppendPacket(nil, &Packet{Type: PINGREQ}, c.version)
	t := time.NewTimer(keepAlive)
	defer t.Stop()
	for {
		var b []byte
		select {
		case b = <-c.out:
		case <-t.C:
			b = ping
		case <-c.done:
			return
		}
		for b != nil {
			if _, err := bw.Write(b); err != nil {
				c.end(err)
				return
			}
			select {
			case b = <-c.out:
			default:
				b = nil
			}
		}
		if err := bw.Flush(); err != nil {
			c.end(fmt.Errorf("mqtt write: %w", err))
			return
		}
		t.Reset(keepAlive)
	}
}

func (c *Client) queue(p *Packet) error {
	b, err := AppendPacket(nil, p, c.version)
	if err != nil {
		return err
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return c.err
	}
}

// request sends p with a new packet identifier and waits for its
// acknowledgement.
func (c *Client) request(ctx context.Context, p *Packet) (*Packet, error) {
	ch := make(chan *Packet, 1)
	c.mu.Lock()
	for {
		c.nextID++
		if c.nextID != 0 && c.pending[c.nextID] == nil {
			break
		}
	}
	p.PacketID = c.nextID
	c.pending[p.PacketID] = ch
	c.mu.Unlock()
	if err := c.queue(p); err != nil {
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-c.done:
		return nil, c.err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, p.PacketID)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Publish sends payload on topic. For QoS 1 it waits for the PUBACK and
// returns it; a PUBACK with a reason code of 0x80 or more is a
// *RefusedError (MQTT 5). For QoS 0 it returns once the packet is queued.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, payload []byte) (*Packet, error) {
	p := &Packet{Type: PUBLISH, Flags: qos << 1, Topic: topic, Payload: payload}
	if qos == 0 {
		return nil, c.queue(p)
	}
	ack, err := c.request(ctx, p)
	if err != nil {
		return nil, err
	}
	if ack.Type != PUBACK {
		return nil, fmt.Errorf("mqtt: expected PUBACK, got packet type %d", ack.Type)
	}
	if ack.ReasonCode >= 0x80 {
		return ack, &RefusedError{Packet: PUBACK, Code: ack.ReasonCode, Reason: ack.Props.ReasonString}
	}
	return ack, nil
}

// Subscribe subscribes to filter and returns the granted QoS; a refusal is
// a *RefusedError.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte) (byte, error) {
	ack, err := c.request(ctx, &Packet{Type: SUBSCRIBE, Subscriptions: []Subscription{{Filter: filter, Options: qos}}})
	if err != nil {
		return 0, err
	}
	if ack.Type != SUBACK || len(ack.ReasonCodes) != 1 {
		return 0, errors.New("mqtt: bad SUBACK")
	}
	if code := ack.ReasonCodes[0]; code >= 0x80 {
		return 0, &RefusedError{Packet: SUBACK, Code: code, Reason: ack.Props.ReasonString}
	}
	return ack.ReasonCodes[0], nil
}

// Close sends DISCONNECT and closes the connection.
func (c *Client) Close() error {
	c.queue(&Packet{Type: DISCONNECT})
	// Give the writer a moment to send it; the server treats a close
	// without DISCONNECT the same way.
	select {
	case <-c.done:
	case <-time.After(50 * time.Millisecond):
	}
	c.end(errors.New("mqtt: client closed"))
	return nil
}
