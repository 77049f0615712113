// Package client is a Go client for Vigil's JSON API under /api/v1.
//
// A Client is safe for concurrent use by many goroutines. It keeps HTTP
// connections alive and reuses them, so one Client should be shared rather
// than one made per request. Every method takes a context first; a cancelled
// context aborts the request.
//
// Requests made on behalf of a user carry the token set by Login, WithToken
// or SetToken. PostReadings is the exception: readings are sent by a device
// and carry the device's own token, passed to each call.
//
// Any answer with a status outside 2xx is returned as an *Error holding the
// status and the API's error code and message. Network failures are returned
// as they come from net/http, wrapped.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// apiPrefix is the path of the API below the base URL.
const apiPrefix = "/api/v1"

// maxResponse bounds how much of a successful response body is decoded;
// maxErrorBody bounds how much of an error body is read.
const (
	maxResponse  = 256 << 20
	maxErrorBody = 64 << 10
)

// Client talks to one Vigil server. The zero value is not usable: make one
// with New.
type Client struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	hc   *http.Client

	mu    sync.RWMutex
	token string
}

// Option configures a Client made by New.
type Option func(*config)

type config struct {
	rootCAs *x509.CertPool
	caFile  string
	token   string
	hc      *http.Client
	timeout time.Duration
	idle    int
}

// WithCAFile trusts the PEM certificates in the named file (such as Vigil's
// own CA certificate) instead of the system roots. New fails if the file
// cannot be read or holds no certificate.
func WithCAFile(path string) Option { return func(c *config) { c.caFile = path } }

// WithRootCAs trusts the certificates in pool instead of the system roots.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *config) { c.rootCAs = pool } }

// WithToken sets the bearer token sent with user requests, as if Login had
// returned it.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithHTTPClient makes the Client send its requests through hc, used as it
// is. It cannot be combined with WithCAFile, WithRootCAs, WithTimeout or
// WithMaxIdleConns, which configure the http.Client that New makes otherwise.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.hc = hc } }

// WithTimeout bounds each request, from dialling to reading the whole
// response body. Zero (the default) means no bound beyond the context's.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxIdleConns sets how many idle keep-alive connections to the server
// the Client keeps for reuse. The default, 64, suits a few dozen goroutines
// sending concurrently.
func WithMaxIdleConns(n int) Option { return func(c *config) { c.idle = n } }

// New returns a Client for the server at baseURL, such as
// "https://localhost:8443". A path in baseURL (a reverse-proxy prefix) is
// kept; the API's own /api/v1 is added by the Client.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parse base URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("parse base URL: %q is not an absolute http or https URL", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("parse base URL: %q has a query or fragment", baseURL)
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	c := &Client{base: strings.TrimSuffix(u.String(), "/"), token: cfg.token}
	if cfg.hc != nil {
		if cfg.caFile != "" || cfg.rootCAs != nil || cfg.timeout != 0 || cfg.idle != 0 {
			return nil, errors.New("new client: WithHTTPClient cannot be combined with WithCAFile, WithRootCAs, WithTimeout or WithMaxIdleConns")
		}
		c.hc = cfg.hc
		return c, nil
	}
	pool := cfg.rootCAs
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no PEM certificate found", cfg.caFile)
		}
	}
	idle := cfg.idle
	if idle <= 0 {
		idle = 64
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = idle
	tr.MaxIdleConnsPerHost = idle
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.hc = &http.Client{Transport: tr, Timeout: cfg.timeout}
	return c, nil
}

// SetToken sets the bearer token sent with user requests from now on.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// Token returns the bearer token sent with user requests, "" if none.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// CloseIdleConnections closes the keep-alive connections not in use.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Error is an answer from the server with a status outside 2xx.
type Error struct {
	Status  int    // HTTP status code
	Code    string // the API's error code, such as "invalid" or "not_found"; "" if the body had none
	Message string // the API's message, or a description of the body when it had none
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("vigil API: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("vigil API: HTTP %d: %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether the same request may succeed if sent again
// later: the server was unavailable or failed (5xx), timed out waiting for
// the request (408) or asked the sender to slow down (429).
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// Token is a session token issued by Login.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Login exchanges a username and password for a session token, which the
// Client then sends with every user request. A wrong password is an *Error
// with Status 401.
func (c *Client) Login(ctx context.Context, username, password string) (*Token, error) {
	return c.LoginWithCode(ctx, username, password, "")
}

// LoginWithCode is Login for an account with a second factor: code is a
// TOTP code of the account's authenticator or one of its recovery codes.
// An account that must enrol first is refused with an *EnrolmentRequired
// error holding the new secret; a code of it then completes the sign-in.
func (c *Client) LoginWithCode(ctx context.Context, username, password, code string) (*Token, error) {
	in := struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Code     string `json:"code,omitempty"`
	}{username, password, code}
	var tok Token
	status, body, err := c.send(ctx, http.MethodPost, "/auth/token", nil, "", in, &tok)
	if err == nil && status/100 != 2 {
		err = enrolmentOr(status, body)
	}
	if err != nil {
		return nil, fmt.Errorf("log in: %w", err)
	}
	if tok.Token == "" {
		return nil, errors.New("log in: the server returned no token")
	}
	c.SetToken(tok.Token)
	return &tok, nil
}

// do sends one request and decodes a 2xx JSON answer into out (if out is not
// nil). A token of "" means the Client's user token. Any other status is
// returned as an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, token string, in, out any) error {
	status, body, err := c.send(ctx, method, path, query, token, in, out)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return errorFrom(status, body)
	}
	return nil
}

// send sends one request. On a 2xx status it decodes the body into out and
// returns no body; otherwise it returns up to maxErrorBody bytes of the body
// unparsed. The response body is always drained and closed so that the
// connection can be reused.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, token string, in, out any) (int, []byte, error) {
	u := c.base + apiPrefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, ok := in.(rawJSON)
		if !ok {
			var err error
			if b, err = json.Marshal(in); err != nil {
				return 0, nil, fmt.Errorf("encode request: %w", err)
			}
		}
		body = bytes.NewReader(b) // lets net/http replay it on a stale keep-alive connection
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, fmt.Errorf("make request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token == "" {
		token = c.Token()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("send request: %w", err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return resp.StatusCode, nil, fmt.Errorf("read response: %w", err)
		}
		return resp.StatusCode, b, nil
	}
	if out != nil {
		err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out)
		if err != nil && !errors.Is(err, io.EOF) { // an empty body leaves out as it was
			return resp.StatusCode, nil, fmt.Errorf("decode response: %w", err)
		}
	}
	return resp.StatusCode, nil, nil
}

// errorFrom makes an *Error from a non-2xx answer, reading the API's
// {"error":{"code","message"}} body when there is one.
func errorFrom(status int, body []byte) *Error {
	e := &Error{Status: status}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
		return e
	}
	e.Message = http.StatusText(status)
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		e.Message += ": " + s
	}
	return e
}

// pathID escapes an id for use as one path segment.
func pathID(id string) string { return url.PathEscape(id) }

// formatWidth writes a bucket width the way people do: 5m, 1h, 30s.
func formatWidth(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d > 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d > 0 && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
