package mapping

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
)

// Source is the adapter name of readings mapped by a template and sent
// over HTTP; MQTT passes its own ("mqtt").
const Source = "mapping"

// Ingester is what Service needs of the ingest pipeline; *ingest.Service
// implements it.
type Ingester interface {
	SubmitItems(ctx context.Context, p *vigil.Principal, source string, items []ingest.Item) (*ingest.Result, error)
	CheckItems(ctx context.Context, p *vigil.Principal, items []ingest.Item) (*ingest.Result, error)
	CheckContent(ctx context.Context, items []ingest.Item) (*ingest.Result, error)
	QuarantineAll(ctx context.Context, p *vigil.Principal, source string, refusals []ingest.Refusal) error
}

// Service runs mapping templates for the adapters and the API. Its fields
// are set before first use; its methods are safe for concurrent use.
type Service struct {
	Store    vigil.MappingStore
	Pipeline Ingester
	Devices  vigil.DeviceStore // to rebuild a quarantined item's sender for a replay
	Users    vigil.UserStore
	Limits   Limits
	Logger   *slog.Logger

	cache sync.Map // name + "\x00" + version → *Template
}

// Template returns version v of template name compiled (its latest if v
// is 0), compiling each version once. ENOTFOUND if there is none.
func (s *Service) Template(ctx context.Context, name string, v int) (*Template, error) {
	if v != 0 {
		if t, ok := s.cache.Load(cacheKey(name, v)); ok {
			return t.(*Template), nil
		}
	}
	m, err := s.Store.Mapping(ctx, name, v)
	if err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND && v == 0 {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "no mapping template %q", name)
		}
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "mapping template %q has no version %d", name, v)
		}
		return nil, err
	}
	if t, ok := s.cache.Load(cacheKey(m.Name, m.Version)); ok {
		return t.(*Template), nil
	}
	t, err := Compile(m.Name, m.Version, m.Spec, s.Limits)
	if err != nil {
		// Saved versions compiled when they were saved; one that no longer
		// does (a CEL library change) is refused, not guessed at.
		return nil, fmt.Errorf("template %s version %d no longer compiles: %w", m.Name, m.Version, err)
	}
	actual, _ := s.cache.LoadOrStore(cacheKey(m.Name, m.Version), t)
	return actual.(*Template), nil
}

func cacheKey(name string, v int) string { return name + "\x00" + strconv.Itoa(v) }

// Save stores m as a new version of its template once its spec compiles
// (EINVALID with what is wrong otherwise); errors are the store's
// (ECONFLICT for a version that does not follow the latest).
func (s *Service) Save(ctx context.Context, m *vigil.MappingTemplate) error {
	if !vigil.ValidMappingName(m.Name) {
		return vigil.Errorf(vigil.EINVALID, "template name %q must be 1 to 63 lower-case letters, digits and hyphens", m.Name)
	}
	if reservedNames[m.Name] {
		return vigil.Errorf(vigil.EINVALID, "template name %q is reserved (it names a route of the API)", m.Name)
	}
	if _, err := Compile(m.Name, m.Version, m.Spec, s.Limits); err != nil {
		return err
	}
	return s.Store.SaveMapping(ctx, m)
}

// reservedNames are path segments of the mappings API that no template
// may take.
var reservedNames = map[string]bool{"builtin": true, "preview": true}

// Answer is what became of a message sent through a template: as
// ingest.Result, with refusals indexed by record (-1 for the whole
// message), and the records the template skipped.
type Answer struct {
	Template string             `json:"template"`
	Version  int                `json:"version,omitempty"`
	Accepted int                `json:"accepted"`
	Rejected []ingest.Rejection `json:"rejected"`
	Skipped  []int              `json:"skipped,omitempty"`
}

