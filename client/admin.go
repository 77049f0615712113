package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// User is an account as the API shows it (never its password).
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Role      string    `json:"role"` // admin, clinician, patient or integration
	PatientID string    `json:"patient_id,omitempty"`
	Created   time.Time `json:"created"`
	Disabled  bool      `json:"disabled"`
}

// UserIn is an account to create. PatientID is required for role patient.
type UserIn struct {
	Username  string `json:"username"`
	Password  string `json:"password,omitempty"`
	Role      string `json:"role"`
	PatientID string `json:"patient_id,omitempty"`
}

// CreateUser creates an account (admins only). A user name already in use
// is an *Error with Status 409; a password the server's policy refuses is
// one with Status 400.
func (c *Client) CreateUser(ctx context.Context, u UserIn) (*User, error) {
	var out User
	if err := c.do(ctx, http.MethodPost, "/users", nil, "", u, &out); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	if out.ID == "" {
		return nil, errors.New("create user: the server returned no id")
	}
	return &out, nil
}

// Users returns every account (admins only).
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	if err := c.do(ctx, http.MethodGet, "/users", nil, "", nil, &out); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out.Users, nil
}

// Team is a care team.
type Team struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// CreateTeam creates a care team (admins only). A name already in use is an
// *Error with Status 409.
func (c *Client) CreateTeam(ctx context.Context, name string) (*Team, error) {
	var out Team
	in := struct {
		Name string `json:"name"`
	}{name}
	if err := c.do(ctx, http.MethodPost, "/teams", nil, "", in, &out); err != nil {
		return nil, fmt.Errorf("create team: %w", err)
	}
	if out.ID == "" {
		return nil, errors.New("create team: the server returned no id")
	}
	return &out, nil
}

// Teams returns every care team (admins only).
func (c *Client) Teams(ctx context.Context) ([]Team, error) {
	var out struct {
		Teams []Team `json:"teams"`
	}
	if err := c.do(ctx, http.MethodGet, "/teams", nil, "", nil, &out); err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	return out.Teams, nil
}

// AddTeamMember makes a clinician a member of a team (admins only). Adding
// a member twice is not an error.
func (c *Client) AddTeamMember(ctx context.Context, teamID, userID string) error {
	if err := c.do(ctx, http.MethodPut, "/teams/"+pathID(teamID)+"/members/"+pathID(userID), nil, "", nil, nil); err != nil {
		return fmt.Errorf("add team member: %w", err)
	}
	return nil
}

// EnrollPatient enrols a patient in a team (admins only). Enrolling twice
// is not an error.
func (c *Client) EnrollPatient(ctx context.Context, teamID, patientID string) error {
	if err := c.do(ctx, http.MethodPut, "/teams/"+pathID(teamID)+"/patients/"+pathID(patientID), nil, "", nil, nil); err != nil {
		return fmt.Errorf("enrol patient: %w", err)
	}
	return nil
}

// Device is a registered device as the registry shows it.
type Device struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Model     string     `json:"model"`
	Serial    string     `json:"serial"`
	PatientID string     `json:"patient_id"`
	Created   time.Time  `json:"created"`
	Revoked   *time.Time `json:"revoked,omitempty"`
}

// Devices returns the devices assigned to a patient, or every device if
// patientID is "" (admins only).
func (c *Client) Devices(ctx context.Context, patientID string) ([]Device, error) {
	v := url.Values{}
	if patientID != "" {
		v.Set("patient_id", patientID)
	}
	var out struct {
		Devices []Device `json:"devices"`
	}
	if err := c.do(ctx, http.MethodGet, "/devices", v, "", nil, &out); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out.Devices, nil
}

// RotateDeviceToken gives a device a new token and returns it; the old one
// stops working at once (admins only).
func (c *Client) RotateDeviceToken(ctx context.Context, deviceID string) (*DeviceCreated, error) {
	var out DeviceCreated
	if err := c.do(ctx, http.MethodPost, "/devices/"+pathID(deviceID)+"/token", nil, "", nil, &out); err != nil {
		return nil, fmt.Errorf("rotate device token: %w", err)
	}
	if out.ID == "" || out.Token == "" {
		return nil, errors.New("rotate device token: the server returned no id or token")
	}
	return &out, nil
}

// Alert is an alert as GET /api/v1/alerts shows it (the fields most
// callers need; see docs/api.md for all of them).
type Alert struct {
	ID        string    `json:"id"`
	PatientID string    `json:"patient_id"`
	Key       string    `json:"key"`
	Kind      string    `json:"kind"`
	Priority  string    `json:"priority"` // high, medium, low or info
	State     string    `json:"state"`    // open, acknowledged or resolved
	Message   string    `json:"message"`
	Score     *float64  `json:"score,omitempty"`
	Opened    time.Time `json:"opened"`
	Updated   time.Time `json:"updated"`
}

// AlertsQuery filters Alerts. Zero fields do not filter (the server's
// default states are open and acknowledged).
type AlertsQuery struct {
	Status   string // "open", "acknowledged", "resolved", comma-separated
	Priority string // "high", "medium", "low" or "info"
	Patient  string
	Limit    int
}

// Alerts returns the alerts the caller may see, most urgent first.
func (c *Client) Alerts(ctx context.Context, q AlertsQuery) ([]Alert, error) {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "priority": q.Priority, "patient": q.Patient} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := c.do(ctx, http.MethodGet, "/alerts", v, "", nil, &out); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out.Alerts, nil
}
