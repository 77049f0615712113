package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzDecodePacket feeds arbitrary bytes to the packet decoder: it must
// never panic, and a packet it accepts must encode and decode again.
func FuzzDecodePacket(f *testing.F) {
	f.Add(byte(0x82), []byte{0x00, 0x01, 0x00, 0x00, 0x00}, true) // mochi-mqtt v2.7.9 crash
	f.Add(byte(0x10), []byte("\x00\x04MQTT\x05\xc2\x00\x3c\x00\x00\x01c\x00\x01u\x00\x01p"), true)
	f.Add(byte(0x32), []byte("\x00\x03a/b\x00\x01\x00{}"), true)
	f.Add(byte(0x30), []byte("\x00\x03a/b{}"), false)
	f.Fuzz(func(t *testing.T, header byte, body []byte, v5 bool) {
		version := Version311
		if v5 {
			version = Version5
		}
		p, err := DecodePacket(header, body, version)
		if err != nil {
			return
		}
		if p.Type == CONNECT {
			version = p.ProtocolLevel
		}
		b, err := AppendPacket(nil, p, version)
		if err != nil {
			return // e.g. a property too long to write back; decoding was still safe
		}
		if _, err := ReadPacket(bufio.NewReader(bytes.NewReader(b)), version, len(b)); err != nil {
			t.Fatalf("re-decode of % x: %v", b, err)
		}
	})
}

// panicCounter is a slog handler that counts recovered panics.
type panicCounter struct{ n *atomic.Int64 }

func (h panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panicked") {
		h.n.Add(1)
	}
	return nil
}
func (h panicCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicCounter) WithGroup(string) slog.Handler      { return h }

// FuzzConnection feeds a whole server connection arbitrary bytes after a
// valid CONNECT: the server must not panic (not even a recovered one) and
// must close the connection once the peer stops.
func FuzzConnection(f *testing.F) {
	var panics atomic.Int64
	e := newEnv(f, "", func(o *Options) {
		o.Logger = slog.New(panicCounter{&panics})
		o.MaxPacketSize = 4096
		o.RateLimit = RateLimit{PerSecond: -1}
	})
	id, tok := e.device()
	f.Add([]byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}, true)
	f.Add([]byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}, false)
	f.Add(append([]byte{0x32, 0x10, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 0x00}, "{\"x\":1}"...), true)
	f.Add([]byte{0xC0, 0x00, 0xE0, 0x00}, false)
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, true)
	f.Fuzz(func(t *testing.T, data []byte, v5 bool) {
		version := Version311
		if v5 {
			version = Version5
		}
		client, server := net.Pipe()
		e.srv.mu.Lock()
		e.srv.wg.Add(1)
		e.srv.mu.Unlock()
		done := make(chan struct{})
		go func() { e.srv.serveConn(server, false); close(done) }()
		go io.Copy(io.Discard, client)
		connect, _ := AppendPacket(nil, &Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: version,
			ConnectFlags: flagCleanStart | flagUsername | flagPassword, KeepAlive: 5, ClientID: "f", Username: id, Password: []byte(tok)}, version)
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(connect)
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed after the peer closed")
		}
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d panics recovered in connection handling", n)
		}
	})
}

// FuzzPublishPayload publishes an arbitrary payload with QoS 1 to the
// device's own readings or status topic, after a valid CONNECT: the server
// must not panic (not even a recovered one) and must answer the publish
// with a PUBACK, whether it accepted the payload or quarantined it, because
// ingest keeps every refusal durably before the acknowledgement.
func FuzzPublishPayload(f *testing.F) {
	var panics atomic.Int64
	e := newEnv(f, "", func(o *Options) {
		o.Logger = slog.New(panicCounter{&panics})
		o.RateLimit = RateLimit{PerSecond: -1}
	})
	id, tok := e.device()
	f.Add(readingJSON(1), false, true)
	f.Add([]byte(`{"readings":[{"code":"85354-9","time":"2026-11-20T09:59:00Z","seq":2,"components":[{"code":"8480-6","value":80,"unit":"mm[Hg]"},{"code":"8462-4","value":120,"unit":"mm[Hg]"}]}]}`), false, false)
	f.Add([]byte(`{"readings":[{"code":"67775-7","value":2.5,"unit":"{score}","time":"2026-11-20T09:59:00Z","seq":1},{"code":"67775-7","value":2.5,"unit":"{score}","time":"2026-11-20T09:59:00Z","seq":1}]}`), false, true)
	f.Add([]byte(`{"battery":12.5,"sensor":"off"}`), true, true)
	f.Add([]byte(`{"readings":[`), false, true)
	f.Add([]byte{}, true, false)
	f.Fuzz(func(t *testing.T, payload []byte, status, v5 bool) {
		publishOnce(t, e, id, tok, payload, status, v5)
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d panics recovered in connection handling", n)
		}
	})
}

// publishOnce connects as device id over a pipe, publishes payload with QoS
// 1 to its readings (or status) topic and waits for the PUBACK.
func publishOnce(t *testing.T, e *env, id, tok string, payload []byte, status, v5 bool) {
	version := Version311
	if v5 {
		version = Version5
	}
	topic := "devices/" + id + "/readings"
	if status {
		topic = "devices/" + id + "/status"
	}
	connect, _ := AppendPacket(nil, &Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: version,
		ConnectFlags: flagCleanStart | flagUsername | flagPassword, KeepAlive: 5, ClientID: "f", Username: id, Password: []byte(tok)}, version)
	publish, err := AppendPacket(nil, &Packet{Type: PUBLISH, Flags: 1 << 1, Topic: topic, PacketID: 7, Payload: payload}, version)
	if err != nil || len(publish) > DefaultMaxPacketSize {
		t.Skip("payload too large for a packet") // refused by closing the connection, as MQTT says
	}
	client, server := net.Pipe()
	e.srv.mu.Lock()
	e.srv.wg.Add(1)
	e.srv.mu.Unlock()
	done := make(chan struct{})
	go func() { e.srv.serveConn(server, false); close(done) }()
	defer func() {
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed after the peer closed")
		}
	}()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		client.Write(connect)
		client.Write(publish)
	}()
	r := bufio.NewReader(client)
	for {
		p, err := ReadPacket(r, version, 1<<20)
		if err != nil {
			t.Fatalf("no PUBACK for a publish of %d bytes: %v", len(payload), err)
		}
		if p.Type == PUBACK && p.PacketID == 7 {
			return
		}
	}
}