// Ingest maps a message sent by p through the latest version of template
// name and submits its readings (ingest.Service.SubmitItems), quarantining
// what is refused: the whole message when it cannot be mapped at all (no
// such template, not JSON, not taken by the template, over the limits),
// else each record the template refuses and each reading ingest refuses,
// kept as the record with the template's name and version. It returns once
// all of it is durable. truncated says msg is only the start of what was
// sent (it is refused whole, ETOOLARGE).
//
// Quarantine ids are derived from the sender, the template version, the
// message and the position, so that a message sent again (after a lost
// acknowledgement) is quarantined once, as its readings are stored once.
//
// The error is nil when a reading was accepted or nothing was refused;
// else it is the refusal's (EINVALID, ENOTFOUND, ETOOLARGE, EFORBIDDEN...),
// or a failure of the log (the sender must not be acknowledged), and then
// Answer is nil.
func (s *Service) Ingest(ctx context.Context, p *vigil.Principal, source, name string, msg []byte, truncated bool) (*Answer, error) {
	ans := &Answer{Template: name, Rejected: []ingest.Rejection{}}
	seed := idSeed(p, name, msg)
	whole := func(v int, err error) (*Answer, error) {
		ans.Version = v
		ans.Rejected = append(ans.Rejected, ingest.Rejection{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
		ref := ingest.Refusal{Index: -1, Payload: msg, Truncated: truncated, Reason: err, Template: name, TemplateVersion: v, ID: quarantineID(seed, v, -1, -1)}
		if qerr := s.Pipeline.QuarantineAll(ctx, p, source, []ingest.Refusal{ref}); qerr != nil {
			return nil, qerr
		}
		return ans, err
	}
	if truncated || len(msg) > s.Limits.maxBytes() {
		return whole(0, vigil.Errorf(vigil.ETOOLARGE, "message is larger than the %d bytes a template takes", s.Limits.maxBytes()))
	}
	t, err := s.Template(ctx, name, 0)
	if err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return whole(0, err)
		}
		return nil, err
	}
	ans.Version = t.Version
	out, err := t.Map(ctx, msg, s.Limits)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return whole(t.Version, err)
	}
	return s.submit(ctx, p, source, t, out, ans, func(record, n int) string { return quarantineID(seed, t.Version, record, n) })
}

// submit submits what a template made of a message or a record: readings
// through SubmitItems, refused records through QuarantineAll, each
// quarantined with the id qid(record, n) (n counts within the record).
func (s *Service) submit(ctx context.Context, p *vigil.Principal, source string, t *Template, out *Output, ans *Answer, qid func(record, n int) string) (*Answer, error) {
	ans.Skipped = out.Skipped
	items := make([]ingest.Item, len(out.Readings))
	n := map[int]int{} // per record, how many ids were handed out
	next := func(record int) string {
		id := qid(record, n[record])
		n[record]++
		return id
	}
	for i, m := range out.Readings {
		items[i] = m.Item
		items[i].Origin = &ingest.Origin{Index: m.Record, Payload: m.Raw, Template: t.Name, TemplateVersion: t.Version, QuarantineID: next(m.Record)}
	}
	var refusals []ingest.Refusal
	for _, r := range out.Refused {
		refusals = append(refusals, ingest.Refusal{Index: r.Record, Payload: r.Raw, Reason: r.Err, Template: t.Name, TemplateVersion: t.Version, ID: next(r.Record)})
		ans.Rejected = append(ans.Rejected, ingest.Rejection{Index: r.Record, Reason: vigil.ErrorMessage(r.Err), Code: vigil.ErrorCode(r.Err)})
	}
	if err := s.Pipeline.QuarantineAll(ctx, p, source, refusals); err != nil {
		return nil, err
	}
	var submitErr error
	if len(items) > 0 {
		res, err := s.Pipeline.SubmitItems(ctx, p, source, items)
		if res == nil {
			return nil, err
		}
		submitErr = err
		ans.Accepted = res.Accepted
		for _, rj := range res.Rejected {
			if rj.Index >= 0 {
				rj.Index = out.Readings[rj.Index].Record
			}
			ans.Rejected = append(ans.Rejected, rj)
		}
	}
	if ans.Accepted > 0 || len(ans.Rejected) == 0 {
		return ans, nil
	}
	if submitErr != nil && len(out.Refused) == 0 {
		return ans, submitErr
	}
	return ans, vigil.Errorf(commonCode(ans.Rejected), "no reading was accepted: %s", ans.Rejected[0].Reason)
}

