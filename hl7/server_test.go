package hl7

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// bedside is a PCD-01 observation set: SpO2, pulse rate and a
// non-invasive blood pressure under its compound header row.
var bedside = []string{
	"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1|||||||X|||||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
	"OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261101120000+0000||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
	"OBX|3|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20261101120000+0000||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
	"OBX|4||150020^MDC_PRESS_BLD_NONINV^MDC|1.1.2.1|||||||R|||20261101120000+0000",
	"OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.2.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||20261101120000+0000||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
	"OBX|6|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.2.1.2|80|266016^MDC_DIM_MMHG^MDC|||||R|||20261101120000+0000||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
	"OBX|7|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.1.2.1.3|93|266016^MDC_DIM_MMHG^MDC|||||R|||20261101120000+0000||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64",
}

// describe is a reading in short: code=value unit, or code{components}.
func describe(r vigil.Reading) string {
	if len(r.Components) > 0 {
		var cs []string
		for _, c := range r.Components {
			cs = append(cs, fmt.Sprintf("%s=%g", c.Code, c.Value))
		}
		return r.Code + "{" + strings.Join(cs, ",") + "}"
	}
	return fmt.Sprintf("%s=%g %s", r.Code, r.Value, r.Unit)
}

func describeAll(rs []vigil.Reading) []string {
	var out []string
	for _, r := range rs {
		out = append(out, describe(r))
	}
	slices.Sort(out)
	return out
}

// TestAcceptBedsideReadings: a PCD-01 message from a registered sender is
// answered AA, echoing MSH-10, once its readings are durable: SpO2, pulse
// rate and one blood pressure panel, stored for the PID-3 patient, with
// the device named by OBX-18, the OBX-14 time and source hl7.
func TestAcceptBedsideReadings(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	d := e.device(p, "0012345678abcdef")
	a := e.mustSend(e.dial(), oru("MSG00001", "12345", bedside...))
	if a.code != AckAccept || a.controlID != "MSG00001" || len(a.errs) != 0 {
		t.Fatalf("ACK = %q", a.raw)
	}
	got := e.readings(p)
	want := []string{"2708-6=97 %", "85354-9{8480-6=120,8462-4=80,8478-0=93}", "8889-8=72 /min"}
	if !slices.Equal(describeAll(got), want) {
		t.Fatalf("readings = %v, want %v", describeAll(got), want)
	}
	for _, r := range got {
		if r.DeviceID != d.ID || r.Source != Source || !r.Time.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) {
			t.Errorf("reading %s: device %q source %q time %s; want %s, hl7, 12:00Z", describe(r), r.DeviceID, r.Source, r.Time, d.ID)
		}
	}
	if q := e.quarantined(); len(q) != 0 {
		t.Errorf("quarantine = %+v, want empty", q)
	}
}

// TestResentMessageStoredOnce: the same message sent again (a lost ACK)
// is acknowledged AA again and stores nothing twice.
func TestResentMessageStoredOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	c := e.dial()
	for range 3 {
		if a := e.mustSend(c, oru("MSG00001", "12345", bedside...)); a.code != AckAccept {
			t.Fatalf("ACK = %q", a.raw)
		}
	}
	// And on another connection, as after a reconnect.
	if a := e.mustSend(e.dial(), oru("MSG00001", "12345", bedside...)); a.code != AckAccept {
		t.Fatalf("ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 3 {
		t.Fatalf("%d readings stored, want 3: %v", len(got), describeAll(got))
	}
}

