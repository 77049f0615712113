package oidc

import (
	"context"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// AccessToken is what a verified access token of the provider says, for
// SMART on FHIR apps.
type AccessToken struct {
	Issuer, Subject string
	// Scopes are the token's SMART scopes (patient/ and user/ only; others
	// grant nothing here).
	Scopes []string
	// Patient is the launch context's patient (the "patient" claim), "" if
	// none.
	Patient string
	Expiry  time.Time
}

// IsJWT reports whether a bearer credential has the shape of a JWT (three
// base64url parts), as the provider's access tokens do; Vigil's own tokens
// do not.
func IsJWT(s string) bool {
	return strings.Count(s, ".") == 2
}

// VerifyAccessToken verifies an access token of the provider issued as a
// JWT: its signature by a key of the provider's JWKS, its issuer, its
// audience (it must name Vigil's client id) and its expiry. Anything else
// gives EUNAUTHORIZED.
func (p *Provider) VerifyAccessToken(ctx context.Context, token string) (*AccessToken, error) {
	refuse := func(err error) (*AccessToken, error) {
		return nil, &vigil.Error{Code: vigil.EUNAUTHORIZED, Message: "invalid access token: " + err.Error(), Err: err}
	}
	var c zoidc.AccessTokenClaims
	payload, err := zoidc.ParseToken(token, &c)
	if err != nil {
		return refuse(err)
	}
	v := p.rp.IDTokenVerifier()
	if err := zoidc.CheckIssuerWithISSVerifier(&c, p.cfg.Issuer, zoidc.DefaultISSVerifier(p.cfg.Issuer)); err != nil {
		return refuse(err)
	}
	if err := zoidc.CheckAudience(&c, p.cfg.ClientID); err != nil {
		return refuse(err)
	}
	if err := zoidc.CheckSignature(ctx, token, payload, &c, v.SupportedSignAlgs, v.KeySet); err != nil {
		return refuse(err)
	}
	now := time.Now
	if p.cfg.Now != nil {
		now = p.cfg.Now
	}
	if !now().Before(c.Expiration.AsTime()) {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "invalid access token: expired")
	}
	if c.Subject == "" {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "invalid access token: no subject")
	}
	at := &AccessToken{Issuer: c.Issuer, Subject: c.Subject, Expiry: c.Expiration.AsTime()}
	for _, s := range c.Scopes {
		if strings.HasPrefix(s, "patient/") || strings.HasPrefix(s, "user/") {
			at.Scopes = append(at.Scopes, s)
		}
	}
	at.Patient, _ = c.Claims["patient"].(string)
	return at, nil
}

// SMARTConfiguration returns the document served at
// /.well-known/smart-configuration (SMART App Launch 2.x): the provider's
// endpoints and what Vigil supports.
func (p *Provider) SMARTConfiguration() map[string]any {
	d := p.discovery
	return map[string]any{
		"issuer":                           d.Issuer,
		"jwks_uri":                         d.JwksURI,
		"authorization_endpoint":           d.AuthorizationEndpoint,
		"token_endpoint":                   d.TokenEndpoint,
		"grant_types_supported":            []string{"authorization_code"},
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"scopes_supported": []string{"openid", "fhirUser", "launch/patient",
			"patient/Observation.rs", "patient/Patient.rs", "patient/Device.rs", "patient/Flag.rs",
			"user/Observation.rs", "user/Observation.c", "user/Patient.rs", "user/Device.rs", "user/Flag.rs"},
		"capabilities": []string{"launch-standalone", "client-public", "client-confidential-symmetric",
			"context-standalone-patient", "permission-patient", "permission-user", "permission-v2", "sso-openid-connect"},
	}
}
