package server

import "testing"

func TestCheckPublicURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://vigil.example.org:8443", "https://vigil.example.org:8443", true},
		{"https://vigil.example.org/", "https://vigil.example.org", true},
		{"https://proxy.example.org/vigil/", "https://proxy.example.org/vigil", true},
		{"http://vigil.example.org", "", false},
		{"vigil.example.org:8443", "", false},
		{"https://", "", false},
		{"https://user:pw@vigil.example.org", "", false},
		{"https://vigil.example.org/?x=1", "", false},
		{"https://vigil.example.org/#top", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := CheckPublicURL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CheckPublicURL(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