// TestUnregisteredSender: AR with the reason, the raw message kept in the
// quarantine, nothing stored.
func TestUnregisteredSender(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD6", "")
	p := e.patient("12345")
	m := oru("MSG00002", "12345", bedside...)
	a := e.mustSend(e.dial(), m)
	if a.code != AckReject || a.controlID != "MSG00002" || len(a.errs) != 1 || !strings.Contains(a.errs[0], "not registered") {
		t.Fatalf("ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 0 {
		t.Errorf("readings stored: %v", describeAll(got))
	}
	q := e.quarantined()
	if len(q) != 1 || string(q[0].Payload) != m || q[0].Source != Source || !strings.Contains(q[0].Reason, "MONITOR^WARD7") || q[0].Index != -1 {
		t.Fatalf("quarantine = %+v, want the raw message", q)
	}
	au := e.audit.all()
	if len(au) != 1 || au[0].Action != vigil.AuditSignIn || au[0].Outcome != vigil.AuditDenied || au[0].ActorName != "hl7 MONITOR^WARD7" || au[0].Remote != "127.0.0.1" {
		t.Errorf("audit = %+v, want one denied sign-in of hl7 MONITOR^WARD7", au)
	}
}

// TestProcessingIDNotClinical: MSH-11 T (training) and D (debugging) are
// answered AR and nothing of them is stored, not even in the quarantine.
func TestProcessingIDNotClinical(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	c := e.dial()
	for _, pid := range []string{"T", "D"} {
		m := strings.Replace(oru("MSG-"+pid, "12345", bedside...), "|P|2.6|", "|"+pid+"|2.6|", 1)
		a := e.mustSend(c, m)
		if a.code != AckReject || len(a.errs) != 1 || !strings.Contains(a.errs[0], "202") {
			t.Errorf("processing id %s: ACK = %q", pid, a.raw)
		}
	}
	if got := e.readings(p); len(got) != 0 {
		t.Errorf("readings stored: %v", describeAll(got))
	}
	if q := e.quarantined(); len(q) != 0 {
		t.Errorf("quarantine = %+v, want empty", q)
	}
}

// TestResultStatus: only F, C, R and P become readings; X, D and W do not
// and are not refusals.
func TestResultStatus(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	var obx []string
	for i, st := range []string{"F", "C", "R", "P", "X", "D", "W"} {
		obx = append(obx, fmt.Sprintf("OBX|%d|NM|8867-4^Heart rate^LN||%d|/min^/min^UCUM|||||%s|||2026110112%02d00+0000", i+1, 60+i, st, i))
	}
	a := e.mustSend(e.dial(), oru("MSG3", "12345", obx...))
	if a.code != AckAccept || len(a.errs) != 0 {
		t.Fatalf("ACK = %q", a.raw)
	}
	want := []string{"8867-4=60 /min", "8867-4=61 /min", "8867-4=62 /min", "8867-4=63 /min"}
	if got := describeAll(e.readings(p)); !slices.Equal(got, want) {
		t.Errorf("readings = %v, want %v", got, want)
	}
}

// TestPartlyRefused: readings that can be taken are stored; the message is
// answered AA with an ERR (severity W) per refused OBX, and kept whole in
// the quarantine with the reasons.
func TestPartlyRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	m := oru("MSG4", "12345",
		"OBX|1|NM|8867-4^Heart rate^LN||72|/min^/min^UCUM|||||R|||20261101120000+0000",
		"OBX|2|NM|99999^MDC_UNKNOWN_METRIC^MDC||5|262688^MDC_DIM_PERCENT^MDC|||||R|||20261101120000+0000",
		"OBX|3|NM|2708-6^SpO2^LN||170|%^%^UCUM|||||R|||20261101120000+0000",
	)
	a := e.mustSend(e.dial(), m)
	if a.code != AckAccept || len(a.errs) != 2 || !strings.Contains(a.errs[0], "|OBX^2^3|") || !strings.Contains(a.errs[1], "|OBX^3|") || !strings.Contains(a.errs[0], "|W|") {
		t.Fatalf("ACK = %q", a.raw)
	}
	if got := describeAll(e.readings(p)); !slices.Equal(got, []string{"8867-4=72 /min"}) {
		t.Errorf("readings = %v", got)
	}
	var whole *vigil.QuarantineItem
	for i, q := range e.quarantined() {
		if q.Index == -1 {
			whole = &e.quarantined()[i]
		}
	}
	if whole == nil || string(whole.Payload) != m || !strings.Contains(whole.Reason, "MDC_UNKNOWN_METRIC") || !strings.Contains(whole.Reason, "170") {
		t.Fatalf("quarantine holds no whole message with both reasons: %+v", e.quarantined())
	}
}

