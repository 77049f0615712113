package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mapping"
)

// lateTemplates lets a test build the mapping service after the env that
// holds its store.
type lateTemplates struct{ s *mapping.Service }

func (l *lateTemplates) Ingest(ctx context.Context, p *vigil.Principal, source, name string, msg []byte, truncated bool) (*mapping.Answer, error) {
	return l.s.Ingest(ctx, p, source, name, msg, truncated)
}

// TestPublishRawThroughTemplate: a vendor message published to
// devices/{id}/raw/{template} is mapped by the template; PUBACK comes once
// its readings and its refused records are durable, and names a refusal;
// a template that does not exist is refused as an invalid payload and the
// message kept; another device's raw topic is refused.
func TestPublishRawThroughTemplate(t *testing.T) {
	lt := &lateTemplates{}
	var pipeline *ingest.Service
	e := newEnv(t, "", func(o *Options) { o.Templates = lt; pipeline = o.Ingest })
	lt.s = &mapping.Service{Store: e.store, Pipeline: pipeline}
	spec, _ := mapping.BuiltinSpec("nightscout-entries")
	if err := lt.s.Save(context.Background(), &vigil.MappingTemplate{Name: "nightscout", Version: 1, Spec: spec, Author: "usr_a"}); err != nil {
		t.Fatal(err)
	}
	id, tok := e.device()
	c := e.mustDial(Version5, id, tok)
	at := time.Now().Add(-5 * time.Minute).UnixMilli()
	msg := fmt.Sprintf(`[{"type":"sgv","sgv":120,"date":%d},{"type":"sgv","date":%d}]`, at, at+1)
	ack, err := c.Publish(ctx10(t), "devices/"+id+"/raw/nightscout", 1, []byte(msg))
	if err != nil || ack.ReasonCode != ReasonSuccess || !strings.Contains(ack.Props.ReasonString, "record 1") {
		t.Fatalf("PUBACK %+v, %v; want success naming the refused record", ack, err)
	}
	rs := e.readings(id)
	if len(rs) != 1 || rs[0].Code != "99504-3" || rs[0].Value != 120 || rs[0].Source != Source {
		t.Fatalf("readings = %+v", rs)
	}
	qs, err := e.store.Quarantined(context.Background(), vigil.QuarantineFilter{Template: "nightscout"})
	if err != nil || len(qs) != 1 || qs[0].Index != 1 || qs[0].TemplateVersion != 1 || qs[0].Sender != id {
		t.Fatalf("quarantined = %+v, %v", qs, err)
	}

	_, err = c.Publish(ctx10(t), "devices/"+id+"/raw/nothing", 1, []byte(msg))
	if got := refusedCode(err); got != int(ReasonPayloadInvalid) {
		t.Errorf("unknown template: PUBACK code %d (%v), want payload invalid", got, err)
	}
	e.waitStored()
	if qs, _ := e.store.Quarantined(context.Background(), vigil.QuarantineFilter{Template: "nothing"}); len(qs) != 1 || qs[0].Index != -1 {
		t.Errorf("message for an unknown template: quarantined %+v", qs)
	}
	other, _ := e.device()
	_, err = c.Publish(ctx10(t), "devices/"+other+"/raw/nightscout", 1, []byte(msg))
	if got := refusedCode(err); got != int(ReasonNotAuthorized) {
		t.Errorf("another device's raw topic: PUBACK code %d (%v), want not authorized", got, err)
	}
}
