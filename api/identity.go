package api

import (
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// me tells the caller who it is.
func (s *Handler) me(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	gate.WriteJSON(w, http.StatusOK, map[string]any{"id": p.UserID, "name": p.Name, "role": p.Role, "patient_id": p.SubjectID, "token_id": p.TokenID, "scopes": p.Scopes})
	return nil
}

type userIn struct {
	Username    string      `json:"username"`
	DisplayName *string     `json:"display_name"`
	Password    *string     `json:"password"`
	Role        *vigil.Role `json:"role"`
	PatientID   *string     `json:"patient_id"`
	Disabled    *bool       `json:"disabled"`
}

// checkUserFields validates role and patient link; the role may not be
// device (devices are registered, not users).
func (s *Handler) checkUserFields(r *http.Request, role vigil.Role, patientID string) error {
	if !role.Valid() || role == vigil.RoleDevice {
		return vigil.Errorf(vigil.EINVALID, "role must be admin, clinician, patient or integration")
	}
	if role == vigil.RolePatient {
		if patientID == "" {
			return vigil.Errorf(vigil.EINVALID, `a patient user needs "patient_id"`)
		}
		if _, err := s.Store.Patient(r.Context(), patientID); err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EINVALID, "unknown patient %q", patientID)
			}
			return err
		}
	} else if patientID != "" {
		return vigil.Errorf(vigil.EINVALID, `only a patient user has "patient_id"`)
	}
	return nil
}

// maxDisplayName bounds a user's display name, in bytes.
const maxDisplayName = 100

// displayName checks an optional display name: trimmed, at most
// maxDisplayName bytes, no control characters; "" when absent.
func displayName(in *string) (string, error) {
	if in == nil {
		return "", nil
	}
	n := strings.TrimSpace(*in)
	if len(n) > maxDisplayName || strings.ContainsFunc(n, unicode.IsControl) || !utf8.ValidString(n) {
		return "", vigil.Errorf(vigil.EINVALID, `"display_name" must be at most %d bytes of text without control characters`, maxDisplayName)
	}
	return n, nil
}