// TestUnknownPatient: no reading stored, AE, the message quarantined; once
// the patient is registered, the same message is stored.
func TestUnknownPatient(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	c := e.dial()
	m := oru("MSG5", "777", bedside[1])
	a := e.mustSend(c, m)
	if a.code != AckError || len(a.errs) != 1 || !strings.Contains(a.errs[0], "no patient has MRN 777") {
		t.Fatalf("ACK = %q", a.raw)
	}
	if q := e.quarantined(); len(q) != 1 || string(q[0].Payload) != m {
		t.Fatalf("quarantine = %+v", q)
	}
	p := e.patient("777")
	if a := e.mustSend(c, m); a.code != AckAccept {
		t.Fatalf("after registering the patient: ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 1 {
		t.Errorf("readings = %v", describeAll(got))
	}
}

// TestAssigningAuthority: a sender registered with an assigning authority
// names patients only by an identifier of that authority.
func TestAssigningAuthority(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "HOSP")
	p := e.patient("12345")
	e.patient("999")
	obx := "OBX|1|NM|8867-4^Heart rate^LN||72|/min^/min^UCUM|||||R|||20261101120000+0000"
	c := e.dial()
	// The other authority's identifier comes first; HOSP's is used.
	m := strings.Replace(oru("MSG6", "x", obx), "PID|||x^^^HOSP^MR", "PID|||999^^^OTHER^MR~12345^^^HOSP^MR", 1)
	if a := e.mustSend(c, m); a.code != AckAccept {
		t.Fatalf("ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 1 {
		t.Errorf("readings of the HOSP patient = %v", describeAll(got))
	}
	m = strings.Replace(oru("MSG7", "x", obx), "PID|||x^^^HOSP^MR", "PID|||999^^^OTHER^MR", 1)
	if a := e.mustSend(c, m); a.code != AckError || !strings.Contains(a.raw, "assigning authority HOSP") {
		t.Fatalf("ACK = %q", a.raw)
	}
}

// TestEquipment: OBX-18 names a device of the patient by serial or id:
// the reading carries it; an unknown or absent equipment id stores the
// reading for the patient without a device; a device of another patient
// is not taken.
func TestEquipment(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	other := e.patient("999")
	mine := e.device(p, "AAAA")
	theirs := e.device(other, "BBBB")
	obx := func(i int, eq string) string {
		return fmt.Sprintf("OBX|%d|NM|8867-4^Heart rate^LN||%d|/min^/min^UCUM|||||R|||20261101120000+0000||||%s", i, 60+i, eq)
	}
	a := e.mustSend(e.dial(), oru("MSG8", "12345", obx(1, "aaaa^^^EUI-64"), obx(2, mine.ID), obx(3, "CCCC"), obx(4, ""), obx(5, "BBBB"), obx(6, theirs.ID)))
	if a.code != AckAccept {
		t.Fatalf("ACK = %q", a.raw)
	}
	got := map[float64]string{}
	for _, r := range e.readings(p) {
		got[r.Value] = r.DeviceID
	}
	want := map[float64]string{61: mine.ID, 62: mine.ID, 63: "", 64: "", 65: "", 66: ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("devices by value = %v, want %v", got, want)
	}
}

// TestRevokedDevice: a reading naming a revoked device is refused.
func TestRevokedDevice(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	d := e.device(p, "AAAA")
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), d.ID, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
	a := e.mustSend(e.dial(), oru("MSG9", "12345", "OBX|1|NM|8867-4^Heart rate^LN||72|/min^/min^UCUM|||||R|||20261101120000+0000||||AAAA"))
	if a.code != AckError || !strings.Contains(a.raw, "revoked") {
		t.Fatalf("ACK = %q", a.raw)
	}
}

// TestRefusedWhole: messages Vigil does not take are answered AR with the
// HL7 error code, and kept in the quarantine.
func TestRefusedWhole(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	e.patient("12345")
	tests := []struct {
		name, msg, code string
	}{
		{"ADT", strings.Replace(oru("M1", "12345"), "ORU^R01^ORU_R01", "ADT^A01^ADT_A01", 1), "200"},
		{"event", strings.Replace(oru("M2", "12345"), "ORU^R01^ORU_R01", "ORU^R30", 1), "201"},
		{"version", strings.Replace(oru("M3", "12345"), "|P|2.6|", "|P|2.2|", 1), "203"},
		{"no control id", strings.Replace(oru("M4", "12345"), "|M4|", "||", 1), "101"},
		{"not HL7", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "100"},
	}
	c := e.dial()
	for _, tc := range tests {
		a := e.mustSend(c, tc.msg)
		if a.code != AckReject || len(a.errs) != 1 || !strings.Contains(a.errs[0], tc.code+"^") {
			t.Errorf("%s: ACK = %q, want AR with error %s", tc.name, a.raw, tc.code)
		}
	}
	if q := e.quarantined(); len(q) != len(tests) {
		t.Errorf("%d quarantined, want %d", len(q), len(tests))
	}
}

