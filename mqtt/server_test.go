package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
)

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishReadingsStoredAfterPuback(t *testing.T) {
	e := newEnv(t, "", nil)
	for _, v := range []byte{Version311, Version5} {
		id, tok := e.device()
		c := e.mustDial(v, id, tok)
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ack, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(i))
				if err == nil && ack.ReasonCode != ReasonSuccess {
					t.Errorf("v%d PUBACK reason 0x%02X", v, ack.ReasonCode)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("v%d Publish: %v", v, err)
			}
		}
		rs := e.readings(id)
		if len(rs) != n {
			t.Fatalf("v%d: stored %d readings, want %d", v, len(rs), n)
		}
		for _, r := range rs {
			if r.Source != Source || r.DeviceID != id {
				t.Errorf("v%d: reading source %q device %q, want %q %q", v, r.Source, r.DeviceID, Source, id)
			}
		}
	}
}

func TestInvalidPayloadQuarantinedWithReason(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	tests := []struct {
		name    string
		payload string
		want    byte
	}{
		{"malformed JSON", `{"readings":[`, ReasonPayloadInvalid},
		{"unknown code", `{"readings":[{"code":"nope","value":1,"unit":"1","time":"2020-01-01T00:00:00Z"}]}`, ReasonPayloadInvalid},
		{"another device", `{"readings":[{"code":"59408-5","value":97,"unit":"%","time":"` + time.Now().UTC().Format(time.RFC3339) + `","device_id":"dev_other"}]}`, ReasonNotAuthorized},
	}
	for _, tt := range tests {
		ack, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, []byte(tt.payload))
		if got := refusedCode(err); got != int(tt.want) {
			t.Errorf("%s: PUBACK code %d (err %v), want 0x%02X", tt.name, got, err, tt.want)
			continue
		}
		if ack.Props.ReasonString == "" {
			t.Errorf("%s: PUBACK without a reason string", tt.name)
		}
	}
	q := e.quarantined(id)
	if len(q) != len(tests) {
		t.Fatalf("quarantined %d items, want %d", len(q), len(tests))
	}
	for _, item := range q {
		if item.Source != Source || item.Reason == "" {
			t.Errorf("quarantine item source %q reason %q", item.Source, item.Reason)
		}
	}
}

func TestCredentialsRefused(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	revoked, rtok := e.device()
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), revoked, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		version   byte
		user, pwd string
		want      int
	}{
		{"wrong password v5", Version5, id, tok + "x", int(ReasonBadCredentials)},
		{"wrong password 3.1.1", Version311, id, tok + "x", int(connBadCredentials)},
		{"unknown device v5", Version5, "dev_nobody", tok, int(ReasonBadCredentials)},
		{"no password v5", Version5, id, "", int(ReasonBadCredentials)},
		{"another device's token", Version5, revoked, tok, int(ReasonBadCredentials)},
		{"revoked v5", Version5, revoked, rtok, int(ReasonNotAuthorized)},
		{"revoked 3.1.1", Version311, revoked, rtok, int(connNotAuthorized)},
	}
	for _, tt := range tests {
		c, err := e.dial(tt.version, tt.user, tt.pwd)
		if err == nil {
			c.Close()
		}
		if got := refusedCode(err); got != tt.want {
			t.Errorf("%s: CONNACK code %d (err %v), want %d", tt.name, got, err, tt.want)
		}
	}
	if n := len(e.auditor.find(vigil.AuditSignIn, vigil.AuditDenied, "")); n != len(tests) {
		t.Errorf("%d denied sign-ins audited, want %d", n, len(tests))
	}
}

func TestRevokeDisconnectsAtOnce(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	waitFor(t, "connected", func() bool { return e.srv.Connected(id) })
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), id, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
	if !e.srv.Disconnect(id) {
		t.Fatal("Disconnect: device not connected")
	}
	<-c.Done()
	if got := refusedCode(c.Err()); got != int(ReasonAdministrative) {
		t.Errorf("DISCONNECT code %d (%v), want 0x98", got, c.Err())
	}
	if _, err := e.dial(Version5, id, tok); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("reconnect after revoke: %v, want CONNACK 0x87", err)
	}
	waitFor(t, "disconnected state", func() bool { return !e.srv.Connected(id) })
	if st, ok := e.status.get(id); !ok || st.Connected {
		t.Errorf("recorded status %+v, want disconnected", st)
	}
}