func (s *Handler) createUser(w http.ResponseWriter, r *http.Request) error {
	var in userIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	in.Username = strings.TrimSpace(in.Username)
	if in.Username == "" || len(in.Username) > 64 || in.Role == nil {
		return vigil.Errorf(vigil.EINVALID, `"username" (up to 64 characters) and "role" are required`)
	}
	pid := ""
	if in.PatientID != nil {
		pid = *in.PatientID
	}
	if err := s.checkUserFields(r, *in.Role, pid); err != nil {
		return err
	}
	shown, err := displayName(in.DisplayName)
	if err != nil {
		return err
	}
	u := &vigil.User{Username: in.Username, DisplayName: shown, Role: *in.Role, SubjectID: pid}
	if *in.Role != vigil.RoleIntegration {
		if in.Password == nil {
			return vigil.Errorf(vigil.EINVALID, `"password" is required`)
		}
		if err := auth.CheckPasswordPolicy(u.Username, *in.Password); err != nil {
			return err
		}
		h, err := auth.HashPassword(*in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = h
	}
	if err := s.Store.CreateUser(r.Context(), u); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	gate.WriteJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.Store.Users(r.Context())
	if err != nil {
		return err
	}
	if us == nil {
		us = []*vigil.User{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

func (s *Handler) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.Store.User(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	teams, err := s.Store.UserTeams(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if teams == nil {
		teams = []*vigil.Team{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"user": u, "teams": teams})
	return nil
}

// updateUser changes a user's role, patient link, password or disabled
// state. Disabling a user revokes every session and token of theirs for good
// (enabling them again brings none back); a new password ends every other
// session of theirs, keeping the caller's own when they change their own
// password (vigil.UserUpdate).
func (s *Handler) updateUser(w http.ResponseWriter, r *http.Request) error {
	var in userIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	cur, err := s.Store.User(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if in.Username != "" && in.Username != cur.Username {
		return vigil.Errorf(vigil.EINVALID, "usernames cannot be changed")
	}
	role, pid := cur.Role, cur.SubjectID
	if in.Role != nil {
		role = *in.Role
	}
	if in.PatientID != nil {
		pid = *in.PatientID
	}
	if role != vigil.RolePatient && in.PatientID == nil {
		pid = ""
	}
	if err := s.checkUserFields(r, role, pid); err != nil {
		return err
	}
	if cur.ID == gate.Principal(ctx).UserID && ((in.Role != nil && role != vigil.RoleAdmin) || (in.Disabled != nil && *in.Disabled)) {
		return vigil.Errorf(vigil.EINVALID, "admins cannot demote or disable themselves")
	}
	u := vigil.UserUpdate{Role: &role, SubjectID: &pid, Disabled: in.Disabled}
	if in.DisplayName != nil {
		shown, err := displayName(in.DisplayName)
		if err != nil {
			return err
		}
		u.DisplayName = &shown
	}
	if in.Password != nil {
		if err := auth.CheckPasswordPolicy(cur.Username, *in.Password); err != nil {
			return err
		}
		h, err := auth.HashPassword(*in.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = &h
		if p := gate.Principal(ctx); p.UserID == cur.ID && p.TokenKind == vigil.TokenSession {
			u.KeepToken = p.TokenID
		}
	}
	out, err := s.Store.UpdateUser(ctx, cur.ID, u)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Handler) createTeam(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Name = strings.TrimSpace(in.Name); in.Name == "" || len(in.Name) > 100 {
		return vigil.Errorf(vigil.EINVALID, `"name" is required (up to 100 characters)`)
	}
	t := &vigil.Team{Name: in.Name}
	if err := s.Store.CreateTeam(r.Context(), t); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/teams/"+t.ID)
	gate.WriteJSON(w, http.StatusCreated, t)
	return nil
}

func (s *Handler) listTeams(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.Store.Teams(r.Context())
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []*vigil.Team{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"teams": ts})
	return nil
}

func (s *Handler) getTeam(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t, err := s.Store.Team(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	members, err := s.Store.TeamMembers(ctx, t.ID)
	if err != nil {
		return err
	}
	patients, err := s.Store.TeamPatients(ctx, t.ID)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"team": t, "members": orEmpty(members), "patients": orEmpty(patients)})
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Handler) deleteTeam(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.DeleteTeam(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// teamChange runs one membership or enrolment change and answers 204.
func (s *Handler) teamChange(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Handler) addMember(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, err := s.Store.User(ctx, r.PathValue("user"))
	if err != nil {
		return err
	}
	if u.Role != vigil.RoleClinician {
		return vigil.Errorf(vigil.EINVALID, "only clinicians are team members (user %s is %s)", u.ID, u.Role)
	}
	return s.teamChange(w, s.Store.AddTeamMember(ctx, r.PathValue("id"), u.ID))
}

func (s *Handler) removeMember(w http.ResponseWriter, r *http.Request) error {
	return s.teamChange(w, s.Store.RemoveTeamMember(r.Context(), r.PathValue("id"), r.PathValue("user")))
}

func (s *Handler) enrollPatient(w http.ResponseWriter, r *http.Request) error {
	return s.teamChange(w, s.Store.EnrollPatient(r.Context(), r.PathValue("id"), r.PathValue("patient")))
}

func (s *Handler) unenrollPatient(w http.ResponseWriter, r *http.Request) error {
	return s.teamChange(w, s.Store.UnenrollPatient(r.Context(), r.PathValue("id"), r.PathValue("patient")))
}

// createToken creates a token, shown once. Kind "personal" (default) is
// for the caller and may carry scopes that narrow it; kind "service"
// (admins only) creates a service account of role integration holding
// exactly the given scopes (default: system/Observation.c, sending readings).
func (s *Handler) createToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name      string   `json:"name"`
		Kind      string   `json:"kind"`
		Scopes    []string `json:"scopes"`
		ExpiresIn string   `json:"expires_in"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Name = strings.TrimSpace(in.Name); in.Name == "" || len(in.Name) > 100 {
		return vigil.Errorf(vigil.EINVALID, `"name" is required (up to 100 characters)`)
	}
	if _, err := auth.ParseScopes(in.Scopes); err != nil {
		return err
	}
	ttl := 90 * 24 * time.Hour
	if in.ExpiresIn != "" {
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 || d > 2*365*24*time.Hour {
			return vigil.Errorf(vigil.EINVALID, `"expires_in" must be a positive duration of at most two years, such as "720h"`)
		}
		ttl = d
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	tok := &vigil.Token{Name: in.Name, Scopes: in.Scopes, Expires: s.Time().Add(ttl)}
	switch in.Kind {
	case "", string(vigil.TokenPersonal):
		tok.Kind, tok.UserID = vigil.TokenPersonal, p.UserID
	case string(vigil.TokenService):
		if p.Role != vigil.RoleAdmin {
			return vigil.Errorf(vigil.EFORBIDDEN, "only admins create service accounts")
		}
		if len(tok.Scopes) == 0 {
			tok.Scopes = []string{"system/Observation.c"}
		}
		u := &vigil.User{Username: "svc-" + in.Name, Role: vigil.RoleIntegration}
		if err := s.Store.CreateUser(ctx, u); err != nil {
			return err
		}
		tok.Kind, tok.UserID = vigil.TokenService, u.ID
	default:
		return vigil.Errorf(vigil.EINVALID, `"kind" must be personal or service`)
	}
	secret, hash := s.NewSecret("user")
	tok.Hash = hash
	if err := s.Store.CreateToken(ctx, tok); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, map[string]any{"id": tok.ID, "user_id": tok.UserID, "kind": tok.Kind, "name": tok.Name, "scopes": tok.Scopes, "token": secret, "expires_at": tok.Expires})
	return nil
}

// listTokens lists the caller's tokens; admins may ask for ?user= or all.
func (s *Handler) listTokens(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	user := p.UserID
	if p.Role == vigil.RoleAdmin {
		user = r.URL.Query().Get("user")
	}
	ts, err := s.Store.Tokens(r.Context(), user)
	if err != nil {
		return err
	}
	// Sessions are listed for their own user only.
	ts = slices.DeleteFunc(ts, func(t *vigil.Token) bool { return t.Kind == vigil.TokenSession && t.UserID != p.UserID })
	if ts == nil {
		ts = []*vigil.Token{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"tokens": ts})
	return nil
}

// revokeToken revokes one of the caller's tokens (admins: anyone's) at once.
func (s *Handler) revokeToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := gate.Principal(ctx)
	t, err := s.Store.Token(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if t.UserID != p.UserID && p.Role != vigil.RoleAdmin {
		return vigil.Errorf(vigil.ENOTFOUND, "token %s not found", t.ID)
	}
	if err := s.Store.RevokeToken(ctx, t.ID, s.Time()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
