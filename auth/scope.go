package auth

import (
	"slices"
	"strings"

	"github.com/vigil-health/vigil"
)

// Scopes are SMART on FHIR style: "<context>/<resource>.<permissions>".
//
//	context      patient | user | system
//	resource     a FHIR resource type (Patient, Observation, Device, Flag…) or "*"
//	permissions  SMART v2 letters from "cruds" in that order (create, read,
//	             update, delete, search), or SMART v1 "read" (= rs),
//	             "write" (= cud) or "*" (= cruds)
//
// Examples: "system/Observation.c" lets an integration send readings;
// "user/*.rs" lets a personal token read and search whatever its user may.
// A scope never widens what the role allows; it only narrows a token.
type Scope struct {
	Context  string // "patient", "user" or "system"
	Resource string // resource type or "*"
	Perms    string // normalised to v2 letters, in "cruds" order
}

// ParseScope parses one scope string. Errors are EINVALID.
func ParseScope(s string) (Scope, error) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return Scope{}, vigil.Errorf(vigil.EINVALID, "scope %q: want patient/, user/ or system/ followed by Resource.permissions", s)
	}
	res, perms, ok := strings.Cut(rest, ".")
	if !ok || res == "" || !validResource(res) {
		return Scope{}, vigil.Errorf(vigil.EINVALID, "scope %q: want a resource type or * before the dot", s)
	}
	switch perms {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	default:
		if !ordered(perms, "cruds") {
			return Scope{}, vigil.Errorf(vigil.EINVALID, "scope %q: permissions must be letters of cruds in that order, or read, write or *", s)
		}
	}
	return Scope{Context: ctx, Resource: res, Perms: perms}, nil
}

func validResource(s string) bool {
	if s == "*" {
		return true
	}
	for i, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ordered reports whether s is a non-empty subsequence of alphabet without repeats.
func ordered(s, alphabet string) bool {
	if s == "" {
		return false
	}
	i := 0
	for _, c := range s {
		j := strings.IndexRune(alphabet[i:], c)
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return true
}

// ParseScopes parses a list of scopes; the first bad one is the error.
func ParseScopes(ss []string) ([]Scope, error) {
	out := make([]Scope, 0, len(ss))
	for _, s := range ss {
		sc, err := ParseScope(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// ScopesAllow reports whether the scopes together grant every permission
// letter of perms on resource. Unparseable scopes grant nothing.
func ScopesAllow(scopes []string, resource, perms string) bool {
	need := perms
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil || (sc.Resource != "*" && sc.Resource != resource) {
			continue
		}
		var rest strings.Builder
		for _, c := range need {
			if !strings.ContainsRune(sc.Perms, c) {
				rest.WriteRune(c)
			}
		}
		need = rest.String()
		if need == "" {
			return true
		}
	}
	return need == ""
}

// ScopesAllowIn is ScopesAllow counting only the scopes of the given
// contexts ("patient", "user", "system"). A caller uses it to tell whether
// only patient/ scopes grant a permission, which then reaches the token's
// own patient and no other.
func ScopesAllowIn(scopes []string, contexts []string, resource, perms string) bool {
	var in []string
	for _, s := range scopes {
		if ctx, _, ok := strings.Cut(s, "/"); ok && slices.Contains(contexts, ctx) {
			in = append(in, s)
		}
	}
	return ScopesAllow(in, resource, perms)
}