func TestOtherDevicesTopicsRefusedAndAudited(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	other, _ := e.device()

	c5 := e.mustDial(Version5, id, tok)
	for _, topic := range []string{"devices/" + other + "/readings", "devices/" + id + "/commands", "devices/" + id + "/readings/x", "other"} {
		_, err := c5.Publish(ctx10(t), topic, 1, readingJSON(1))
		if got := refusedCode(err); got != int(ReasonNotAuthorized) {
			t.Errorf("publish to %s: code %d (%v), want 0x87", topic, got, err)
		}
	}
	if _, err := c5.Subscribe(ctx10(t), "devices/"+other+"/commands", 1); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("subscribe to another device's commands: %v, want 0x87", err)
	}
	if _, err := c5.Subscribe(ctx10(t), "devices/#", 0); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("subscribe to a wildcard: %v, want 0x87", err)
	}
	if got := len(e.auditor.find(vigil.AuditAccessDenied, vigil.AuditDenied, id)); got != 6 {
		t.Errorf("%d access denials audited, want 6", got)
	}

	// MQTT 3.1.1 cannot refuse a publish: the connection is closed.
	c3 := e.mustDial(Version311, id, tok)
	c3.Publish(ctx10(t), "devices/"+other+"/readings", 0, readingJSON(1))
	select {
	case <-c3.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("3.1.1 connection not closed after publishing to another device's topic")
	}
	if rs := e.readings(other); len(rs) != 0 {
		t.Errorf("other device has %d readings, want 0", len(rs))
	}
}