// TestOldVersionERR: a v2.3 message gets ERR-1 (code and location), as
// its version defines ERR.
func TestOldVersionERR(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	m := strings.Replace(oru("M23", "404"), "|P|2.6|", "|P|2.3|", 1) + "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F|||20261101120000\r"
	a := e.mustSend(e.dial(), m)
	if a.code != AckError || len(a.errs) != 1 || !strings.HasPrefix(a.errs[0], "ERR|OBX^1^^204&Unknown key identifier&HL70357") {
		t.Fatalf("ACK = %q", a.raw)
	}
}

// TestTooLarge: a message over the limit is answered AR, its beginning
// kept (truncated), and the connection goes on.
func TestTooLarge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 2048 })
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	big := oru("BIG", "12345", "NTE|1||"+strings.Repeat("x", 4000))
	c := e.dial()
	a := e.mustSend(c, big)
	if a.code != AckReject || a.controlID != "BIG" || !strings.Contains(a.raw, "larger than 2048 bytes") {
		t.Fatalf("ACK = %q", a.raw)
	}
	if q := e.quarantined(); len(q) != 1 || !q[0].Truncated || len(q[0].Payload) != 2048 {
		t.Fatalf("quarantine = %+v", q)
	}
	if a := e.mustSend(c, oru("SMALL", "12345", bedside[1])); a.code != AckAccept {
		t.Fatalf("next message on the connection: ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 1 {
		t.Errorf("readings = %v", describeAll(got))
	}
}

// TestQuarantineBounded: an address that keeps sending refused messages
// spends its quarantine budget; beyond it, unregistered senders' messages
// are answered AR without being kept, and a registered sender's are
// answered AE with nothing stored, so that the sender sends them again.
func TestQuarantineBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.QuarantineBurst, o.QuarantinePerSecond = 3, 0.001
		o.UnregisteredBurst, o.UnregisteredPerSecond = 2, 0.001
	})
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	c := e.dial()
	stranger := func(i int) string {
		return strings.Replace(oru(fmt.Sprint("S", i), "12345", bedside[1]), "MONITOR|WARD7", "STRANGER|X", 1)
	}
	for i := range 5 {
		if a := e.mustSend(c, stranger(i)); a.code != AckReject {
			t.Fatalf("stranger %d: ACK = %q", i, a.raw)
		}
	}
	if q := e.quarantined(); len(q) != 2 {
		t.Fatalf("%d quarantined of 5 unregistered messages, want 2 (the shared budget)", len(q))
	}
	// The address has spent 2 of its 3: one more refusal, then AE.
	unknown := oru("R1", "404", bedside[1])
	if a := e.mustSend(c, unknown); a.code != AckError || !strings.Contains(a.raw, "no patient") {
		t.Fatalf("ACK = %q", a.raw)
	}
	a := e.mustSend(c, oru("R2", "12345", bedside[1]))
	if a.code != AckError || !strings.Contains(a.raw, "too many refused messages") {
		t.Fatalf("over budget: ACK = %q", a.raw)
	}
	if got := e.readings(p); len(got) != 0 {
		t.Errorf("over budget, readings stored: %v", describeAll(got))
	}
	if q := e.quarantined(); len(q) != 3 {
		t.Errorf("%d quarantined, want 3", len(q))
	}
}

// TestMaxConns: connections beyond the limit are closed at once.
func TestMaxConns(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConns = 2 })
	e.sender("MONITOR", "WARD7", "")
	e.patient("12345")
	c1, c2 := e.dial(), e.dial()
	for _, c := range []*client{c1, c2} {
		if a := e.mustSend(c, oru("C", "12345", bedside[1])); a.code != AckAccept {
			t.Fatalf("ACK = %q", a.raw)
		}
	}
	c3 := e.dial()
	if _, err := c3.send(oru("C3", "12345", bedside[1])); err == nil {
		t.Fatal("a third connection was served")
	}
}

// TestIdleTimeout: a connection that sends nothing is closed after the
// idle timeout; one that starts a frame and stalls, after the frame
// timeout.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout, o.FrameTimeout = 200*time.Millisecond, 200*time.Millisecond })
	for _, first := range []string{"", "\x0bMSH|^~\\&|A"} {
		nc, err := net.Dial("tcp", e.plainAddr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(first))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		if _, err := nc.Read(b[:]); err == nil {
			t.Errorf("after %q: read a byte, want the connection closed", first)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("after %q: connection still open after 10 s", first)
		}
		nc.Close()
	}
}

