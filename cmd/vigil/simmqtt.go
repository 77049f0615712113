package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/mqtt"
)

// mqttSender sends the simulator's batches over MQTT 5, one connection per
// device (username = device id, password = device token), QoS 1 to
// devices/{id}/readings.
type mqttSender struct {
	addr string
	tls  *tls.Config
	mu   sync.Mutex
	conn map[string]*mqtt.Client
}

func newMQTTSender(addr, caFile string) (*mqttSender, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--mqtt-target %q: want host:port", addr)
	}
	return &mqttSender{addr: addr, tls: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}, conn: map[string]*mqtt.Client{}}, nil
}

func (m *mqttSender) client(ctx context.Context, id, token string) (*mqtt.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conn[id]; c != nil {
		return c, nil
	}
	c, err := mqtt.Dial(ctx, m.addr, mqtt.ClientOptions{Username: id, Password: token, TLSConfig: m.tls})
	if err != nil {
		return nil, err
	}
	m.conn[id] = c
	return c, nil
}

func (m *mqttSender) drop(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conn[id]; c != nil {
		c.Close()
		delete(m.conn, id)
	}
}

// Send publishes a batch and waits for its PUBACK, which Vigil sends only
// once the readings are durable. A refusal reason code becomes a 4xx
// client.Error (not retried); a lost connection is retried by the runner.
func (m *mqttSender) Send(ctx context.Context, id, token string, batch []client.ReadingIn) (*client.IngestResult, error) {
	body, err := json.Marshal(map[string]any{"readings": batch})
	if err != nil {
		return nil, err
	}
	c, err := m.client(ctx, id, token)
	if err != nil {
		var refused *mqtt.RefusedError
		if asRefused(err, &refused) {
			return nil, &client.Error{Status: http.StatusForbidden, Code: "forbidden", Message: refused.Error()}
		}
		return nil, err
	}
	ack, err := c.Publish(ctx, "devices/"+id+"/readings", 1, body)
	if err != nil {
		m.drop(id)
		return nil, err
	}
	if ack != nil && ack.ReasonCode >= 0x80 {
		return nil, &client.Error{Status: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf("PUBACK reason code 0x%02X", ack.ReasonCode)}
	}
	return &client.IngestResult{Accepted: len(batch), Rejected: []client.Rejection{}}, nil
}

func (m *mqttSender) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, c := range m.conn {
		c.Close()
		delete(m.conn, id)
	}
}

func asRefused(err error, target **mqtt.RefusedError) bool { return errors.As(err, target) }
