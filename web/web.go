package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// The dashboard: server-rendered pages (html/template) and the static
// files they use (CSS, a small hand-written script for live updates over
// the event stream), all embedded in the binary. Page routes are in the
// route table like every other route, with their rule; see routes.go.
//
//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

// pageCSP is the content security policy of dashboard pages: scripts,
// styles and fetches from this origin only; no inline script or style, no
// frames, no plugins, forms post nowhere but here.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pages holds the parsed templates: one per page, each combined with the
// shared layout.
type pages struct {
	byName map[string]*template.Template
}

// pageNames are the page templates in ui/templates besides layout.html.
var pageNames = []string{"signin", "worklist", "patient", "alerts", "admin", "quarantine", "error", "report"}

func parsePages() (*pages, error) {
	funcs := template.FuncMap{
		"iso":      isoTime,
		"num":      formatNum,
		"pct":      func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		"lower":    strings.ToLower,
		"acvpu":    acvpuLetter,
		"priClass": priorityClass,
		"add":      func(a, b float64) float64 { return a + b },
		"deref":    func(b *bool) bool { return b != nil && *b },
	}
	ps := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		ps.byName[name] = t
	}
	return ps, nil
}

// pageData is what every page template gets: the page's own data in Body.
type pageData struct {
	Title string
	Nav   string // the active navigation entry
	User  *vigil.Principal
	CSRF  string // X-CSRF-Token of the session, for the page's script
	Body  any
}

// render writes page name with data, buffered, so that a template error
// answers 500 rather than half a page. The handler's error goes through
// the gate (gate.WritePageError), which renders an error page for page
// routes with RenderError.
func (s *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) error {
	t := s.pages.byName[name]
	if t == nil {
		return fmt.Errorf("render: no page %q", name)
	}
	if d.User == nil {
		d.User = gate.Principal(r.Context())
	}
	if c, err := r.Cookie(gate.SessionCookie); err == nil && c.Value != "" && d.User != nil {
		d.CSRF = gate.CSRFToken(c.Value)
	}
	var buf bytes.Buffer
	tmpl := "layout"
	if r.URL.Query().Get("fragment") != "" && t.Lookup("fragment") != nil {
		tmpl = "fragment" // the part a live view replaces, without the layout
	}
	if err := t.ExecuteTemplate(&buf, tmpl, d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client may be gone
	return nil
}

// static serves the embedded CSS and script files.
func (s *Handler) static(w http.ResponseWriter, r *http.Request) error {
	name := path.Clean(r.PathValue("file"))
	b, err := fs.ReadFile(uiFiles, "ui/static/"+name)
	if err != nil || strings.Contains(name, "/") {
		return vigil.Errorf(vigil.ENOTFOUND, "no such file: %s", name)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
	return nil
}

// signInPage serves the sign-in form; its script signs in through
// POST /api/v1/auth/session and goes on to the page asked for.
func (s *Handler) signInPage(w http.ResponseWriter, r *http.Request) error {
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		next = "/"
	}
	return s.render(w, r, http.StatusOK, "signin", pageData{Title: "Sign in", Body: signInPageBody{Next: next, OIDC: s.OIDC != nil}})
}

// home sends a signed-in person to their start page.
func (s *Handler) home(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	to := "/worklist"
	switch p.Role {
	case vigil.RoleAdmin:
		to = "/admin"
	case vigil.RolePatient:
		to = "/me"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// myRecord sends a signed-in patient to their own record.
func (s *Handler) myRecord(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	if p.SubjectID == "" {
		return vigil.Errorf(vigil.ENOTFOUND, "this account is not linked to a patient record")
	}
	http.Redirect(w, r, "/patients/"+url.PathEscape(p.SubjectID), http.StatusSeeOther)
	return nil
}

func isoTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339)
	case *time.Time:
		if v == nil || v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339)
	}
	return ""
}

// formatNum shows a value with as many decimals as it needs, at most one.
func formatNum(f float64) string {
	if math.Abs(f-math.Round(f)) < 0.05 {
		return strconv.FormatFloat(math.Round(f), 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// acvpuLetter shows a consciousness level coded 0–4 as its ACVPU letter.
func acvpuLetter(f float64) string {
	i := int(math.Round(f))
	if i < 0 || i > 4 {
		return "?"
	}
	return string("ACVPU"[i])
}

// priorityClass is the CSS class of an alert priority (IEC 60601-1-8
// colours: high red and flashing, medium yellow, low cyan).
func priorityClass(p string) string {
	switch p {
	case vigil.PriorityHigh, vigil.PriorityMedium, vigil.PriorityLow:
		return "pri-" + p
	}
	return "pri-info"
}
