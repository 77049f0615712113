package bus

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// metaPartitions is the stream metadata key that records the partition
// count. A stream without it was made before partitions existed: one.
const metaPartitions = "vigil_partitions"

// partSubject returns the subject partition k's messages are published on.
func (l *Log) partSubject(k int) string {
	if l.opts.Partitions == 1 {
		return l.subject
	}
	return l.subject + ".p" + strconv.Itoa(k)
}

// wholeFilter is the filter subject of a consumer of the whole log: none
// with one partition (as consumers made before partitions existed have),
// every partition's subject otherwise.
func (l *Log) wholeFilter() string {
	if l.opts.Partitions == 1 {
		return ""
	}
	return l.subject + ".>"
}

// partName is the durable name of partition part's consumer under name.
func partName(name string, part int) string {
	return name + "-p" + strconv.Itoa(part)
}

// createOrUpdateStream creates the stream with cfg and the partition count
// in its metadata, or, if it exists, checks that it holds the same count
// (EINVALID otherwise) and updates its configuration.
func (l *Log) createOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	want := l.opts.Partitions
	for attempt := 0; ; attempt++ {
		s, err := l.js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			cfg.Metadata = map[string]string{metaPartitions: strconv.Itoa(want)}
			_, err = l.js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue // created meanwhile by another node: check its count
			}
			if err != nil {
				return unavailable("create stream "+cfg.Name, err)
			}
			return nil
		}
		if err != nil {
			return unavailable("get stream "+cfg.Name, err)
		}
		old := s.CachedInfo().Config.Metadata
		have := 1
		if v, ok := old[metaPartitions]; ok {
			if have, err = strconv.Atoi(v); err != nil || have < 1 {
				return vigil.Errorf(vigil.EINVALID, "stream %s records an invalid partition count %q", cfg.Name, v)
			}
		}
		if have != want {
			return vigil.Errorf(vigil.EINVALID, "stream %s holds %d log partition(s), not %d: the count is fixed when the stream is created; open it with %d, or drain and delete the stream to change it",
				cfg.Name, have, want, have)
		}
		cfg.Metadata = map[string]string{metaPartitions: strconv.Itoa(want)}
		for k, v := range old {
			if !strings.HasPrefix(k, "_nats.") && k != metaPartitions {
				cfg.Metadata[k] = v
			}
		}
		if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
			return unavailable("update stream "+cfg.Name, err)
		}
		return nil
	}
}

// Partitions is the log's fixed number of partitions (Options.Partitions).
func (l *Log) Partitions() int { return l.opts.Partitions }

// partitionRecords divides the encoded records of b (data, with the end of
// each record as encodeRecords returns them) by partition among n: a
// reading or status report goes to its patient's partition
// (vigil.PartitionOf), a quarantine item to partition 0. It returns the
// partitions that get records, in the order of their first record, with
// each one's records (in b's order) and their ends.
func partitionRecords(data []byte, ends []int, b *vigil.Batch, n int) (parts []int, datas [][]byte, partEnds [][]int) {
	index := make(map[int]int) // partition → its index in parts
	start := 0
	for i, end := range ends {
		var k int
		switch nr, nq := len(b.Readings), len(b.Quarantine); {
		case i < nr:
			k = vigil.PartitionOf(b.Readings[i].SubjectID, n)
		case i < nr+nq:
			k = 0
		default:
			k = vigil.PartitionOf(b.Statuses[i-nr-nq].SubjectID, n)
		}
		j, ok := index[k]
		if !ok {
			j = len(parts)
			index[k] = j
			parts = append(parts, k)
			datas = append(datas, nil)
			partEnds = append(partEnds, nil)
		}
		datas[j] = append(datas[j], data[start:end]...)
		partEnds[j] = append(partEnds[j], len(datas[j]))
		start = end
	}
	return parts, datas, partEnds
}

// ConsumePartition is Consume for partition part only (0 <= part <
// Partitions()), under the durable consumer name+"-p<part>" that takes the
// partition's subject alone: each delivery is the part of one log message
// that belongs to part, with the message's log position, and positions
// skip the other partitions' messages. Ordering, redelivery, the rewind at
// a lost delivery and the errors are Consume's. With one partition it is
// Consume(ctx, name, fn) itself (same durable consumer). Only one
// ConsumePartition per (name, part) may run at a time across all
// processes; within one Log a second one gets ECONFLICT. EINVALID for a
// part out of range or an invalid name.
func (l *Log) ConsumePartition(ctx context.Context, name string, part int, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if part < 0 || part >= l.opts.Partitions {
		return vigil.Errorf(vigil.EINVALID, "log partition %d out of range 0..%d", part, l.opts.Partitions-1)
	}
	if l.opts.Partitions == 1 {
		return l.Consume(ctx, name, fn)
	}
	if err := checkName(name); err != nil {
		return err
	}
	return l.run(ctx, partName(name, part), l.parts[part], fn)
}

