package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/mqtt"
)

// TestMQTTIntoThePipeline: a device publishing over MQTT reaches the same
// store as HTTP ingest; revoking it through the API disconnects it at once
// and it cannot reconnect.
func TestMQTTIntoThePipeline(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	addrs := h.srv.MQTTAddrs()
	if len(addrs) != 1 {
		t.Fatalf("MQTT addresses %v, want one TLS listener", addrs)
	}
	pem, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	c, err := mqtt.Dial(ctx, addrs[0], mqtt.ClientOptions{Username: h.devID, Password: h.devTok, TLSConfig: tlsConf})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	body := fmt.Sprintf(`{"readings":[{"code":"2708-6","value":94,"unit":"%%","time":%q,"seq":1}]}`, recent(time.Minute))
	ack, err := c.Publish(ctx, "devices/"+h.devID+"/readings", 1, []byte(body))
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("publish: %v %+v", err, ack)
	}
	h.waitStored()
	page, err := h.admin.Readings(ctx, h.pid, client.ReadingsQuery{})
	if err == nil {
		page.Readings = measured(page.Readings)
	}
	if err != nil || len(page.Readings) != 1 || page.Readings[0].Source != "mqtt" {
		t.Fatalf("readings after MQTT publish: %+v %v", page, err)
	}
	// A low battery reported on the status topic raises a battery alert
	// through the log and the rules engine.
	if ack, err := c.Publish(ctx, "devices/"+h.devID+"/status", 1, []byte(`{"battery":7,"sensor":"ok","firmware":"1.2"}`)); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("publish status: %v %+v", err, ack)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
		if fmt.Sprint(m["alerts"]) != "[]" && strings.Contains(fmt.Sprint(m["alerts"]), "battery:"+h.devID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no battery alert after a status of 7 %%: %v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The device registry shows the connection.
	st, m := h.do("GET", "/api/v1/devices/"+h.devID, h.admin.Token(), nil)
	if st != http.StatusOK || m["status"] == nil || m["status"].(map[string]any)["connected"] != true {
		t.Errorf("device registry: %d %v", st, m)
	}
	if st, m := h.do("POST", "/api/v1/devices/"+h.devID+"/revoke", h.admin.Token(), nil); st != 200 {
		t.Fatalf("revoke: %d %v", st, m)
	}
	if _, err := c.Publish(ctx, "devices/"+h.devID+"/readings", 1, []byte(body)); err == nil {
		t.Error("publish after revoke succeeded")
	}
	if _, err := mqtt.Dial(ctx, addrs[0], mqtt.ClientOptions{Username: h.devID, Password: h.devTok, TLSConfig: tlsConf}); err == nil {
		t.Error("revoked device reconnected")
	}
}

// TestDeviceStatusSurvivesRestart: the registry shows a device's last
// status (battery, firmware) after a restart, as disconnected until it
// connects again.
func TestDeviceStatusSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir)
	ctx := context.Background()
	pem, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := mqtt.Dial(ctx, h.srv.MQTTAddrs()[0], mqtt.ClientOptions{Username: h.devID, Password: h.devTok,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if ack, err := c.Publish(ctx, "devices/"+h.devID+"/status", 1, []byte(`{"battery":55,"firmware":"2.1"}`)); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("publish status: %v %+v", err, ack)
	}
	c.Close()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := start(t, dir)
	st, m := h2.do("GET", "/api/v1/devices/"+h.devID, h2.admin.Token(), nil)
	status, _ := m["status"].(map[string]any)
	if st != http.StatusOK || status == nil || status["battery"] != 55.0 || status["firmware"] != "2.1" || status["connected"] != false {
		t.Errorf("device after restart: %d %v", st, m)
	}
}
