package vigil

import (
	"context"
	"time"
)

// PatientStore keeps patient identities.
type PatientStore interface {
	// CreatePatient stores p, setting p.ID (if empty) and p.Created.
	// ECONFLICT if the MRN is taken.
	CreatePatient(ctx context.Context, p *Patient) error
	// Patient returns one patient; ENOTFOUND if none.
	Patient(ctx context.Context, id string) (*Patient, error)
	// Patients returns patients matching f ordered by id.
	Patients(ctx context.Context, f PatientFilter) ([]*Patient, error)
}

// DeviceStore keeps registered devices.
type DeviceStore interface {
	// CreateDevice stores d, setting d.ID (if empty) and d.Created.
	// ECONFLICT if the token hash is taken.
	CreateDevice(ctx context.Context, d *Device) error
	// Device returns one device; ENOTFOUND if none.
	Device(ctx context.Context, id string) (*Device, error)
	// DeviceByTokenHash returns the device whose token hashes to h, revoked
	// or not; ENOTFOUND if none.
	DeviceByTokenHash(ctx context.Context, h []byte) (*Device, error)
	// Devices returns devices matching f ordered by id.
	Devices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// UpdateDevice applies u and returns the device as it now is; ENOTFOUND if none.
	UpdateDevice(ctx context.Context, id string, u DeviceUpdate) (*Device, error)
}

// DeviceStatusStore keeps the last known status of devices, as the MQTT
// listener reports it, across restarts.
type DeviceStatusStore interface {
	// SaveDeviceStatuses stores, in one transaction, the last known status
	// (a JSON document) of each device in sts, replacing what was stored.
	SaveDeviceStatuses(ctx context.Context, sts map[string][]byte) error
	// DeviceStatuses returns every stored device status by device id.
	DeviceStatuses(ctx context.Context) (map[string][]byte, error)
}

// UserStore keeps users and their tokens.
type UserStore interface {
	// CreateUser stores u, setting u.ID (if empty) and u.Created.
	// ECONFLICT if the username is taken.
	CreateUser(ctx context.Context, u *User) error
	// User returns one user; ENOTFOUND if none.
	User(ctx context.Context, id string) (*User, error)
	// UserByUsername returns one user; ENOTFOUND if none.
	UserByUsername(ctx context.Context, username string) (*User, error)
	// Users returns every user ordered by username.
	Users(ctx context.Context) ([]*User, error)
	// UpdateUser applies u and returns the user as it now is; ENOTFOUND if
	// none. Disabling a user or changing their password revokes tokens in
	// the same transaction, as vigil.UserUpdate says.
	UpdateUser(ctx context.Context, id string, u UserUpdate) (*User, error)

	// CreateToken stores t, setting t.ID (if empty) and t.Created.
	CreateToken(ctx context.Context, t *Token) error
	// TokenByHash returns the token whose secret hashes to h, revoked or
	// expired or not; ENOTFOUND if none.
	TokenByHash(ctx context.Context, h []byte) (*Token, error)
	// TouchToken records that a token was used at time at.
	TouchToken(ctx context.Context, id string, at time.Time) error
	// RevokeToken revokes a token at time at; ENOTFOUND if none.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// Token returns one token; ENOTFOUND if none.
	Token(ctx context.Context, id string) (*Token, error)
	// Tokens returns the tokens of a user ("" for every user), newest first.
	Tokens(ctx context.Context, userID string) ([]*Token, error)
}

// ReadingStore keeps readings and quarantined input.
type ReadingStore interface {
	// WriteBatches stores the readings and quarantine items of bs in one
	// transaction. A reading whose Key is already stored is skipped when it
	// is the same reading (subject, device, code, time, value, unit,
	// components and quality flags but converted), so writing the same batch
	// twice stores it once; a different reading under a stored Key is
	// stored under a key of its own, derived from its content and set in
	// Reading.Key, so that nothing written is dropped. A quarantine item
	// whose ID is already stored is skipped. It sets Reading.ID of the
	// readings it stores and returns how many it stored.
	WriteBatches(ctx context.Context, bs []Batch) (int, error)
	// Readings returns one page of a subject's readings in time order
	// (ties broken by ID), oldest first unless q.Desc.
	Readings(ctx context.Context, q ReadingQuery) (ReadingPage, error)
	// Reading returns one stored reading by its ID; ENOTFOUND if none.
	Reading(ctx context.Context, id int64) (Reading, error)
	// ReadingByKey returns the stored reading with idempotency key key;
	// ENOTFOUND if none.
	ReadingByKey(ctx context.Context, key string) (Reading, error)
	// Latest returns the newest reading of each code for a subject, ordered
	// by code. Component codes of panels are included as readings of their
	// own (with the panel's time, device and key).
	Latest(ctx context.Context, subjectID string) ([]Reading, error)
	// Buckets summarises one code's values per time bucket, oldest first.
	// EINVALID if the query has no width or range.
	Buckets(ctx context.Context, q BucketQuery) ([]Bucket, error)
	// Quarantined returns quarantine items matching f, newest first.
	Quarantined(ctx context.Context, f QuarantineFilter) ([]QuarantineItem, error)
}

// Store is the main database: identity, devices and the peripherals
// gateways relay for, users and teams,
// readings and quarantine, rule configurations, erasures. Identity is kept
// sealed (IdentityStore); a node reads and writes it through package
// keys, whose Store implements PatientStore on IdentityStore. A backend's
// own PatientStore keeps identity in plaintext: it serves tests and stores
// not yet migrated, which keys.Store seals at start. Alerts and the audit log
// are kept apart, each in a database of its own with an interface of its
// own (AlertWebhookStore, AuditStore), so that a consumer of one cannot be
// handed another. Implementations (sqlite, postgres) pass the shared
// suite in package storetest. All methods are safe for concurrent use.
type Store interface {
	PatientStore
	DeviceStore
	DeviceStatusStore
	PeripheralStore
	UserStore
	SecondFactorStore
	ExternalIdentityStore
	TeamStore
	BreakGlassStore
	ReadingStore
	RuleConfigStore
	IdentityStore
	ErasureStore
	RetentionStore
	HL7SenderStore
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	Close() error
}
