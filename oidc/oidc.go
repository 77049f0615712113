// Package oidc signs staff in at an OpenID Connect provider (the hospital's
// identity provider): the authorization code flow with PKCE, state and
// nonce, the ID token verified against the provider's keys, and the mapping
// of its claims to a Vigil user, created at the first sign-in.
//
// The relying party is github.com/zitadel/oidc (decision 14). The HTTP
// handlers and cookies are package web's, sessions package gate's; this
// package holds what is specific to OpenID Connect.
package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// Defaults of Config.
const (
	DefaultRoleClaim     = "vigil_role"
	DefaultTeamsClaim    = "vigil_teams"
	DefaultUsernameClaim = "preferred_username"
	DefaultSessionTTL    = time.Hour
)

// Config is the configuration of a provider. Issuer, ClientID,
// ClientSecret and RedirectURL are required.
type Config struct {
	Issuer       string // the provider's issuer URL, as in its ID tokens
	ClientID     string
	ClientSecret string
	// RedirectURL is Vigil's callback as the browser reaches it, e.g.
	// https://vigil.example.org/auth/oidc/callback; registered at the
	// provider.
	RedirectURL string
	// RoleClaim names the ID token claim holding the Vigil role (admin or
	// clinician), TeamsClaim the claim holding the names of the user's care
	// teams (a list of strings), UsernameClaim the claim naming the user;
	// defaults as above.
	RoleClaim, TeamsClaim, UsernameClaim string
	// SessionTTL is the lifetime of a Vigil session started by the provider;
	// DefaultSessionTTL if 0. A user disabled at the provider keeps a session
	// started before at most this long (Vigil does not ask the provider
	// again during a session).
	SessionTTL time.Duration
	// HTTPClient reaches the provider (discovery, keys, token endpoint);
	// nil: a client with a 10-second timeout.
	HTTPClient *http.Client
	// Now is the clock access tokens are checked against; nil: time.Now.
	Now func() time.Time
}

// Provider is a configured OpenID Connect provider. It is safe for
// concurrent use.
type Provider struct {
	cfg       Config
	rp        rp.RelyingParty
	discovery *zoidc.DiscoveryConfiguration
}

type nonceKey struct{}

// New discovers the provider at cfg.Issuer (its
// .well-known/openid-configuration) and returns it. It fails if the
// provider cannot be reached or its configuration is unusable.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.RedirectURL == "" {
		return nil, errors.New("openid connect: issuer, client id, client secret and redirect URL are required")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = DefaultRoleClaim
	}
	if cfg.TeamsClaim == "" {
		cfg.TeamsClaim = DefaultTeamsClaim
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = DefaultUsernameClaim
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	opts := []rp.Option{
		rp.WithHTTPClient(hc),
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string {
			n, _ := ctx.Value(nonceKey{}).(string)
			return n
		})),
		rp.WithSigningAlgsFromDiscovery(),
	}
	r, err := rp.NewRelyingPartyOIDC(ctx, cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.RedirectURL,
		[]string{zoidc.ScopeOpenID, zoidc.ScopeProfile, zoidc.ScopeEmail}, opts...)
	if err != nil {
		return nil, fmt.Errorf("openid connect provider %s: %w", cfg.Issuer, err)
	}
	d, err := client.Discover(ctx, cfg.Issuer, hc)
	if err != nil {
		return nil, fmt.Errorf("openid connect provider %s: %w", cfg.Issuer, err)
	}
	return &Provider{cfg: cfg, rp: r, discovery: d}, nil
}

// Issuer returns the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// SessionTTL returns the lifetime of sessions the provider starts.
func (p *Provider) SessionTTL() time.Duration { return p.cfg.SessionTTL }

// Flow is one sign-in in progress: the state and nonce sent to the
// provider and the PKCE code verifier, all random. The caller keeps it
// bound to the browser that started it (a cookie) until the callback.
type Flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

