package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil/bus/natstest"
	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/mqtt"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/server"
)

// TestClusterOneNode runs the cluster test (clusterTest) with one Vigil
// node: the node itself is killed and started again.
func TestClusterOneNode(t *testing.T) { clusterTest(t, 1) }

// TestClusterThreeNodes runs the cluster test with three Vigil nodes on one
// database: one of them is killed, the browser session is on another.
func TestClusterThreeNodes(t *testing.T) {
	clusterTest(t, 3)
}

// Shape of the cluster test's load.
const (
	clusterHTTPSenders = 4  // devices sending over HTTPS, round robin over the nodes
	clusterMQTTSenders = 4  // devices sending over MQTT QoS 1, one connection each
	clusterAlerted     = 3  // patients whose SpO2 readings must raise one alert each
	clusterBatch       = 20 // readings per request or publish
	clusterAlertSeries = 10 // SpO2 readings per alerted patient, a minute apart
	clusterSpO2        = 85 // % : below the default spo2-low threshold (90) for over its 5 minutes
	clusterHeartRate   = 72 // /min: raises nothing (NEWS2 pulse score 0, no trend)
)

// clusterTest is issue 22's proof, with nodes Vigil nodes: 3 nats-server
// processes as a cluster on loopback, PostgreSQL, and nodes `vigil serve`
// processes started from the reference configuration deploy/vigil/vigil.env.
// Loaders send readings over HTTPS (round robin over the nodes) and over
// MQTT QoS 1 (to every node), a browser session of a clinician follows the
// live events on the first node, and some patients get SpO2 readings that
// must raise one alert each. Under that load the test SIGKILLs the last
// node and the NATS server leading the log's stream, and starts both again
// a few seconds later (with one node, the browser session's node is the one
// killed: it reconnects, as a browser does). Afterwards, once the nodes have
// stored and evaluated everything: every acknowledged reading is stored
// exactly once (and no reading twice), every expected alert was raised
// exactly once and no other, the audit chain verifies, and the browser
// session received live events before, during (with several nodes) and
// after the failure. Every node stops gracefully at the end.
func clusterTest(t *testing.T, nodes int) {
	dsn := pgtest.DSN(t)
	cluster := natstest.Start(t)
	bin := buildVigil(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg := referenceNodeConfig(t, bin)
	kekDir := t.TempDir()
	ports := freeTCPPorts(t, 2*nodes)
	ns := make([]*clusterNode, nodes)
	for i := range ns {
		ns[i] = &clusterNode{
			id:   "vigil-" + string(rune('a'+i)),
			dir:  t.TempDir(),
			http: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			mqtt: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
		}
		env := nodeEnv(cfg, map[string]string{
			"VIGIL_NODE_ID":    ns[i].id,
			"VIGIL_DATA":       ns[i].dir,
			"VIGIL_STORE":      dsn,
			"VIGIL_NATS_URL":   cluster.URL(),
			"VIGIL_KEK_FILE":   filepath.Join(kekDir, "kek"),
			"VIGIL_HTTP":       ns[i].http,
			"VIGIL_MQTT":       ns[i].mqtt,
			"VIGIL_MLLP":       "off",
			"VIGIL_PUBLIC_URL": "",
			"VIGIL_TLS_CERT":   "", // each node issues its own
			"VIGIL_TLS_KEY":    "",
		})
		ns[i].env = env
	}
	// The first node's first start creates the admin.
	ns[0].env = append(ns[0].env, "VIGIL_ADMIN_PASSWORD="+testPassword)
	// The first node creates the database's contents and the files every
	// node must share; the operator copies them to the others (docs/deploy.md).
	ns[0].start(t, bin)
	for _, n := range ns[1:] {
		for _, f := range []string{server.UsernameKeyFile, deid.KeyFile} {
			copyFile(t, filepath.Join(ns[0].dir, f), filepath.Join(n.dir, f))
		}
		n.start(t, bin)
	}
	for _, n := range ns {
		n.loadCA(t)
	}
	killed, survivor := ns[nodes-1], ns[0]

	// Patients, devices, and a clinician whose team has the alerted patients
	// and two of the others (one sending over HTTPS, one over MQTT).
	admin := adminClient(t, survivor.url, survivor.dir)
	type device struct{ id, token, patient string }
	newDevice := func(name string) device {
		t.Helper()
		pid, err := admin.CreatePatient(ctx, client.PatientIn{Name: name, BirthDate: "1950-01-01", MRN: "CLUSTER-" + name})
		if err != nil {
			t.Fatal(err)
		}
		d, err := admin.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", PatientID: pid})
		if err != nil {
			t.Fatal(err)
		}
		return device{d.ID, d.Token, pid}
	}
	var httpDevs, mqttDevs, alertDevs []device
	for i := range clusterHTTPSenders {
		httpDevs = append(httpDevs, newDevice(fmt.Sprintf("H%d", i)))
	}
	for i := range clusterMQTTSenders {
		mqttDevs = append(mqttDevs, newDevice(fmt.Sprintf("M%d", i)))
	}
	for i := range clusterAlerted {
		alertDevs = append(alertDevs, newDevice(fmt.Sprintf("A%d", i)))
	}
	const clinicianPassword = "ward-round-passphrase-42"
	clin, err := admin.CreateUser(ctx, client.UserIn{Username: "cluster-clinician", Password: clinicianPassword, Role: "clinician"})
	if err != nil {
		t.Fatal(err)
	}
	team, err := admin.CreateTeam(ctx, "cluster ward")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	watched := map[string]bool{httpDevs[0].patient: true, mqttDevs[0].patient: true}
	for _, d := range alertDevs {
		watched[d.patient] = true
	}
	for pid := range watched {
		if err := admin.EnrollPatient(ctx, team.ID, pid); err != nil {
			t.Fatal(err)
		}
	}
	clinician := survivor.client(t)
	if _, err := clinician.Login(ctx, "cluster-clinician", clinicianPassword); err != nil {
		t.Fatal(err)
	}

	acks := &ackLog{start: time.Now(), acked: map[string]map[uint64]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sse := &sseWatch{}
	sseCtx, sseStop := context.WithCancel(ctx)
	defer sseStop()
	sseDone := make(chan struct{})
	go func() { defer close(sseDone); sse.run(sseCtx, survivor, clinician.Token()) }()
	if !sse.waitOpen(15 * time.Second) {
		t.Fatalf("the browser session's event stream did not open:\n%s", survivor.proc.output())
	}

	// The load: HTTPS devices round robin over the nodes, a batch that
	// failed sent again as it was (to the next node) up to 3 times, as a
	// device keeps what was not acknowledged; MQTT devices each on a
	// connection to one node, moving to the next node when it is lost.
	nodeClients := func() []*client.Client {
		cs := make([]*client.Client, nodes)
		for i, n := range ns {
			cs[i] = n.client(t)
		}
		return cs
	}
	for w, d := range httpDevs {
		cs := nodeClients()
		wg.Go(func() {
			next := uint64(1)
			for i := 0; ; i++ {
				rs := heartRates(next, clusterBatch)
				next += clusterBatch
				for try := 0; try < 4; try++ {
					select {
					case <-stop:
						return
					default:
					}
					node := (w + i + try) % nodes
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					res, err := cs[node].PostReadings(rctx, d.token, rs)
					rcancel()
					if err == nil && res.Accepted == len(rs) {
						acks.add(d.id, rs, "https")
						break
					}
					acks.fail("https", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	for w, d := range mqttDevs {
		wg.Go(func() {
			node := w % nodes
			var conn *mqtt.Client
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			next := uint64(1)
			for i := 0; ; i++ {
				rs := heartRates(next, clusterBatch)
				next += clusterBatch
				body, _ := json.Marshal(map[string]any{"readings": rs})
				for try := 0; try < 4; try++ {
					select {
					case <-stop:
						return
					default:
					}
					err := func() error {
						if conn == nil {
							dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
							defer dcancel()
							c, err := mqtt.Dial(dctx, ns[node].mqtt, mqtt.ClientOptions{Username: d.id, Password: d.token,
								TLSConfig: &tls.Config{RootCAs: ns[node].ca, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
							if err != nil {
								return err
							}
							conn = c
						}
						pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
						defer pcancel()
						ack, err := conn.Publish(pctx, "devices/"+d.id+"/readings", 1, body)
						if err == nil && ack != nil && ack.ReasonCode >= 0x80 {
							err = fmt.Errorf("PUBACK reason code 0x%02X", ack.ReasonCode)
						}
						return err
					}()
					if err == nil {
						acks.add(d.id, rs, "mqtt")
						break
					}
					acks.fail("mqtt", err)
					if conn != nil {
						conn.Close()
						conn = nil
					}
					node = (node + 1) % nodes
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	// The alerted patients' SpO2 series, one reading of each patient a
	// second, each sent until acknowledged (to the next node after a
	// failure): the threshold holds for 5 minutes of the readings' time
	// from the sixth reading on, across the failure.
	seriesStart := time.Now().UTC().Add(-time.Duration(clusterAlertSeries+2) * time.Minute).Truncate(time.Second)
	alertsSent := make(chan bool, 1)
	alertClients := nodeClients()
	wg.Go(func() {
		cs := alertClients
		deadline := time.Now().Add(60 * time.Second)
		for i := range clusterAlertSeries {
			for p, d := range alertDevs {
				r := []client.ReadingIn{{Code: "2708-6", Value: clusterSpO2, Unit: "%", Time: seriesStart.Add(time.Duration(i) * time.Minute), Seq: uint64(i + 1)}}
				for try := 0; ; try++ {
					select {
					case <-stop:
						alertsSent <- false
						return
					default:
					}
					if time.Now().After(deadline) {
						alertsSent <- false
						return
					}
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					res, err := cs[(i+p+try)%nodes].PostReadings(rctx, d.token, r)
					rcancel()
					if err == nil && res.Accepted == 1 {
						acks.add(d.id, r, "alert")
						break
					}
					acks.fail("alert", err)
					time.Sleep(200 * time.Millisecond)
				}
			}
			time.Sleep(time.Second)
		}
		alertsSent <- true
	})

	// Let the load run, then kill one node and the NATS server leading the
	// log's stream, without warning; start both again 3 s later, the node
	// first (while its NATS server is still down).
	time.Sleep(6 * time.Second)
	if acks.total() == 0 {
		close(stop)
		wg.Wait()
		sseStop()
		t.Fatalf("nothing acknowledged in 6 s: %s\n%s", acks.failures(), survivor.proc.output())
	}
	victim := streamLeader(t, cluster)
	killedAt := time.Now()
	killed.kill(t)
	cluster.Kill(victim)
	t.Logf("killed %s and %s after %d readings acknowledged", killed.id, natstest.Names[victim], acks.total())
	time.Sleep(3 * time.Second)
	killed.start(t, bin)
	restartedAt := time.Now()
	cluster.Restart(victim)
	t.Logf("%s restarted %.1f s after the kill", killed.id, restartedAt.Sub(killedAt).Seconds())
	time.Sleep(6 * time.Second)
	select {
	case ok := <-alertsSent:
		if !ok {
			t.Errorf("the alerted patients' readings were not all acknowledged within 60 s: %s", acks.failures())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the alerted patients' readings were not all sent within 30 s of the restart")
	}
	close(stop)
	loadEnd := time.Now()
	wg.Wait() // within a request's timeout; the event stream goes on until the checks below are done
	acks.logRates(t, nodes, killedAt, restartedAt)
	if t.Failed() {
		return
	}

	// Drained: every node's store writer and rules engine are at the end
	// of the log, and every acknowledged reading is in the database.
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var stored map[string]map[uint64]int
	for deadline := time.Now().Add(60 * time.Second); ; {
		lag, lags := 0.0, ""
		for _, n := range ns {
			w, e := n.metric(t, "vigil_store_writer_lag_messages"), n.metric(t, server.RulesEngineLagMetric)
			lag += w + e
			lags += fmt.Sprintf(" %s: store writer %g, rules engine %g;", n.id, w, e)
		}
		stored = storedReadings(t, db)
		missing := acks.missing(stored)
		if lag == 0 && missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			states := consumerStates(t, cluster)
			for _, n := range ns {
				t.Logf("%s's output, and its goroutines in the log's consumers:\n%s", n.id, n.dump())
			}
			t.Fatalf("not drained 60 s after the load: %d acknowledged readings not stored; lag in messages:%s\n%s", missing, lags, states)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("drained %.1f s after the load ended", time.Since(loadEnd).Seconds())

	// Every acknowledged reading stored exactly once; no reading twice.
	devs := map[string]bool{}
	for _, d := range slices.Concat(httpDevs, mqttDevs, alertDevs) {
		devs[d.id] = true
	}
	storedCount, extra := 0, 0
	for dev, seqs := range stored {
		if !devs[dev] {
			t.Errorf("readings stored for device %s, which no loader used", dev)
		}
		for seq, c := range seqs {
			storedCount += c
			if c != 1 {
				t.Errorf("reading %d of device %s stored %d times", seq, dev, c)
			}
			if acks.acked[dev][seq] == 0 {
				extra++ // sent, not acknowledged: stored or not, never twice
			}
		}
	}
	for dev, seqs := range acks.acked {
		for seq := range seqs {
			if stored[dev][seq] != 1 {
				t.Errorf("acknowledged reading %d of device %s stored %d times", seq, dev, stored[dev][seq])
			}
		}
	}
	t.Logf("%d readings acknowledged, %d stored (%d of them sent but not acknowledged)", acks.total(), storedCount, extra)

	// Every expected alert raised exactly once: one spo2-low alert for each
	// alerted patient, opened once; no alert of any other patient, nor two
	// of one patient's condition.
	alerted := map[string]bool{}
	for _, d := range alertDevs {
		alerted[d.patient] = true
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		as := storedAlerts(t, db)
		raised := 0
		for _, a := range as {
			if alerted[a.patient] && a.key == "threshold:spo2-low" {
				raised++
			}
		}
		if raised >= clusterAlerted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d expected spo2-low alerts raised within 30 s of draining: %+v", raised, clusterAlerted, as)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would come at once
	perCondition := map[string]int{}
	for _, a := range storedAlerts(t, db) {
		perCondition[a.patient+" "+a.key]++
		if !alerted[a.patient] {
			t.Errorf("alert %s (%s) of patient %s, who was sent nothing alarming", a.id, a.key, a.patient)
		}
		if a.opened != 1 {
			t.Errorf("alert %s (%s) of patient %s opened %d times", a.id, a.key, a.patient, a.opened)
		}
	}
	for _, d := range alertDevs {
		if n := perCondition[d.patient+" threshold:spo2-low"]; n != 1 {
			t.Errorf("patient %s has %d spo2-low alerts, want 1", d.patient, n)
		}
	}
	for k, n := range perCondition {
		if n != 1 {
			t.Errorf("%d alerts of %s, want 1", n, k)
		}
	}
	t.Logf("alerts: %v", perCondition)

	// The browser session received live events throughout.
	sse.check(t, nodes, killedAt, restartedAt, loadEnd, alerted)
	sseStop()
	<-sseDone

	// Every node stops gracefully; then its audit chain verifies.
	for _, n := range ns {
		n.stop(t)
	}
	verifyClusterAudit(t, bin, dsn, ns)
}

// clusterNode is one `vigil serve` process of the cluster test, started
// and restarted on the same ports, data directory and environment.
type clusterNode struct {
	id, dir    string
	http, mqtt string // listen addresses
	env        []string
	proc       *process
	url        string
	ca         *x509.CertPool
}

// start runs the node and waits until it listens. A node started while
// the NATS cluster elects a new leader for the log's stream waits for it
// (the log's setup is tried again for up to a minute) rather than exit:
// a start that exits fails the test.
func (n *clusterNode) start(t *testing.T, bin string) {
	t.Helper()
	if err := n.run(t, bin); err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
}

// run runs the node once and waits until it listens; an error if it exits
// before.
func (n *clusterNode) run(t *testing.T, bin string) error {
	t.Helper()
	// The admin signs in with a password alone, as in the crash tests.
	cmd := exec.Command(bin, "serve", "--log-level", "warn", "--admin-totp=false")
	cmd.Env = n.env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &strings.Builder{}, mu: &sync.Mutex{}}
	urlc := make(chan string, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	select {
	case n.url = <-urlc:
	case <-ended:
		cmd.Wait()
		return fmt.Errorf("exited at start (%v):\n%s", cmd.ProcessState, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start listening within 60 s:\n%s", n.id, p.output())
	}
	n.proc = p
	return nil
}

// kill kills the node with SIGKILL and waits until it has exited.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	if err := n.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.proc.cmd.Wait()
}

// stop stops the node with SIGTERM, as systemd does, and checks that it
// stopped gracefully within 45 s (vigil.service's TimeoutStopSec).
func (n *clusterNode) stop(t *testing.T) {
	t.Helper()
	if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.proc.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(n.proc.output(), "vigil: stopped") {
			t.Errorf("%s: graceful stop: %v\n%s", n.id, err, n.proc.output())
		}
	case <-time.After(45 * time.Second):
		n.proc.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 45 s of SIGTERM:\n%s", n.id, n.proc.output())
	}
}

// dump stops the node with SIGQUIT, which makes the Go runtime print every
// goroutine's stack, and returns its output with only the goroutines in
// the packages that consume the log (bus, ingest, alerting).
func (n *clusterNode) dump() string {
	n.proc.cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { n.proc.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.proc.cmd.Process.Kill()
		<-done
	}
	time.Sleep(100 * time.Millisecond) // the rest of stderr
	var b strings.Builder
	for _, block := range strings.Split(n.proc.output(), "\n\n") {
		if !strings.HasPrefix(block, "goroutine ") {
			if !strings.Contains(block, "goroutine ") {
				b.WriteString(block + "\n\n")
			}
			continue
		}
		if strings.Contains(block, "vigil/alerting") || strings.Contains(block, "vigil/bus") || strings.Contains(block, "vigil/ingest") {
			b.WriteString(block + "\n\n")
		}
	}
	return b.String()
}

// loadCA reads the CA the node issued its certificate with.
func (n *clusterNode) loadCA(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	n.ca = x509.NewCertPool()
	if !n.ca.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate in its CA file", n.id)
	}
}

// client returns a client of the node's API (the URL it listens at
// before and after a restart), without a token.
func (n *clusterNode) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(n.url, client.WithRootCAs(n.ca), client.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *clusterNode) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.ca, MinVersion: tls.VersionTLS12}}}
}

// metric returns the sum of the node's /metrics series named name; the
// test fails if there is none or the node does not answer.
func (n *clusterNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	hc := n.httpClient()
	hc.Timeout = 10 * time.Second
	resp, err := hc.Get(n.url + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.id, err)
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s /metrics: %q: %v", n.id, line, err)
		}
		if v < 0 {
			v = 1 // the log could not say: not drained
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("%s /metrics has no %s", n.id, name)
	}
	return sum
}

// referenceNodeConfig reads deploy/vigil/vigil.env, the reference node
// configuration, and checks that every variable it sets is one of vigil
// serve's (as its --help lists them) and that it replicates the log on 3
// NATS servers.
func referenceNodeConfig(t *testing.T, bin string) map[string]string {
	t.Helper()
	path := filepath.Join(natstest.RepoRoot(t), "deploy", "vigil", "vigil.env")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reference configuration: %v", err)
	}
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[(VIGIL_[A-Z0-9_]+)\]`).FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	if len(known) < 20 {
		t.Fatalf("vigil serve --help lists %d environment variables:\n%s", len(known), help)
	}
	cfg := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, `"'`) {
			t.Fatalf("%s:%d: want NAME=value without quotes: %q", path, i+1, line)
		}
		if !known[k] {
			t.Errorf("%s:%d: %s is not a setting of vigil serve", path, i+1, k)
		}
		if _, dup := cfg[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, i+1, k)
		}
		cfg[k] = v
	}
	if cfg["VIGIL_NATS_REPLICAS"] != "3" || cfg["VIGIL_PARTITIONS"] == "" || cfg["VIGIL_NODE_ID"] == "" {
		t.Errorf("%s: want VIGIL_NATS_REPLICAS=3, VIGIL_PARTITIONS and VIGIL_NODE_ID set: %v", path, cfg)
	}
	return cfg
}

// nodeEnv returns the environment of a node: this process's, without any
// VIGIL_ variable, then cfg with over's values in place of its own (an
// empty value unsets one).
func nodeEnv(cfg, over map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			env = append(env, kv)
		}
	}
	all := map[string]string{}
	for k, v := range cfg {
		all[k] = v
	}
	for k, v := range over {
		all[k] = v
	}
	for k, v := range all {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// heartRates returns n heart rate readings with seqs from first on, at
// times near now.
func heartRates(first uint64, n int) []client.ReadingIn {
	now := time.Now().UTC().Add(-time.Second)
	rs := make([]client.ReadingIn, n)
	for i := range rs {
		rs[i] = client.ReadingIn{Code: "8867-4", Value: clusterHeartRate, Unit: "/min", Time: now.Add(time.Duration(i) * time.Millisecond), Seq: first + uint64(i)}
	}
	return rs
}

// ackLog records the acknowledged readings of the cluster test by device
// and seq, and when they were acknowledged.
type ackLog struct {
	start time.Time

	mu        sync.Mutex
	acked     map[string]map[uint64]int // device → seq → acknowledgements
	perSecond []map[string]int          // second of the run → path → readings acknowledged
	failed    map[string]int            // path: error → count
}

func (l *ackLog) add(dev string, rs []client.ReadingIn, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked[dev] == nil {
		l.acked[dev] = map[uint64]int{}
	}
	for _, r := range rs {
		l.acked[dev][r.Seq]++
	}
	s := int(time.Since(l.start) / time.Second)
	for len(l.perSecond) <= s {
		l.perSecond = append(l.perSecond, map[string]int{})
	}
	l.perSecond[s][path] += len(rs)
}

var errDigits = regexp.MustCompile(`[0-9]+`)

func (l *ackLog) fail(path string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = map[string]int{}
	}
	msg := "not all accepted"
	if err != nil {
		msg = errDigits.ReplaceAllString(err.Error(), "N")
	}
	l.failed[path+": "+msg]++
}

func (l *ackLog) failures() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) == 0 {
		return "no failed request"
	}
	var out []string
	for k, n := range l.failed {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func (l *ackLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, seqs := range l.acked {
		n += len(seqs)
	}
	return n
}

// missing counts the acknowledged readings not in stored.
func (l *ackLog) missing(stored map[string]map[uint64]int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for dev, seqs := range l.acked {
		for seq := range seqs {
			if stored[dev][seq] == 0 {
				n++
			}
		}
	}
	return n
}

// logRates logs the readings acknowledged in each second of the run, by
// path, marking the seconds of the kill and of the restart, and the
// failed requests.
func (l *ackLog) logRates(t *testing.T, nodes int, killed, restarted time.Time) {
	l.mu.Lock()
	var b strings.Builder
	total := 0
	ks, rs := int(killed.Sub(l.start)/time.Second), int(restarted.Sub(l.start)/time.Second)
	for s, m := range l.perSecond {
		n := m["https"] + m["mqtt"] + m["alert"]
		total += n
		mark := ""
		switch s {
		case ks:
			mark = "  <- node and NATS server killed"
		case rs:
			mark = "  <- node restarted"
		}
		fmt.Fprintf(&b, "\n  second %2d: %6d acknowledged/s (HTTPS %d, MQTT %d)%s", s, n, m["https"]+m["alert"], m["mqtt"], mark)
	}
	secs := len(l.perSecond)
	// The whole seconds before the kill, and those after the restart but
	// the last (cut short by the end of the load).
	steady := func(from, to int) string {
		n := 0
		for s := from; s < to; s++ {
			m := l.perSecond[s]
			n += m["https"] + m["mqtt"] + m["alert"]
		}
		if to <= from {
			return "-"
		}
		return fmt.Sprintf("%.0f/s", float64(n)/float64(to-from))
	}
	// While down: the whole seconds between the kill and the restart.
	before, down, after := steady(0, min(ks, secs)), steady(ks+1, min(rs, secs)), steady(rs+1, secs-1)
	l.mu.Unlock()
	t.Logf("acknowledged readings per second of the run (%d in %d s, %.0f/s on average; %s before the kill, %s after the restart):%s",
		total, secs, float64(total)/float64(max(secs, 1)), before, after, b.String())
	t.Logf("acknowledged readings/s by phase with %d node(s): %s before the kill, %s while the node was down, %s after the restart",
		nodes, before, down, after)
	t.Logf("failed requests: %s", l.failures())
}

// storedReadings returns how many times each device's seq is stored, from
// the readings table (keys "d:<device>:<seq>:<content hash>").
func storedReadings(t *testing.T, db *pgx.Conn) map[string]map[uint64]int {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT device_id, key FROM readings WHERE key LIKE 'd:%'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[uint64]int{}
	for rows.Next() {
		var dev, key string
		if err := rows.Scan(&dev, &key); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(key, ":")
		seq, err := strconv.ParseUint(parts[min(2, len(parts)-1)], 10, 64)
		if len(parts) != 4 || parts[1] != dev || err != nil {
			t.Fatalf("reading of device %s has key %q", dev, key)
		}
		if out[dev] == nil {
			out[dev] = map[uint64]int{}
		}
		out[dev][seq]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type storedAlert struct {
	id, patient, key string
	opened           int // "opened" events
}

// storedAlerts returns every alert in the alerts table with the count of
// its "opened" events.
func storedAlerts(t *testing.T, db *pgx.Conn) []storedAlert {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT a.id, a.subject_id, a.key,
		(SELECT count(*) FROM alert_events e WHERE e.alert_id = a.id AND e.type = 'opened') FROM alerts a ORDER BY a.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedAlert
	for rows.Next() {
		var a storedAlert
		if err := rows.Scan(&a.id, &a.patient, &a.key, &a.opened); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// consumerStates describes the durable consumers of the log's stream.
func consumerStates(t *testing.T, c *natstest.Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Connect().Stream(ctx, "VIGIL")
	if err != nil {
		return fmt.Sprintf("the log's stream: %v", err)
	}
	var b strings.Builder
	if info, err := s.Info(ctx); err == nil {
		fmt.Fprintf(&b, "stream: %d messages, first %d, last %d, leader %s\n", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, info.Cluster.Leader)
	}
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		cons, err := s.Consumer(ctx, name)
		if err != nil {
			fmt.Fprintf(&b, "consumer %s: %v\n", name, err)
			continue
		}
		ci := cons.CachedInfo()
		leader := ""
		if ci.Cluster != nil {
			leader = ci.Cluster.Leader
		}
		fmt.Fprintf(&b, "consumer %s: pending %d, ack pending %d, waiting %d, delivered %d, ack floor %d, redelivered %d, leader %s\n",
			name, ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumRedelivered, leader)
	}
	return b.String()
}

// streamLeader returns the index of the NATS server leading the log's
// stream VIGIL.
func streamLeader(t *testing.T, c *natstest.Cluster) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Connect().Stream(ctx, "VIGIL")
	if err != nil {
		t.Fatalf("the log's stream: %v", err)
	}
	var info *jetstream.StreamInfo
	if info, err = s.Info(ctx); err != nil || info.Cluster == nil {
		t.Fatalf("the log's stream: %v %+v", err, info)
	}
	i := c.Index(info.Cluster.Leader)
	if i < 0 {
		t.Fatalf("the log's stream is led by %q, not a server of the cluster", info.Cluster.Leader)
	}
	return i
}

// sseWatch is a browser session following the live events
// (GET /api/v1/events) of one node: it reconnects when the stream ends, as
// EventSource does, and records when each event arrived.
type sseWatch struct {
	mu       sync.Mutex
	opened   int         // streams opened
	ended    []time.Time // when a stream ended
	readings []time.Time // arrival of each "reading" event
	alerts   map[string]int
	errs     []string
}

func (w *sseWatch) run(ctx context.Context, n *clusterNode, token string) {
	hc := n.httpClient()
	for ctx.Err() == nil {
		err := w.stream(ctx, hc, n.url, token)
		w.mu.Lock()
		if err != nil && ctx.Err() == nil {
			w.errs = append(w.errs, err.Error())
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (w *sseWatch) stream(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("event stream: %d %s", resp.StatusCode, b)
	}
	w.mu.Lock()
	w.opened++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.ended = append(w.ended, time.Now())
		w.mu.Unlock()
	}()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var ev struct {
				PatientID string `json:"patient_id"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				return fmt.Errorf("event %s: %v", event, err)
			}
			w.mu.Lock()
			switch event {
			case "reading":
				w.readings = append(w.readings, time.Now())
			case "alert":
				if w.alerts == nil {
					w.alerts = map[string]int{}
				}
				w.alerts[ev.PatientID]++
			}
			w.mu.Unlock()
		case line == "":
			event = ""
		}
	}
	return sc.Err()
}

// waitOpen waits until a stream is open, at most d.
func (w *sseWatch) waitOpen(d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		w.mu.Lock()
		open := w.opened > 0
		w.mu.Unlock()
		if open {
			return true
		}
	}
	return false
}

// check checks that the session received reading events before the kill
// and after the restart and, with several nodes (its own node not killed),
// while the killed node was down, on one stream that never ended; that it
// saw an alert of every alerted patient; and that reconnecting never
// failed but while its node was down.
func (w *sseWatch) check(t *testing.T, nodes int, killed, restarted, loadEnd time.Time, alerted map[string]bool) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var before, during, after, afterLoad int
	for _, at := range w.readings {
		if at.After(loadEnd) {
			afterLoad++
		}
		switch {
		case at.Before(killed):
			before++
		case at.Before(restarted):
			during++
		default:
			after++
		}
	}
	t.Logf("browser session: %d reading events before the kill, %d while the node was down, %d after the restart (%d of them after the load); %d streams opened; alert events %v",
		before, during, after, afterLoad, w.opened, w.alerts)
	if before == 0 || after == 0 {
		t.Errorf("browser session: %d reading events before the kill and %d after the restart, want some of each", before, after)
	}
	if nodes > 1 {
		if during == 0 {
			t.Errorf("browser session on a surviving node: no reading event while the other node was down")
		}
		if w.opened != 1 || len(w.ended) != 0 || len(w.errs) != 0 {
			t.Errorf("browser session on a surviving node: %d streams opened, ended at %v, errors %v; want one stream throughout", w.opened, w.ended, w.errs)
		}
	} else if w.opened < 2 {
		t.Errorf("browser session: %d streams opened, want it reconnected after the restart", w.opened)
	}
	for pid := range alerted {
		if w.alerts[pid] == 0 && (nodes > 1) {
			t.Errorf("browser session: no alert event of patient %s", pid)
		}
	}
}

// verifyClusterAudit checks the audit chains of the stopped nodes with
// vigil audit verify --store --data --node-id, once per node: every node's
// chain in the database, this node's continued in its own journal. After a
// graceful stop a checkpoint covers every entry.
func verifyClusterAudit(t *testing.T, bin, dsn string, ns []*clusterNode) {
	t.Helper()
	for _, n := range ns {
		cmd := exec.Command(bin, "audit", "verify", "--store", dsn, "--data", n.dir, "--node-id", n.id)
		cmd.Env = n.env
		out, err := cmd.CombinedOutput()
		// Every chain intact, and this node's proven complete to its last
		// entry by the checkpoint of its graceful stop.
		entries := regexp.MustCompile(`node ` + n.id + `: audit chain intact: (\d+) entries`).FindStringSubmatch(string(out))
		proven := regexp.MustCompile(`node ` + n.id + `: complete up to seq (\d+):`).FindStringSubmatch(string(out))
		if err != nil || strings.Contains(string(out), "broken") || entries == nil || proven == nil || entries[1] != proven[1] {
			t.Errorf("%s: vigil audit verify: %v\n%s", n.id, err, out)
		} else {
			t.Logf("%s: vigil audit verify:\n%s", n.id, out)
		}
	}
}

// freeTCPPorts returns n distinct loopback ports free at the time of the
// call.
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