func TestCommandsAndStatus(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	if err := e.srv.Publish(ctx10(t), id, []byte("x")); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Publish before subscribing: %v, want not_found", err)
	}
	q, err := c.Subscribe(ctx10(t), "devices/"+id+"/commands", 2)
	if err != nil || q != 1 {
		t.Fatalf("Subscribe: granted %d, %v; want 1", q, err)
	}
	if err := e.srv.Publish(ctx10(t), id, []byte(`{"interval":60}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case m := <-c.Messages():
		if m.Topic != "devices/"+id+"/commands" || string(m.Payload) != `{"interval":60}` || m.QoS() != 1 {
			t.Errorf("command %q %q qos %d", m.Topic, m.Payload, m.QoS())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command not delivered")
	}

	status := `{"battery":81.5,"firmware":"1.4.2","signal":-67,"sensor":"ok","uptime":3600}`
	if _, err := c.Publish(ctx10(t), "devices/"+id+"/status", 1, []byte(status)); err != nil {
		t.Fatalf("publish status: %v", err)
	}
	st, ok := e.srv.Status(id)
	if !ok || !st.Connected || st.Battery == nil || *st.Battery != 81.5 || st.Firmware != "1.4.2" || st.Sensor != "ok" ||
		st.Signal == nil || *st.Signal != -67 || string(st.Message) != status || st.LastSeen.IsZero() {
		t.Errorf("Status = %+v", st)
	}
	if rec, _ := e.status.get(id); rec.Firmware != "1.4.2" {
		t.Errorf("recorded status firmware %q, want 1.4.2", rec.Firmware)
	}
	_, err = c.Publish(ctx10(t), "devices/"+id+"/status", 1, []byte(`{"battery":140}`))
	if refusedCode(err) != int(ReasonPayloadInvalid) {
		t.Errorf("invalid status: %v, want 0x99", err)
	}
	if q := e.quarantined(id); len(q) != 1 || !strings.Contains(q[0].Reason, "battery") {
		t.Errorf("quarantine after invalid status: %+v", q)
	}
}

func TestClientCertificate(t *testing.T) {
	e := newEnv(t, "", nil)
	id, _ := e.device()
	certPEM, keyPEM, err := e.ca.IssueClient(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.tlsClientConfig()
	cfg.Certificates = []tls.Certificate{cert}
	c, err := Dial(ctx10(t), e.tlsAddr, ClientOptions{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("Dial with client certificate: %v", err)
	}
	defer c.Close()
	if _, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(1)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := c.ConnAck.Props.AssignedClientID; got != "vigil-"+id {
		t.Errorf("assigned client id %q", got)
	}
	// A certificate for one device does not open another's topics.
	other, _ := e.device()
	if _, err := c.Publish(ctx10(t), "devices/"+other+"/readings", 1, readingJSON(1)); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("publish as another device with a certificate: %v", err)
	}
	// A certificate of a revoked device is refused.
	now := time.Now()
	e.store.UpdateDevice(context.Background(), id, vigil.DeviceUpdate{Revoked: &now})
	if _, err := Dial(ctx10(t), e.tlsAddr, ClientOptions{TLSConfig: cfg}); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("revoked certificate: %v, want 0x87", err)
	}
}

func TestQoS2AndRetainRefused(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	tests := []struct {
		name  string
		flags byte
		want  byte
	}{
		{"QoS 2", 2 << 1, ReasonQoSNotSupported},
		{"retain", 1<<1 | 1, ReasonRetainNotSupported},
	}
	for _, tt := range tests {
		c := e.mustDial(Version5, id, tok)
		if c.ConnAck.Props.MaximumQoS == nil || *c.ConnAck.Props.MaximumQoS != 1 {
			t.Fatalf("CONNACK maximum QoS %v, want 1", c.ConnAck.Props.MaximumQoS)
		}
		c.queue(&Packet{Type: PUBLISH, Flags: tt.flags, Topic: "devices/" + id + "/readings", PacketID: 7, Payload: readingJSON(1)})
		<-c.Done()
		if got := refusedCode(c.Err()); got != int(tt.want) {
			t.Errorf("%s: DISCONNECT %d (%v), want 0x%02X", tt.name, got, c.Err(), tt.want)
		}
	}
}

func TestRateLimitPerDevice(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // frozen: no refill
	e := newEnv(t, "", func(o *Options) {
		o.RateLimit = RateLimit{PerSecond: 1, Burst: 3}
		o.Now = func() time.Time { return clock }
	})
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	var codes []int
	for i := range 5 {
		_, err := c.Publish(ctx10(t), "devices/"+id+"/status", 1, []byte(`{"battery":50}`))
		if err != nil {
			codes = append(codes, refusedCode(err))
		} else {
			codes = append(codes, 0)
		}
		_ = i
	}
	want := []int{0, 0, 0, int(ReasonQuotaExceeded), int(ReasonQuotaExceeded)}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	// A reconnect does not refill the bucket.
	c.Close()
	c2 := e.mustDial(Version5, id, tok)
	if _, err := c2.Publish(ctx10(t), "devices/"+id+"/status", 1, []byte(`{"battery":50}`)); refusedCode(err) != int(ReasonQuotaExceeded) {
		t.Errorf("after reconnect: %v, want 0x97", err)
	}
}

// rawConn connects over plain TCP and sends a v5 CONNECT for the device.
func rawConn(t *testing.T, e *env, version byte, id, tok string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", e.plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	b, _ := AppendPacket(nil, &Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: version, ConnectFlags: flagCleanStart | flagUsername | flagPassword,
		KeepAlive: 30, ClientID: "raw", Username: id, Password: []byte(tok)}, version)
	nc.Write(b)
	br := bufio.NewReader(nc)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	ack, err := ReadPacket(br, version, 1<<20)
	if err != nil || ack.Type != CONNACK || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v, %v", ack, err)
	}
	return nc, br
}

func TestHostileInput(t *testing.T) {
	e := newEnv(t, "", func(o *Options) { o.MaxPacketSize = 1024; o.ConnectTimeout = 300 * time.Millisecond })
	id, tok := e.device()
	tests := []struct {
		name  string
		bytes []byte
		want  byte // DISCONNECT reason
	}{
		{"mochi-mqtt crash: SUBSCRIBE without options", []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}, ReasonMalformed},
		{"oversize packet", []byte{0x30, 0xff, 0xff, 0x03}, ReasonPacketTooLarge},
		{"five-byte length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, ReasonMalformed},
		{"reserved type", []byte{0x00, 0x00}, ReasonMalformed},
		{"second CONNECT", []byte{0x10, 0x00}, ReasonMalformed},
		{"PUBLISH QoS 3", []byte{0x36, 0x03, 0x00, 0x01, 'a'}, ReasonMalformed},
		{"property overrun", []byte{0x30, 0x04, 0x00, 0x01, 'a', 0x09}, ReasonMalformed},
		{"bad SUBSCRIBE flags", []byte{0x80, 0x02, 0x00, 0x01}, ReasonMalformed},
		{"AUTH", []byte{0xF0, 0x00}, ReasonProtocolError},
	}
	for _, tt := range tests {
		nc, br := rawConn(t, e, Version5, id, tok)
		nc.Write(tt.bytes)
		p, err := ReadPacket(br, Version5, 1<<20)
		if err != nil || p.Type != DISCONNECT || p.ReasonCode != tt.want {
			t.Errorf("%s: got %+v, %v; want DISCONNECT 0x%02X", tt.name, p, err, tt.want)
			continue
		}
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("%s: connection still open after DISCONNECT", tt.name)
		}
	}
	// A connection that never sends CONNECT is closed.
	nc, err := net.Dial("tcp", e.plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0x10, 0x20}) // the start of a CONNECT, then nothing
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Error("slow CONNECT: connection not closed")
	}
	// The server still serves.
	c := e.mustDial(Version5, id, tok)
	if _, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(1)); err != nil {
		t.Fatalf("Publish after hostile input: %v", err)
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	e := newEnv(t, "", func(o *Options) {
		// An ingest service without a log panics in Submit.
		o.Ingest = &ingest.Service{Devices: o.Ingest.Devices, Patients: o.Ingest.Patients, Catalog: o.Ingest.Catalog}
	})
	e.status.panicOn = "boom"
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	// A panicking status recorder is contained and the publish succeeds.
	if _, err := c.Publish(ctx10(t), "devices/"+id+"/status", 1, []byte(`{"firmware":"boom"}`)); err != nil {
		t.Fatalf("status with a panicking recorder: %v", err)
	}
	// A panic in publish handling closes the connection and nothing else.
	if _, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(1)); err == nil {
		t.Fatal("Publish through a panicking ingest was acknowledged")
	}
	<-c.Done()
	id2, tok2 := e.device()
	c2 := e.mustDial(Version311, id2, tok2)
	if _, err := c2.Publish(ctx10(t), "devices/"+id2+"/status", 1, []byte(`{"firmware":"2.0"}`)); err != nil { // this ingest has no log: no battery or sensor state
		t.Fatalf("Publish after a panic: %v", err)
	}
}

func TestTakeover(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	c1 := e.mustDial(Version5, id, tok)
	c2 := e.mustDial(Version5, id, tok)
	<-c1.Done()
	if got := refusedCode(c1.Err()); got != int(ReasonSessionTakenOver) {
		t.Errorf("first connection: %v, want DISCONNECT 0x8E", c1.Err())
	}
	if _, err := c2.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(1)); err != nil {
		t.Fatalf("Publish on the new connection: %v", err)
	}
	if !e.srv.Connected(id) {
		t.Error("device not connected after takeover")
	}
}

func TestShutdownAcknowledgesInFlight(t *testing.T) {
	e := newEnv(t, "", nil)
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[int]bool{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(i)); err == nil {
				mu.Lock()
				acked[i] = true
				mu.Unlock()
			}
		}()
	}
	if err := e.srv.Shutdown(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	stored := map[string]bool{}
	for _, r := range e.readings(id) {
		stored[r.Key[:strings.LastIndexByte(r.Key, ':')]] = true // "d:<device>:<seq>", without the content hash
	}
	for i := range acked {
		if !stored["d:"+id+":"+strconv.Itoa(i)] {
			t.Errorf("acknowledged reading %d not stored", i)
		}
	}
}
