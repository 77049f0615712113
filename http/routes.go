package http

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// rule authorizes a request before its handler runs. It returns nil to
// allow, or an error to refuse. Resource-level checks (which patient) happen
// in handlers through canReadPatient, which the rule names.
type rule struct {
	name  string                         // for docs and the route test
	authn bool                           // a valid bearer token is required
	check func(p *vigil.Principal) error // role check; nil: any authenticated principal
}

var public = rule{name: "public"}

func roles(rs ...vigil.Role) rule {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	return rule{name: "roles(" + strings.Join(names, ",") + ")", authn: true, check: func(p *vigil.Principal) error {
		if slices.Contains(rs, p.Role) {
			return nil
		}
		return vigil.Errorf(vigil.EFORBIDDEN, "role %s may not do this", p.Role)
	}}
}

// patientData allows people who may read some patients' records; the
// handler then checks the particular patient with canReadPatient.
var patientData = rule{name: "patient-data", authn: true, check: func(p *vigil.Principal) error {
	switch p.Role {
	case vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient:
		return nil
	}
	return vigil.Errorf(vigil.EFORBIDDEN, "role %s may not read patient data", p.Role)
}}

type route struct {
	pattern string // net/http ServeMux pattern, with method
	rule    rule
	handle  func(w http.ResponseWriter, r *http.Request) error
}

// routes is the one table of every endpoint and the rule that guards it.
func (s *Server) routes() []route {
	return []route{
		{"GET /healthz", public, s.healthz},
		{"GET /readyz", public, s.readyz},
		{"GET /metrics", public, s.metrics},

		{"POST /api/v1/auth/token", public, s.signIn},
		{"POST /api/v1/tokens", roles(vigil.RoleAdmin), s.createServiceToken},

		{"POST /api/v1/patients", roles(vigil.RoleAdmin), s.createPatient},
		{"GET /api/v1/patients", patientData, s.listPatients},
		{"GET /api/v1/patients/{id}", patientData, s.getPatient},
		{"GET /api/v1/patients/{id}/readings", patientData, s.listReadings},
		{"GET /api/v1/patients/{id}/latest", patientData, s.latestReadings},

		{"POST /api/v1/devices", roles(vigil.RoleAdmin), s.createDevice},
		{"GET /api/v1/devices", roles(vigil.RoleAdmin), s.listDevices},
		{"GET /api/v1/devices/{id}", roles(vigil.RoleAdmin), s.getDevice},
		{"PATCH /api/v1/devices/{id}", roles(vigil.RoleAdmin), s.updateDevice},
		{"POST /api/v1/devices/{id}/revoke", roles(vigil.RoleAdmin), s.revokeDevice},
		{"POST /api/v1/devices/{id}/token", roles(vigil.RoleAdmin), s.rotateDeviceToken},

		{"POST /api/v1/readings", roles(vigil.RoleDevice, vigil.RoleIntegration), s.postReadings},
		{"GET /api/v1/quarantine", roles(vigil.RoleAdmin), s.listQuarantine},
	}
}

type principalKey struct{}

// principal returns the authenticated principal of the request; nil on
// public routes.
func principal(ctx context.Context) *vigil.Principal {
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

// wrap authenticates and authorizes per the route's rule, runs the handler,
// translates its error, and logs and measures the request.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var who string
		err := func() error {
			if rt.rule.authn {
				p, err := s.authenticate(r)
				if err != nil {
					return err
				}
				who = p.Name
				if rt.rule.check != nil {
					if err := rt.rule.check(p); err != nil {
						return err
					}
				}
				r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			}
			return rt.handle(sw, r)
		}()
		if err != nil {
			s.writeError(sw, r, err)
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		s.httpDuration.WithLabelValues(rt.pattern, strconv.Itoa(status)).Observe(d.Seconds())
		level := s.Logger.Debug
		if status >= 500 {
			level = s.Logger.Warn
		}
		level("http", "route", rt.pattern, "status", status, "duration_ms", float64(d.Microseconds())/1000, "principal", who, "remote", r.RemoteAddr)
	})
}

// authenticate resolves the request's bearer token.
func (s *Server) authenticate(r *http.Request) (*vigil.Principal, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <token>")
	}
	return s.Auth.Authenticate(r.Context(), strings.TrimSpace(secret))
}

// canReadPatient returns nil if p may read patient id's data, and ENOTFOUND
// otherwise, so that a caller cannot tell a patient it may not see from one
// that does not exist.
func (s *Server) canReadPatient(p *vigil.Principal, id string) error {
	switch {
	case p.Role == vigil.RoleAdmin && s.AdminReadsClinical:
		return nil
	case p.Role == vigil.RolePatient && p.SubjectID == id:
		return nil
	}
	// Clinicians see the patients of their care teams; teams arrive with
	// the access-control work and until then clinicians see none.
	return vigil.Errorf(vigil.ENOTFOUND, "patient %s not found", id)
}
