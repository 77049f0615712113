package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// TestCrossOriginRefused: a state-changing request a browser marks as
// cross-origin is refused even with a valid session cookie and CSRF token,
// and so is a cross-origin sign-in; same-origin browser requests, reads,
// and requests without browser headers pass.
func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t)
	e.user("admin", vigil.RoleAdmin, "")
	// About origins, not second factors: admin signs in with a password
	// alone here (the second factor's own tests are in totp_test.go).
	e.api.Auth.(*auth.Authenticator).AdminTOTPOptional = true
	signIn := func(hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/auth/session", strings.NewReader(signInBody("admin", "correct horse battery staple")))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			CSRF string `json:"csrf_token"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		return resp, out.CSRF
	}
	if resp, _ := signIn(map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 403 {
		t.Errorf("cross-site sign-in: %d, want 403", resp.StatusCode)
	}
	resp, csrf := signIn(nil)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == gate.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || csrf == "" {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"cross-site fetch", "POST", "/api/v1/teams", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site other origin", "POST", "/api/v1/teams", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign Origin", "POST", "/api/v1/teams", map[string]string{"Origin": "https://attacker.example"}, 403},
		{"same-origin fetch", "POST", "/api/v1/teams", map[string]string{"Sec-Fetch-Site": "same-origin"}, 201},
		{"no browser headers", "POST", "/api/v1/teams", nil, 201},
		{"cross-site read", "GET", "/api/v1/me", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = `{"name":"Ward ` + tc.name + `"}`
			}
			req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, strings.NewReader(body))
			req.AddCookie(cookie)
			req.Header.Set(gate.CSRFHeader, csrf)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
		})
	}
}