func commonCode(rs []ingest.Rejection) string {
	code := rs[0].Code
	for _, r := range rs[1:] {
		if r.Code != code {
			return vigil.EINVALID
		}
	}
	return code
}

// idSeed is the hash of who sent which message through which template.
func idSeed(p *vigil.Principal, name string, msg []byte) [sha256.Size]byte {
	h := sha256.New()
	sender := ""
	if p != nil {
		sender = p.DeviceID + "\x00" + p.UserID
	}
	fmt.Fprintf(h, "%d:%s%d:%s", len(sender), sender, len(name), name)
	h.Write(msg)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// quarantineID derives a quarantine item id, shaped like vigil.NewID's,
// from a seed, a template version and a position.
func quarantineID(seed [sha256.Size]byte, version, record, n int) string {
	h := sha256.New()
	h.Write(seed[:])
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], uint64(version))
	binary.BigEndian.PutUint64(b[8:], uint64(int64(record)))
	binary.BigEndian.PutUint64(b[16:], uint64(n))
	h.Write(b[:])
	sum := h.Sum(nil)
	return vigil.PrefixQuarantine + "_" + idEncoding.EncodeToString(sum[:16])
}

// Preview is what a template would make of a sample: every reading with
// whether ingest would accept it, every refused record, every skipped one.
// Nothing is stored.
type Preview struct {
	Template string             `json:"template"`
	Version  int                `json:"version,omitempty"`
	Records  int                `json:"records"`
	Readings []PreviewReading   `json:"readings"`
	Refused  []ingest.Rejection `json:"refused"` // records (or the whole sample, -1) the template refuses
	Skipped  []int              `json:"skipped"`
}

// PreviewReading is one reading of a preview: the item the template made,
// and whether ingest would store it (Reason and Code say why not).
type PreviewReading struct {
	Record int         `json:"record"`
	Rule   string      `json:"rule"`
	Item   ingest.Item `json:"item"`
	Stored bool        `json:"stored"`
	Reason string      `json:"reason,omitempty"`
	Code   string      `json:"code,omitempty"`
}