// ReadPartition is Read restricted to partition part: the deliveries of
// part at log positions from through to, in order; positions of other
// partitions are skipped. EINVALID for a part out of range.
func (l *Log) ReadPartition(ctx context.Context, part int, from, to uint64, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if part < 0 || part >= l.opts.Partitions {
		return vigil.Errorf(vigil.EINVALID, "log partition %d out of range 0..%d", part, l.opts.Partitions-1)
	}
	if l.opts.Partitions == 1 {
		return l.Read(ctx, from, to, fn)
	}
	return l.read(ctx, l.parts[part], from, to, fn)
}

// nextMsg returns the position of the first message at or after from on
// subject filter (wildcards allowed), or 0 if there is none.
func (l *Log) nextMsg(ctx context.Context, filter string, from uint64) (uint64, error) {
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		return 0, unavailable("get stream info", err)
	}
	m, err := s.GetMsg(ctx, max(from, 1), jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("look up log message", err)
	}
	return m.Sequence, nil
}

// durable is one durable consumer a name stands for, with the subjects it
// takes.
type durable struct {
	name, filter string
}

// durables returns the durable consumers under name, and the info of
// those that exist (nil for the others): name itself if it exists or the
// log has one partition, else its partitions' name+"-p<k>".
func (l *Log) durables(ctx context.Context, name string) ([]durable, []*jetstream.ConsumerInfo, error) {
	info, err := l.consumerInfo(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if info != nil || l.opts.Partitions == 1 {
		return []durable{{name, l.wholeFilter()}}, []*jetstream.ConsumerInfo{info}, nil
	}
	ds := make([]durable, l.opts.Partitions)
	infos := make([]*jetstream.ConsumerInfo, l.opts.Partitions)
	for k := range ds {
		ds[k] = durable{partName(name, k), l.parts[k]}
		if infos[k], err = l.consumerInfo(ctx, ds[k].name); err != nil {
			return nil, nil, err
		}
	}
	return ds, infos, nil
}

// consumerInfo returns the info of the durable consumer name; nil if it
// does not exist.
func (l *Log) consumerInfo(ctx context.Context, name string) (*jetstream.ConsumerInfo, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("get consumer info", err)
	}
	return cons.CachedInfo(), nil
}

// Drained reports whether the consumers under name have acknowledged every
// message at or below log position upTo. name is a durable consumer of
// Consume or ConsumeShared; with several partitions, if no consumer of that
// name exists, it stands for the consumers of ConsumePartition(name, k) for
// every partition k, and a partition without a message at or below upTo is
// drained whether or not its consumer exists. A consumer that does not
// exist has acknowledged nothing. Like AckFloor it never runs ahead of the
// acknowledgements. EUNAVAILABLE if JetStream cannot be asked.
func (l *Log) Drained(ctx context.Context, name string, upTo uint64) (bool, error) {
	ds, infos, err := l.durables(ctx, name)
	if err != nil {
		return false, err
	}
	for i, d := range ds {
		ok, err := l.drained(ctx, d.filter, infos[i], upTo)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// drained reports whether the consumer of info (nil: not made yet), taking
// the messages of filter ("" for every one), has acknowledged every one of
// them at or below upTo.
func (l *Log) drained(ctx context.Context, filter string, info *jetstream.ConsumerInfo, upTo uint64) (bool, error) {
	from := uint64(1)
	if info != nil {
		if info.AckFloor.Stream >= upTo {
			return true, nil
		}
		from = info.AckFloor.Stream + 1
		if info.NumAckPending == 0 {
			// Everything delivered is acknowledged; a filtered consumer's
			// ack floor may lag behind its deliveries over other subjects.
			from = max(from, info.Delivered.Stream+1)
		}
	}
	if from > upTo {
		return true, nil
	}
	if filter == "" {
		filter = l.opts.Subject + ".>"
	}
	next, err := l.nextMsg(ctx, filter, from)
	if err != nil {
		return false, err
	}
	return next == 0 || next > upTo, nil
}

// lag is Lag for the consumers under name (see durables).
func (l *Log) lag(ctx context.Context, name string) (uint64, error) {
	ds, infos, err := l.durables(ctx, name)
	if err != nil {
		return 0, err
	}
	var sum uint64
	var missing []string
	for i, info := range infos {
		if info == nil {
			missing = append(missing, ds[i].filter)
			continue
		}
		sum += info.NumPending + uint64(info.NumAckPending)
	}
	if len(missing) == 0 {
		return sum, nil
	}
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		return 0, unavailable("get stream info", err)
	}
	if len(missing) == len(ds) {
		return s.CachedInfo().State.Msgs, nil // none exists yet: the whole stream
	}
	st, err := s.Info(ctx, jetstream.WithSubjectFilter(l.subject+".>"))
	if err != nil {
		return 0, unavailable("get stream info", err)
	}
	for _, subj := range missing {
		sum += st.State.Subjects[subj]
	}
	return sum, nil
}

// checkName returns EINVALID unless name can name a durable consumer.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return vigil.Errorf(vigil.EINVALID, "invalid consumer name %q", name)
	}
	return nil
}
