package gate

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

type principalKey struct{}

// Principal returns the authenticated principal of the request; nil on
// public routes.
func Principal(ctx context.Context) *vigil.Principal {
	p, _ := ctx.Value(principalKey{}).(*vigil.Principal)
	return p
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Wrap authenticates, authorizes and audits per the route's access rule,
// runs the handler, translates its error, and logs and measures the request.
func (g *Gate) Wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(auth.WithClientAddr(r.Context(), remoteHost(r)))
		var who string
		var out http.ResponseWriter = sw
		var gate *auditGate
		err := func() error {
			if !rt.Access.Authn {
				// Public routes (sign-in) get the same-origin check;
				// authorize applies it, audited, to the others.
				if err := checkSameOrigin(r); err != nil {
					return err
				}
			}
			if rt.Access.Authn {
				p, wait, err := g.authorize(r, rt)
				if p != nil {
					who = p.Name
				}
				if err != nil {
					return err
				}
				if wait != nil {
					gate = &auditGate{ResponseWriter: sw, wait: wait, fail: func(err error) {
						g.WriteError(sw, r, g.auditFailed(r.Context(), err))
					}}
					out = gate
				}
				r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			}
			return rt.Handle(out, r)
		}()
		if err != nil {
			if rt.Access.Page {
				g.WritePageError(out, r, err)
			} else {
				g.WriteError(out, r, err)
			}
		}
		if gate != nil {
			gate.release() // the handler is done: send what it wrote, if its entry is durable
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		method, route := metricLabels(rt.Pattern, r.Method)
		g.httpDuration.WithLabelValues(strconv.Itoa(status), method, route).Observe(d.Seconds())
		level := g.Logger.Debug
		if status >= 500 {
			level = g.Logger.Warn
		}
		level("http", "route", rt.Pattern, "status", status, "duration_ms", float64(d.Microseconds())/1000, "principal", who, "remote", r.RemoteAddr)
	})
}

// metricLabels are the method and route labels of a request served by the
// route of pattern: the pattern's method and path. For a pattern without a
// method (the catch-all), the request's method if it is a standard one,
// else "OTHER": a client cannot grow the metric's label set.
func metricLabels(pattern, reqMethod string) (method, route string) {
	if m, path, ok := strings.Cut(pattern, " "); ok {
		return m, path
	}
	switch reqMethod {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return reqMethod, pattern
	}
	return "OTHER", pattern
}

// checkSameOrigin refuses a state-changing request that a browser says
// comes from another origin (Sec-Fetch-Site, or Origin against Host), with
// the standard library's http.CrossOriginProtection. It is a first line
// beside the X-CSRF-Token of cookie sessions (checkCSRF), and covers the
// routes that take no session too, such as sign-in. Requests without those
// headers (devices, scripts, integrations) pass: they carry no ambient
// browser credentials.
func checkSameOrigin(r *http.Request) error {
	var cop http.CrossOriginProtection // zero value: no trusted origins, no bypass
	if err := cop.Check(r); err != nil {
		return vigil.Errorf(vigil.EFORBIDDEN, "cross-origin request refused: %v", err)
	}
	return nil
}

// SecurityHeaders sets the headers every response carries: HSTS, a strict
// content security policy (the API serves no active content), no sniffing,
// and no caching (responses hold patient data).
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// remoteHost is the client address of r without its port.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
