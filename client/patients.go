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

// PatientIn is a patient to register.
type PatientIn struct {
	Name      string `json:"name"`
	BirthDate string `json:"birth_date"` // YYYY-MM-DD
	MRN       string `json:"mrn"`        // medical record number, unique per site
}

// Patient is a registered patient's identity.
type Patient struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	BirthDate string    `json:"birth_date"`
	MRN       string    `json:"mrn"`
	Created   time.Time `json:"created"`
}

// PatientsQuery selects a page of patients. Zero values ask for the first
// page of the server's default size.
type PatientsQuery struct {
	MRN    string // only the patient with this MRN
	Limit  int    // at most this many; 0 for the server's default
	Cursor string // PatientPage.Next of the previous page
}

// PatientPage is one page of patients. Next is "" on the last page.
type PatientPage struct {
	Patients []Patient `json:"patients"`
	Next     string    `json:"next"`
}

// CreatePatient registers a patient and returns its id. An MRN already in
// use is an *Error with Status 409.
func (c *Client) CreatePatient(ctx context.Context, p PatientIn) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/patients", nil, "", p, &out); err != nil {
		return "", fmt.Errorf("create patient: %w", err)
	}
	if out.ID == "" {
		return "", errors.New("create patient: the server returned no id")
	}
	return out.ID, nil
}

// Patient returns one patient. An unknown id is an *Error with Status 404.
func (c *Client) Patient(ctx context.Context, id string) (*Patient, error) {
	var p Patient
	if err := c.do(ctx, http.MethodGet, "/patients/"+pathID(id), nil, "", nil, &p); err != nil {
		return nil, fmt.Errorf("get patient: %w", err)
	}
	return &p, nil
}

// Patients returns one page of the patients the caller may see, ordered by
// id.
func (c *Client) Patients(ctx context.Context, q PatientsQuery) (*PatientPage, error) {
	v := url.Values{}
	if q.MRN != "" {
		v.Set("mrn", q.MRN)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var page PatientPage
	if err := c.do(ctx, http.MethodGet, "/patients", v, "", nil, &page); err != nil {
		return nil, fmt.Errorf("list patients: %w", err)
	}
	return &page, nil
}

// DeviceIn is a device to register.
type DeviceIn struct {
	Kind      string `json:"kind"` // e.g. "pulse-oximeter", "bp-cuff", "cgm", "scale"
	Model     string `json:"model"`
	Serial    string `json:"serial"`
	PatientID string `json:"patient_id"` // the patient it measures; "" for none yet
}

// DeviceCreated is a newly registered device. Token is the device's secret,
// shown this once: the server keeps only its hash.
type DeviceCreated struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// CreateDevice registers a device and returns its id and token.
func (c *Client) CreateDevice(ctx context.Context, d DeviceIn) (*DeviceCreated, error) {
	var out DeviceCreated
	if err := c.do(ctx, http.MethodPost, "/devices", nil, "", d, &out); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	if out.ID == "" || out.Token == "" {
		return nil, errors.New("create device: the server returned no id or token")
	}
	return &out, nil
}
