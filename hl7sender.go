package vigil

import (
	"context"
	"time"
)

// HL7Sender is a system registered to send HL7 v2 messages over MLLP (a
// bedside monitor's gateway, a device integration engine), named as its
// messages name it: MSH-3 (sending application) and MSH-4 (sending
// facility), each the namespace id (first component). A message from a
// sender that is not registered is refused.
type HL7Sender struct {
	ID          string `json:"id"`
	Application string `json:"application"` // MSH-3
	Facility    string `json:"facility"`    // MSH-4
	// AssigningAuthority, if set, is the authority (PID-3, CX.4) of the
	// medical record numbers this sender's patients are named by: only an
	// identifier of that authority names a Vigil patient. "" takes the
	// first identifier of type MR, else the first.
	AssigningAuthority string    `json:"assigning_authority,omitempty"`
	Created            time.Time `json:"created"`
}

// MaxHL7NameBytes bounds HL7Sender.Application, Facility and
// AssigningAuthority.
const MaxHL7NameBytes = 180

// PrefixHL7Sender is the ID prefix of HL7 senders.
const PrefixHL7Sender = "hls"

// HL7SenderStore keeps the registered HL7 senders.
type HL7SenderStore interface {
	// CreateHL7Sender stores s, setting s.ID (if empty) and s.Created.
	// ECONFLICT if a sender with the same application and facility is
	// registered; EINVALID if the application is empty.
	CreateHL7Sender(ctx context.Context, s *HL7Sender) error
	// HL7Sender returns the sender registered with this application and
	// facility (compared exactly); ENOTFOUND if none.
	HL7Sender(ctx context.Context, application, facility string) (*HL7Sender, error)
	// HL7Senders returns every registered sender ordered by application,
	// then facility.
	HL7Senders(ctx context.Context) ([]*HL7Sender, error)
}