// NewFlow returns a flow with fresh random values (256 bits each).
func NewFlow() Flow {
	return Flow{State: random(), Nonce: random(), Verifier: random()}
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthURL returns the provider's authorization URL for f: the code flow
// with f's state and nonce and the S256 challenge of f's verifier.
func (p *Provider) AuthURL(f Flow) string {
	return rp.AuthURL(f.State, p.rp,
		rp.WithCodeChallenge(zoidc.NewSHACodeChallenge(f.Verifier)),
		rp.AuthURLOpt(rp.WithURLParam("nonce", f.Nonce)))
}

// Identity is who the provider says signed in, from a verified ID token.
type Identity struct {
	Issuer, Subject string
	Username        string     // the username claim, or the subject
	Role            vigil.Role // admin or clinician
	Teams           []string   // names of care teams
	IDToken         string     // the raw ID token, as a hint for logout
}

// Exchange redeems code (from the callback of flow f) at the token
// endpoint with f's verifier and verifies the ID token: signature by the
// provider's keys, issuer, audience (the client id), expiry and f's nonce.
// It maps the claims to an Identity.
//
// A refused exchange or an invalid token gives EUNAUTHORIZED; a role claim
// missing or other than admin or clinician gives EFORBIDDEN (OpenID
// Connect signs staff in; patients and integrations have accounts of their
// own).
func (p *Provider) Exchange(ctx context.Context, code string, f Flow) (*Identity, error) {
	ctx = context.WithValue(ctx, nonceKey{}, f.Nonce)
	toks, err := rp.CodeExchange[*zoidc.IDTokenClaims](ctx, code, p.rp, rp.WithCodeVerifier(f.Verifier))
	if err != nil {
		return nil, &vigil.Error{Code: vigil.EUNAUTHORIZED, Message: fmt.Sprintf("the identity provider's answer was refused: %.200s", err), Err: err}
	}
	c := toks.IDTokenClaims
	id := &Identity{Issuer: c.Issuer, Subject: c.Subject, IDToken: toks.IDToken}
	if id.Subject == "" {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "the ID token has no subject")
	}
	id.Username, _ = claim(c, p.cfg.UsernameClaim).(string)
	if id.Username == "" {
		id.Username = id.Subject
	}
	role, _ := claim(c, p.cfg.RoleClaim).(string)
	switch r := vigil.Role(role); r {
	case vigil.RoleAdmin, vigil.RoleClinician:
		id.Role = r
	default:
		return nil, vigil.Errorf(vigil.EFORBIDDEN, "the identity provider gives no Vigil role (claim %q must be admin or clinician)", p.cfg.RoleClaim)
	}
	switch ts := claim(c, p.cfg.TeamsClaim).(type) {
	case []any:
		for _, t := range ts {
			if s, ok := t.(string); ok && s != "" {
				id.Teams = append(id.Teams, s)
			}
		}
	case string:
		for _, s := range strings.Split(ts, ",") {
			if s = strings.TrimSpace(s); s != "" {
				id.Teams = append(id.Teams, s)
			}
		}
	}
	return id, nil
}

// claim returns the ID token claim name, standard or not.
func claim(c *zoidc.IDTokenClaims, name string) any {
	switch name {
	case "preferred_username":
		if c.PreferredUsername != "" {
			return c.PreferredUsername
		}
	case "email":
		if c.Email != "" {
			return c.Email
		}
	}
	return c.Claims[name]
}

// EndSessionURL returns the provider's end_session_endpoint with the ID
// token as hint and where to come back after, or "" if the provider does
// not advertise one (RP-initiated logout).
func (p *Provider) EndSessionURL(idToken, postLogout string) string {
	ep := p.rp.GetEndSessionEndpoint()
	if ep == "" {
		return ""
	}
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	if postLogout != "" {
		q.Set("post_logout_redirect_uri", postLogout)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