// TestTLS: the TLS listener serves MLLP; a client certificate from the
// node's CA is taken, and with RequireClientCert one is required.
func TestTLS(t *testing.T) {
	for _, require := range []bool{false, true} {
		e := newEnv(t, func(o *Options) {
			o.TLSConfig = ClientCertTLSConfig(o.TLSConfig, o.TLSConfig.ClientCAs, require)
		})
		e.sender("MONITOR", "WARD7", "")
		e.patient("12345")
		cfg := &tls.Config{RootCAs: e.ca.Pool(), ServerName: "localhost"}
		c, err := e.dialTLS(cfg)
		if err == nil {
			_, err = c.send(oru("T1", "12345", bedside[1]))
		}
		if require && err == nil {
			t.Error("required client certificate: served without one")
		}
		if !require && err != nil {
			t.Errorf("TLS without client certificate: %v", err)
		}
		certPEM, keyPEM, err := e.ca.IssueClient("gateway-1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		c, err = e.dialTLS(cfg)
		if err != nil {
			t.Fatalf("require=%v: dial with a client certificate: %v", require, err)
		}
		if a := e.mustSend(c, oru("T2", "12345", bedside[1])); a.code != AckAccept {
			t.Errorf("require=%v: ACK = %q", require, a.raw)
		}
	}
}

// TestConcurrentSenders: many connections at once, each message answered
// AA, every reading stored once.
func TestConcurrentSenders(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	var wg sync.WaitGroup
	const conns, each = 8, 10
	errs := make(chan string, conns*each)
	for i := range conns {
		c := e.dial()
		wg.Go(func() {
			for j := range each {
				obx := fmt.Sprintf("OBX|1|NM|8867-4^Heart rate^LN||%d|/min^/min^UCUM|||||R|||202611011%d%02d00+0000", 40+i, j/6, j%6*10)
				ack, err := c.send(oru(fmt.Sprintf("C%d-%d", i, j), "12345", obx))
				if err != nil || !strings.Contains(ack, "MSA|AA|") {
					errs <- fmt.Sprintf("%v %q", err, ack)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.readings(p); len(got) != conns*each {
		t.Errorf("%d readings, want %d", len(got), conns*each)
	}
}

// TestShutdownFinishesMessage: Shutdown lets idle connections go at once
// and returns.
func TestShutdownFinishesMessage(t *testing.T) {
	e := newEnv(t, nil)
	e.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an idle connection: %v", err)
	}
}

// TestStoreFailureIsAE: when Vigil cannot look up the sender (its store
// is closed), the message is answered AE, so that the sender sends it
// again, never AR as if the sender were unknown.
func TestStoreFailureIsAE(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	e.patient("12345")
	e.store.Close()
	a := e.mustSend(e.dial(), oru("F1", "12345", bedside[1]))
	if a.code != AckError || !strings.Contains(a.raw, "send it again") {
		t.Fatalf("ACK = %q", a.raw)
	}
}

// TestDelimitersAndLineEndsOnTheWire: a message with separators of its
// own and LF line ends is read as its MSH declares, and acknowledged in
// its own separators.
func TestDelimitersAndLineEndsOnTheWire(t *testing.T) {
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD#7", "") // MSH-4 WARD@F@7: @F@ is the field separator
	p := e.patient("55$1")            // PID-3 55@S@1: @S@ is the component separator
	m := "MSH#$%@!#MONITOR#WARD@F@7#VIGIL#HOSP#20261101120000+0000##ORU$R01$ORU_R01#D@S@1#P#2.8\n" +
		"PID###55@S@1$$$HOSP$MR\n" +
		"OBR#1######20261101120000+0000\n" +
		"OBX#1#NM#8867-4$Heart rate$LN##64#/min$$UCUM#####F###20261101120000+0000\n"
	ack, err := e.dial().send(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ack, "MSH#$%@!#") || !strings.Contains(ack, "\rMSA#AA#D@S@1#") {
		t.Fatalf("ACK = %q, want AA in the message's separators, MSH-10 escaped as sent", ack)
	}
	if got := describeAll(e.readings(p)); !slices.Equal(got, []string{"8867-4=64 /min"}) {
		t.Errorf("readings = %v", got)
	}
}