// Preview runs t over sample and checks its readings as ingest would, for
// the sender p (a device or an integration: its rights are checked too),
// or when p is nil for any sender (the content only). It stores nothing.
// The error is a dependency's failure only: a refused sample is a Preview
// with a refusal at -1.
func (s *Service) Preview(ctx context.Context, t *Template, p *vigil.Principal, sample []byte) (*Preview, error) {
	pv := &Preview{Template: t.Name, Version: t.Version, Readings: []PreviewReading{}, Refused: []ingest.Rejection{}, Skipped: []int{}}
	out, err := t.Map(ctx, sample, s.Limits)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		pv.Refused = append(pv.Refused, ingest.Rejection{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
		return pv, nil
	}
	pv.Records = out.Records
	if out.Skipped != nil {
		pv.Skipped = out.Skipped
	}
	for _, r := range out.Refused {
		pv.Refused = append(pv.Refused, ingest.Rejection{Index: r.Record, Reason: vigil.ErrorMessage(r.Err), Code: vigil.ErrorCode(r.Err)})
	}
	if len(out.Readings) == 0 {
		return pv, nil
	}
	items := make([]ingest.Item, len(out.Readings))
	for i, m := range out.Readings {
		items[i] = m.Item
		pv.Readings = append(pv.Readings, PreviewReading{Record: m.Record, Rule: m.Rule, Item: m.Item, Stored: true})
	}
	var res *ingest.Result
	if p == nil {
		res, err = s.Pipeline.CheckContent(ctx, items)
	} else {
		res, err = s.Pipeline.CheckItems(ctx, p, items)
	}
	if err != nil {
		if vigil.ErrorCode(err) == vigil.ETOOLARGE {
			pv.Refused = append(pv.Refused, ingest.Rejection{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
			return pv, nil
		}
		return nil, err
	}
	for _, rj := range res.Rejected {
		r := &pv.Readings[rj.Index]
		r.Stored, r.Reason, r.Code = false, rj.Reason, rj.Code
	}
	return pv, nil
}

// ReplayOutcome is what became of one quarantined item replayed through a
// template version.
type ReplayOutcome struct {
	ItemID   string             `json:"item_id"`
	Sender   string             `json:"sender,omitempty"`
	Accepted int                `json:"accepted"`
	Rejected []ingest.Rejection `json:"rejected"`
	Skipped  []int              `json:"skipped,omitempty"`
	// Already says the item was replayed through this version before
	// (Previous): nothing was submitted again.
	Already  bool                    `json:"already,omitempty"`
	Previous *vigil.QuarantineReplay `json:"previous,omitempty"`
	// Error says why the item cannot be replayed at all (not vendor input,
	// truncated, its sender gone): nothing was submitted.
	Error string `json:"error,omitempty"`
}

// Replay runs quarantined items again through version v of template
// (latest if 0), each as its sender sent it: a record alone (an item with
// an index) or the whole message (index -1). actor is the user replaying.
// Each item is replayed at most once per template version: a second
// replay finds the record of the first (ReplayOutcome.Already) and submits
// nothing. What is refused again is quarantined again, under ids derived
// from the item and the version, so even two concurrent replays keep it
// once; readings keep their idempotency keys, so they are stored once. With
// dryRun nothing is submitted or recorded: each outcome says what would be
// stored. The error is a dependency's failure; an item that cannot be
// replayed has its reason in its outcome.
func (s *Service) Replay(ctx context.Context, actor string, name string, v int, items []vigil.QuarantineItem, dryRun bool) (*Template, []ReplayOutcome, error) {
	t, err := s.Template(ctx, name, v)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(items))
	for i := range items {
		ids[i] = items[i].ID
	}
	done, err := s.Store.QuarantineReplays(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	outs := make([]ReplayOutcome, 0, len(items))
	for i := range items {
		o, err := s.replayOne(ctx, actor, t, &items[i], done[items[i].ID], dryRun)
		if err != nil {
			return nil, nil, err
		}
		outs = append(outs, o)
	}
	return t, outs, nil
}

func (s *Service) replayOne(ctx context.Context, actor string, t *Template, it *vigil.QuarantineItem, done []vigil.QuarantineReplay, dryRun bool) (ReplayOutcome, error) {
	o := ReplayOutcome{ItemID: it.ID, Sender: it.Sender, Rejected: []ingest.Rejection{}}
	for i := range done {
		if done[i].Template == t.Name && done[i].TemplateVersion == t.Version {
			o.Already, o.Previous, o.Accepted = true, &done[i], done[i].Accepted
			return o, nil
		}
	}
	if it.Template == "" {
		o.Error = "the item is not vendor input refused by a mapping template: replay it with POST /api/v1/quarantine/{id}/replay"
		return o, nil
	}
	if it.Truncated {
		o.Error = "the item holds only the start of an over-large message and cannot be replayed"
		return o, nil
	}
	p, err := s.senderOf(ctx, it.Sender)
	if err != nil {
		if vigil.ErrorCode(err) == vigil.EINVALID {
			o.Error = vigil.ErrorMessage(err)
			return o, nil
		}
		return o, err
	}
	var out *Output
	if it.Index < 0 {
		out, err = t.Map(ctx, it.Payload, s.Limits)
	} else {
		out, err = t.MapRecord(ctx, it.Index, it.Payload, s.Limits)
	}
	seed := sha256.Sum256([]byte("replay\x00" + it.ID + "\x00" + t.Name))
	if err != nil {
		if ctx.Err() != nil {
			return o, ctx.Err()
		}
		o.Rejected = append(o.Rejected, ingest.Rejection{Index: it.Index, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
		if !dryRun {
			ref := ingest.Refusal{Index: it.Index, Payload: it.Payload, Reason: err, Template: t.Name, TemplateVersion: t.Version, ID: quarantineID(seed, t.Version, it.Index, 0)}
			if err := s.Pipeline.QuarantineAll(ctx, p, it.Source, []ingest.Refusal{ref}); err != nil {
				return o, err
			}
		}
	} else if dryRun {
		pv, err := s.previewOutput(ctx, p, out)
		if err != nil {
			return o, err
		}
		o.Accepted, o.Rejected, o.Skipped = pv.Accepted, pv.Rejected, pv.Skipped
	} else {
		ans, err := s.submit(ctx, p, it.Source, t, out, &Answer{Rejected: []ingest.Rejection{}}, func(record, n int) string {
			return quarantineID(seed, t.Version, record, n)
		})
		if ans == nil {
			return o, err
		}
		o.Accepted, o.Rejected, o.Skipped = ans.Accepted, ans.Rejected, ans.Skipped
	}
	if dryRun {
		return o, nil
	}
	rec := &vigil.QuarantineReplay{ItemID: it.ID, Template: t.Name, TemplateVersion: t.Version, Actor: actor, Accepted: o.Accepted, Rejected: len(o.Rejected)}
	if len(o.Rejected) > 0 {
		rec.Reason = o.Rejected[0].Reason
	}
	if err := s.Store.SaveQuarantineReplay(ctx, rec); err != nil && vigil.ErrorCode(err) != vigil.ECONFLICT {
		// The readings are durable and keyed: a later replay stores them
		// once; only the record of this replay is missing.
		return o, fmt.Errorf("record replay of %s: %w", it.ID, err)
	}
	return o, nil
}

// previewOutput checks what a template made as ingest would, for p.
func (s *Service) previewOutput(ctx context.Context, p *vigil.Principal, out *Output) (*Answer, error) {
	ans := &Answer{Rejected: []ingest.Rejection{}, Skipped: out.Skipped}
	for _, r := range out.Refused {
		ans.Rejected = append(ans.Rejected, ingest.Rejection{Index: r.Record, Reason: vigil.ErrorMessage(r.Err), Code: vigil.ErrorCode(r.Err)})
	}
	if len(out.Readings) == 0 {
		return ans, nil
	}
	items := make([]ingest.Item, len(out.Readings))
	for i, m := range out.Readings {
		items[i] = m.Item
	}
	res, err := s.Pipeline.CheckItems(ctx, p, items)
	if err != nil {
		return nil, err
	}
	ans.Accepted = res.Accepted
	for _, rj := range res.Rejected {
		rj.Index = out.Readings[rj.Index].Record
		ans.Rejected = append(ans.Rejected, rj)
	}
	return ans, nil
}

// senderOf rebuilds the principal of a quarantined item's sender as it is
// now (a revoked device's replay is refused again by ingest). EINVALID
// when it cannot be: unknown, gone or disabled.
func (s *Service) senderOf(ctx context.Context, id string) (*vigil.Principal, error) {
	if id == "" {
		return nil, vigil.Errorf(vigil.EINVALID, "the item's sender is unknown: it cannot be replayed")
	}
	gone := func(err error) error {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return vigil.Errorf(vigil.EINVALID, "the item's sender %s no longer exists", id)
		}
		return err
	}
	if strings.HasPrefix(id, vigil.PrefixDevice+"_") {
		if s.Devices == nil {
			return nil, errors.New("mapping: Service.Devices is not set")
		}
		d, err := s.Devices.Device(ctx, id)
		if err != nil {
			return nil, gone(err)
		}
		return &vigil.Principal{Role: vigil.RoleDevice, DeviceID: d.ID, Name: d.ID, SubjectID: d.SubjectID}, nil
	}
	if s.Users == nil {
		return nil, errors.New("mapping: Service.Users is not set")
	}
	u, err := s.Users.User(ctx, id)
	if err != nil {
		return nil, gone(err)
	}
	if u.Disabled {
		return nil, vigil.Errorf(vigil.EINVALID, "the item's sender %s is disabled", u.Username)
	}
	return &vigil.Principal{Role: u.Role, UserID: u.ID, Name: u.Username, SubjectID: u.SubjectID}, nil
}
