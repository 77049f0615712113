package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/vigil-health/vigil"
)

// adminPage is the data of the admin page.
type adminPage struct {
	Users      []*vigil.User
	Teams      []teamView
	Patients   []*vigil.Patient
	Devices    []*vigil.Device
	Quarantine []quarantineView
	Roles      []vigil.Role
}

type teamView struct {
	*vigil.Team
	Members  []string // usernames
	Patients []string // patient names
}

type quarantineView struct {
	vigil.QuarantineItem
	Text string // the payload as text when it is JSON
}

// adminShown is how many quarantine items the admin page lists.
const adminShown = 50

// adminData gathers the admin page: users, teams with their members and
// patients, patients, devices and the newest quarantine items.
func (s *Handler) adminData(ctx context.Context) (*adminPage, error) {
	var pg adminPage
	var err error
	if pg.Users, err = s.Store.Users(ctx); err != nil {
		return nil, fmt.Errorf("admin users: %w", err)
	}
	if pg.Patients, err = s.Store.Patients(ctx, vigil.PatientFilter{}); err != nil {
		return nil, fmt.Errorf("admin patients: %w", err)
	}
	if pg.Devices, err = s.Store.Devices(ctx, vigil.DeviceFilter{}); err != nil {
		return nil, fmt.Errorf("admin devices: %w", err)
	}
	users := make(map[string]string, len(pg.Users))
	for _, u := range pg.Users {
		users[u.ID] = u.Username
	}
	patients := make(map[string]string, len(pg.Patients))
	for _, p := range pg.Patients {
		patients[p.ID] = p.Name
	}
	teams, err := s.Store.Teams(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin teams: %w", err)
	}
	for _, t := range teams {
		tv := teamView{Team: t}
		ms, err := s.Store.TeamMembers(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("admin team members: %w", err)
		}
		for _, m := range ms {
			tv.Members = append(tv.Members, cmpOr(users[m], m))
		}
		ps, err := s.Store.TeamPatients(ctx, t.ID)
		if err != nil {
			return nil, fmt.Errorf("admin team patients: %w", err)
		}
		for _, p := range ps {
			tv.Patients = append(tv.Patients, cmpOr(patients[p], p))
		}
		pg.Teams = append(pg.Teams, tv)
	}
	items, err := s.Store.Quarantined(ctx, vigil.QuarantineFilter{Limit: adminShown})
	if err != nil {
		return nil, fmt.Errorf("admin quarantine: %w", err)
	}
	for _, it := range items {
		qv := quarantineView{QuarantineItem: it}
		if json.Valid(it.Payload) {
			qv.Text = string(it.Payload)
		}
		pg.Quarantine = append(pg.Quarantine, qv)
	}
	pg.Roles = []vigil.Role{vigil.RoleClinician, vigil.RolePatient, vigil.RoleAdmin, vigil.RoleIntegration}
	return &pg, nil
}

// adminView serves GET /admin. Its forms call the admin API.
func (s *Handler) adminView(w http.ResponseWriter, r *http.Request) error {
	pg, err := s.adminData(r.Context())
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "admin", pageData{Title: "Administration", Nav: "admin", Body: pg})
}
