package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// Session takeover across nodes (decision 36). A device connects to any
// node. After each accepted CONNECT the server broadcasts a connectNotice
// on TakeoverTopic; a server that hears one for a device connected to it by
// another connection, older than the notice's, disconnects it as for a
// local takeover (ReasonSessionTakenOver). Sessions are by device id, as
// locally (a device has one connection whatever its client id). "Older" is
// by the (accepted time, nonce) pair, which every node compares alike, so
// when two connections of a device race on two nodes exactly one is kept
// (the later by the nodes' clocks, which must be synchronised). A notice is
// sent at most once: a node that misses one keeps a stale connection until
// its keep-alive ends.

// TakeoverTopic is the broadcast topic of connect notices.
const TakeoverTopic = "mqtt-connect"

// DeviceTopic is the broadcast topic of device notices: a device changed
// in the registry (every node forgets its cached record) or revoked (every
// node also closes its connection, as Disconnect does locally).
const DeviceTopic = "mqtt-device"

// deviceNotice is a broadcast device notice.
type deviceNotice struct {
	Device  string `json:"device"`
	Revoked bool   `json:"revoked,omitempty"`
}

// maxNoticeBytes bounds a connect notice heard; a larger one is dropped.
const maxNoticeBytes = 2048

// connectNotice is a broadcast connect notice.
type connectNotice struct {
	Device   string `json:"device"`    // device id: sessions are by device
	ClientID string `json:"client_id"` // as the device sent it, for logs
	Node     string `json:"node"`
	Nonce    string `json:"nonce"` // the connection's, random
	At       int64  `json:"at"`    // accepted, Unix nanoseconds of the node's clock
}

// newNonce returns a random connection nonce.
func newNonce() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// decodeNotice returns the notice in b; EINVALID if b is larger than
// maxNoticeBytes, not a notice, or lacks a device id or a nonce. It never
// panics.
func decodeNotice(b []byte) (connectNotice, error) {
	var n connectNotice
	if len(b) > maxNoticeBytes {
		return n, vigil.Errorf(vigil.EINVALID, "connect notice of %d bytes exceeds %d", len(b), maxNoticeBytes)
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return connectNotice{}, vigil.Errorf(vigil.EINVALID, "connect notice: %v", err)
	}
	if n.Device == "" || n.Nonce == "" {
		return connectNotice{}, vigil.Errorf(vigil.EINVALID, "connect notice without a device or nonce")
	}
	return n, nil
}

// supersedes reports whether a connection accepted at (at, nonce) is newer
// than c.
func (c *conn) supersededBy(at int64, nonce string) bool {
	if at != c.acceptedAt {
		return at > c.acceptedAt
	}
	return nonce > c.nonce
}

// ListenTakeovers makes the server take part in session takeovers across
// nodes through Options.Broadcaster (nothing to do without one): from now
// on it announces each accepted CONNECT, and disconnects a device's
// connection when a newer one is announced elsewhere; and it tells the
// other nodes of DeviceChanged and Disconnect (revocation), doing what
// they ask of it likewise. It stops when ctx ends. Call it once, before
// Serve.
func (s *Server) ListenTakeovers(ctx context.Context) error {
	b := s.opts.Broadcaster
	if b == nil {
		return nil
	}
	stop, err := b.Listen(ctx, TakeoverTopic, func(data []byte) {
		n, err := decodeNotice(data)
		if err != nil {
			s.logger.Debug("mqtt connect notice dropped", "err", err)
			return
		}
		s.mu.Lock()
		c := s.conned[n.Device]
		s.mu.Unlock()
		if c == nil || c.nonce == n.Nonce || !c.supersededBy(n.At, n.Nonce) {
			return
		}
		s.logger.Info("mqtt session taken over on another node", "device", n.Device, "node", n.Node)
		c.kick(ReasonSessionTakenOver, false)
	})
	if err != nil {
		return fmt.Errorf("listen for mqtt takeovers: %w", err)
	}
	_, err = b.Listen(ctx, DeviceTopic, func(data []byte) {
		var n deviceNotice
		if len(data) > maxNoticeBytes || json.Unmarshal(data, &n) != nil || n.Device == "" {
			s.logger.Debug("mqtt device notice dropped")
			return
		}
		if n.Revoked {
			s.disconnectLocal(n.Device)
		} else {
			s.forgetDevice(n.Device)
		}
	})
	if err != nil {
		stop()
		return fmt.Errorf("listen for mqtt device changes: %w", err)
	}
	s.mu.Lock()
	s.announce = true
	s.mu.Unlock()
	return nil
}

// announceConnect broadcasts c's connect notice, if the server takes part
// in takeovers. A failure is logged: the device stays connected.
func (s *Server) announceConnect(c *conn, clientID string) {
	s.mu.Lock()
	on := s.announce
	s.mu.Unlock()
	if !on {
		return
	}
	b, err := json.Marshal(connectNotice{Device: c.deviceID, ClientID: truncate(clientID, 256), Node: s.opts.NodeID, Nonce: c.nonce, At: c.acceptedAt})
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		err = s.opts.Broadcaster.Broadcast(ctx, TakeoverTopic, b)
	}
	if err != nil {
		s.logger.Warn("mqtt connect notice not sent: a connection of the device on another node stays open until its keep-alive ends",
			"device", c.deviceID, "err", err)
	}
}

// announceDevice broadcasts a device notice, if the server takes part in
// takeovers. A failure is logged: the other nodes then see the change
// within DeviceCacheTTL, and a revoked device's connection there is
// refused its next message then, but stays open until its keep-alive ends.
func (s *Server) announceDevice(deviceID string, revoked bool) {
	s.mu.Lock()
	on := s.announce
	s.mu.Unlock()
	if !on {
		return
	}
	b, err := json.Marshal(deviceNotice{Device: deviceID, Revoked: revoked})
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		err = s.opts.Broadcaster.Broadcast(ctx, DeviceTopic, b)
	}
	if err != nil {
		s.logger.Warn("mqtt device notice not sent to the other nodes", "device", deviceID, "revoked", revoked, "err", err)
	}
}
