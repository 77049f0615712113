package vigil

import "time"

// QuarantineItem is input that could not be accepted, kept whole with the
// reason, so that nothing a sender sent is silently dropped. Items can be
// listed by admins and, once the cause is fixed, replayed.
type QuarantineItem struct {
	ID        string    `json:"id"`
	Received  time.Time `json:"received"`
	Source    string    `json:"source"`              // adapter: "http", "mqtt", "gatt", "hl7"
	Sender    string    `json:"sender"`              // device or user id that sent it; "" if unknown
	Index     int       `json:"index"`               // position in the sender's batch; -1 for the whole body
	Reason    string    `json:"reason"`              // why it was refused, for people
	Code      string    `json:"code"`                // error code (ErrorCode), for programs
	Payload   []byte    `json:"payload"`             // exactly what was received (possibly truncated, see Truncated)
	Truncated bool      `json:"truncated,omitempty"` // Payload is a prefix of an over-large input
	// Template and TemplateVersion name the mapping template that refused
	// it (see MappingTemplate); "" and 0 for input that went through no
	// template. Payload is then the vendor's input the template was run on.
	Template        string `json:"template,omitempty"`
	TemplateVersion int    `json:"template_version,omitempty"`
}

// QuarantineFilter selects quarantine items, newest first. Empty fields
// select every item.
type QuarantineFilter struct {
	Sender string
	Source string // adapter, e.g. "http", "mapping"
	Code   string // error code (ErrorCode) of the refusal
	// Reason selects items whose reason contains it, ignoring ASCII case.
	Reason string
	// Template selects items refused by that mapping template, and
	// TemplateVersion (with Template) by that version of it.
	Template        string
	TemplateVersion int
	Before          string // resume before this item id
	Limit           int
}
