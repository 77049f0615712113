package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vigil-health/vigil"
)

// readingColumns are the columns scanReading reads, in order. The latest
// table has the same columns, with reading_id for id.
const readingColumns = "id, subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer"

// stageTable is the staging table of WriteBatches: a temporary table of
// each connection, emptied at every commit.
const stageTable = "vigil_stage"

const createStage = `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
	n          integer          NOT NULL,
	id         bigint           NOT NULL,
	subject_id text             NOT NULL,
	device_id  text             NOT NULL,
	code       text             NOT NULL,
	value      double precision,
	unit       text             NOT NULL,
	t          timestamptz      NOT NULL,
	received   timestamptz,
	key        text             NOT NULL,
	quality    integer          NOT NULL,
	source     text             NOT NULL,
	components text,
	derivation text,
	performer  text             NOT NULL
) ON COMMIT DELETE ROWS`

var stageColumns = []string{"n", "id", "subject_id", "device_id", "code", "value", "unit", "t", "received", "key",
	"quality", "source", "components", "derivation", "performer"}

// insertStaged moves the staged readings into the table in one statement:
// the keys first, in batch order, skipping those stored already (by an
// earlier batch, an earlier reading of this one, or a concurrent writer,
// whose commit it waits for); then the readings whose keys went in. It
// returns the ids of the readings stored.
const insertStaged = `WITH k AS (
	INSERT INTO reading_keys (key, subject_id, t, id)
	SELECT key, subject_id, t, id FROM ` + stageTable + ` ORDER BY n
	ON CONFLICT (key) DO NOTHING
	RETURNING id
), r AS (
	INSERT INTO readings (` + readingColumns + `)
	SELECT ` + readingColumns + ` FROM ` + stageTable + ` WHERE id IN (SELECT id FROM k)
)
SELECT id FROM k`

// insertOne stores one reading under a key of its own (see conflictKey),
// unless the key is taken; it returns the new id, or no row.
const insertOne = `WITH k AS (
	INSERT INTO reading_keys (key, subject_id, t, id) VALUES ($8, $1, $6, nextval('readings_id_seq'))
	ON CONFLICT (key) DO NOTHING
	RETURNING id
)
INSERT INTO readings (` + readingColumns + `)
SELECT k.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM k
RETURNING id`

// selectByKey reads what makes a stored reading the same as another.
const selectByKey = `SELECT r.subject_id, r.device_id, r.code, r.value, r.unit, r.t, r.quality, r.components
	FROM reading_keys k JOIN readings r ON r.subject_id = k.subject_id AND r.t = k.t AND r.id = k.id
	WHERE k.key = $1`

// upsertLatest replaces a subject's latest reading of a code only with a
// newer one: later in time, or as late and stored later.
const upsertLatest = `INSERT INTO latest (subject_id, code, reading_id, device_id, value, unit, t, received, key, quality, source, components, derivation, performer)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::float8[], $6::text[], $7::timestamptz[],
		$8::timestamptz[], $9::text[], $10::integer[], $11::text[], $12::text[], $13::text[], $14::text[])
	ON CONFLICT (subject_id, code) DO UPDATE SET
		reading_id = excluded.reading_id, device_id = excluded.device_id, value = excluded.value,
		unit = excluded.unit, t = excluded.t, received = excluded.received, key = excluded.key,
		quality = excluded.quality, source = excluded.source, components = excluded.components,
		derivation = excluded.derivation, performer = excluded.performer
	WHERE excluded.t > latest.t OR (excluded.t = latest.t AND excluded.reading_id > latest.reading_id)`

// upsertRollup adds a transaction's values per subject, code and 15-minute
// bucket to reading_rollup.
const upsertRollup = `INSERT INTO reading_rollup (subject_id, code, bucket, min, max, sum, n)
	SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[], $7::bigint[])
	ON CONFLICT (subject_id, code, bucket) DO UPDATE SET
		min = least(reading_rollup.min, excluded.min), max = greatest(reading_rollup.max, excluded.max),
		sum = reading_rollup.sum + excluded.sum, n = reading_rollup.n + excluded.n`

const insertQuarantine = `INSERT INTO quarantine (id, received, source, sender, idx, reason, code, payload, truncated, template, template_version)
	SELECT id, received, source, sender, idx, reason, code, payload, truncated, template, template_version
	FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::bytea[], $9::boolean[],
		$10::text[], $11::integer[])
		WITH ORDINALITY AS q (id, received, source, sender, idx, reason, code, payload, truncated, template, template_version, o)
	ORDER BY o
	ON CONFLICT (id) DO NOTHING`

// WriteBatches stores the readings and quarantine items of bs in one
// transaction: the readings are copied (COPY) into a staging table and
// moved into the partitioned table with one INSERT … ON CONFLICT DO
// NOTHING. A reading whose Key is stored already is skipped if it is the
// same reading (see sameReading); a different one is stored under its
// conflict key (conflictKey), which WriteBatches sets in Reading.Key, so
// that nothing written is dropped. A quarantine item whose ID is stored is
// skipped. It sets Reading.ID of the readings it stores (only once the
// transaction has committed) and returns how many readings it stored.
// EINVALID if a reading has no subject, code, key or time, or a quarantine
// item no ID; then nothing is stored. Partitions missing for the readings'
// times are created first, each in a transaction of its own.
func (s *Store) WriteBatches(ctx context.Context, bs []vigil.Batch) (int, error) {
	var rs []*vigil.Reading
	var qs []*vigil.QuarantineItem
	for i := range bs {
		for j := range bs[i].Readings {
			r := &bs[i].Readings[j]
			if err := checkReading(r); err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
			rs = append(rs, r)
		}
		for j := range bs[i].Quarantine {
			if bs[i].Quarantine[j].ID == "" {
				return 0, fmt.Errorf("write batches: %w", vigil.Errorf(vigil.EINVALID, "quarantine item without id"))
			}
			qs = append(qs, &bs[i].Quarantine[j])
		}
	}
	if len(rs) == 0 && len(qs) == 0 {
		return 0, nil
	}
	staged, err := stageReadings(rs)
	if err != nil {
		return 0, fmt.Errorf("write batches: %w", err)
	}
	var is []int64
	for _, r := range rs {
		if i := partitionIndex(r.Time); !slices.Contains(is, i) {
			is = append(is, i)
		}
	}
	if err := s.ensurePartitions(ctx, is); err != nil {
		return 0, fmt.Errorf("write batches: %w", err)
	}

	var done []stored
	for attempt := 1; ; attempt++ {
		done, err = s.writeBatches(ctx, staged, qs)
		if err == nil {
			break
		}
		var pe *pgconn.PgError
		if attempt < maxAttempts && errors.As(err, &pe) && pe.Code == sqlNoPartition {
			// Another node dropped a partition this one remembered.
			s.parts.forget()
			if err := s.ensurePartitions(ctx, is); err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
			continue
		}
		if attempt < maxAttempts && errors.Is(err, errErasedMeanwhile) {
			// Readings of erased patients (still in the durable log when
			// their patient was erased) are dropped and the rest staged
			// again. The check is in the transaction only: it is rare, and
			// costs the common call no round trip of its own.
			erased, err := s.erasedAmong(ctx, subjectsOf(rs))
			if err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
			rs = slices.DeleteFunc(rs, func(r *vigil.Reading) bool { return erased[r.SubjectID] })
			if len(rs) == 0 && len(qs) == 0 {
				return 0, nil
			}
			if staged, err = stageReadings(rs); err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
			continue
		}
		if attempt < maxAttempts && retryable(err) {
			continue
		}
		return 0, fmt.Errorf("write batches: %w", err)
	}
	for _, d := range done {
		d.r.ID, d.r.Key = d.id, d.key
	}
	return len(done), nil
}

// stored is a reading WriteBatches stored: its id and the key it was
// stored under.
type stored struct {
	r   *vigil.Reading
	id  int64
	key string
}

// stagedReading is a reading with its columns as stored.
type stagedReading struct {
	r          *vigil.Reading
	value      *float64
	received   *time.Time
	components *string
	derivation *string
}

func stageReadings(rs []*vigil.Reading) ([]stagedReading, error) {
	out := make([]stagedReading, len(rs))
	for i, r := range rs {
		st := stagedReading{r: r}
		if r.HasValue() {
			v := r.Value
			st.value = &v
		}
		if !r.Received.IsZero() {
			t := r.Received
			st.received = &t
		}
		if len(r.Components) > 0 {
			b, err := json.Marshal(r.Components)
			if err != nil {
				return nil, fmt.Errorf("encode components of reading %q: %w", r.Key, err)
			}
			c := string(b)
			st.components = &c
		}
		if r.Derivation != nil {
			b, err := json.Marshal(r.Derivation)
			if err != nil {
				return nil, fmt.Errorf("encode derivation of reading %q: %w", r.Key, err)
			}
			d := string(b)
			st.derivation = &d
		}
		out[i] = st
	}
	return out, nil
}

// writeBatches is one attempt at WriteBatches' transaction.
func (s *Store) writeBatches(ctx context.Context, rs []stagedReading, qs []*vigil.QuarantineItem) ([]stored, error) {
	var done []stored
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		done = done[:0]
		if len(rs) > 0 {
			if err := notErasedMeanwhile(ctx, tx, rs); err != nil {
				return err
			}
			var err error
			if done, err = writeReadings(ctx, tx, rs); err != nil {
				return err
			}
		}
		if len(qs) > 0 {
			return writeQuarantine(ctx, tx, qs)
		}
		return nil
	})
	return done, err
}

// writeReadings stores rs in tx (see WriteBatches) with their latest
// values and roll-ups.
func writeReadings(ctx context.Context, tx pgx.Tx, rs []stagedReading) ([]stored, error) {
	conn := tx.Conn()
	if conn.PgConn().CustomData()["stage"] == nil {
		if _, err := tx.Exec(ctx, createStage); err != nil {
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		conn.PgConn().CustomData()["stage"] = true
	}
	// Ids come from the sequence in one round trip, so that the staging
	// table is a plain COPY and each stored reading's id is known here.
	rows, err := tx.Query(ctx, "SELECT nextval('readings_id_seq') FROM generate_series(1, $1)", len(rs))
	if err != nil {
		return nil, fmt.Errorf("allocate reading ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("allocate reading ids: %w", err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{stageTable}, stageColumns, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
		r := rs[i].r
		return []any{int32(i), ids[i], r.SubjectID, r.DeviceID, r.Code, rs[i].value, r.Unit, r.Time, rs[i].received,
			r.Key, int32(r.Quality), r.Source, rs[i].components, rs[i].derivation, r.Performer}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("copy readings: %w", err)
	}
	rows, err = tx.Query(ctx, insertStaged)
	if err != nil {
		return nil, fmt.Errorf("insert readings: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("insert readings: %w", err)
	}
	in := make(map[int64]bool, len(got))
	for _, id := range got {
		in[id] = true
	}

	// Readings not stored: the same as a stored one (skipped), or a
	// different one under a stored key (stored under a key of its own), in
	// batch order, as if stored one by one.
	var done []stored
	var doneRows []stagedReading
	for i, st := range rs {
		if in[ids[i]] {
			done = append(done, stored{st.r, ids[i], st.r.Key})
			doneRows = append(doneRows, st)
			continue
		}
		id, key, err := storeConflicting(ctx, tx, st)
		if err != nil {
			return nil, err
		}
		if id != 0 {
			done = append(done, stored{st.r, id, key})
			doneRows = append(doneRows, st)
		}
	}
	if err := upsertDerived(ctx, tx, done, doneRows); err != nil {
		return nil, err
	}
	return done, nil
}

// storeConflicting handles a reading whose key is stored already: it
// returns 0 if the stored reading is the same, and otherwise stores it
// under its conflict key and returns its id and that key.
func storeConflicting(ctx context.Context, tx pgx.Tx, st stagedReading) (int64, string, error) {
	r := st.r
	key := r.Key
	for {
		same, err := sameReading(ctx, tx, key, st)
		if err != nil {
			return 0, "", err
		}
		if same {
			return 0, "", nil
		}
		if key != r.Key {
			// The conflict key covers the content: another reading under it
			// would take a SHA-256 collision.
			return 0, "", fmt.Errorf("insert reading %q: %w", key, vigil.Errorf(vigil.ECONFLICT, "conflict key taken by another reading"))
		}
		key = conflictKey(r)
		var id int64
		err = tx.QueryRow(ctx, insertOne, r.SubjectID, r.DeviceID, r.Code, st.value, r.Unit, r.Time, st.received,
			key, int32(r.Quality), r.Source, st.components, st.derivation, r.Performer).Scan(&id)
		if err == nil {
			return id, key, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, "", fmt.Errorf("insert reading %q: %w", key, err)
		}
	}
}

// sameQuality are the quality flags that make two readings differ: all but
// converted, which says how a reading was sent, not what was measured.
const sameQuality = ^vigil.QualityConverted

// sameReading reports whether the reading stored under key is st's: the
// same subject, device, code, time, value, unit, components and quality
// flags (but converted).
func sameReading(ctx context.Context, tx pgx.Tx, key string, st stagedReading) (bool, error) {
	var (
		subject, device, code, unit string
		v                           *float64
		t                           time.Time
		quality                     int32
		cs                          *string
	)
	err := tx.QueryRow(ctx, selectByKey, key).Scan(&subject, &device, &code, &v, &unit, &t, &quality, &cs)
	if err != nil {
		return false, fmt.Errorf("read reading %q: %w", key, err)
	}
	r := st.r
	sameValue := (v == nil) == (st.value == nil) && (v == nil || *v == *st.value)
	sameComps := (cs == nil) == (st.components == nil) && (cs == nil || *cs == *st.components)
	return subject == r.SubjectID && device == r.DeviceID && code == r.Code && unit == r.Unit &&
		t.Equal(r.Time.Truncate(time.Microsecond)) && vigil.Quality(quality)&sameQuality == r.Quality&sameQuality &&
		sameValue && sameComps, nil
}

// conflictKey is the key a reading is stored under when its own key holds
// a different reading: the key, "~", and the first 128 bits of the SHA-256
// of its content in hex. It is the same as package sqlite's, so that a
// reading keeps its key when a site moves from one store to the other.
func conflictKey(r *vigil.Reading) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %d %q %d", r.SubjectID, r.DeviceID, r.Code, r.Time.UnixMicro(), r.Unit, r.Quality&sameQuality)
	if r.HasValue() {
		fmt.Fprintf(h, " %x", math.Float64bits(r.Value))
	}
	for _, c := range r.Components {
		fmt.Fprintf(h, " %q %x %q", c.Code, math.Float64bits(c.Value), c.Unit)
	}
	return r.Key + "~" + hex.EncodeToString(h.Sum(nil)[:16])
}

// latestRow is a candidate row of the latest table.
type latestRow struct {
	subject, code string
	id            int64
	device        string
	value         *float64
	unit          string
	t             time.Time
	received      *time.Time
	key           string
	quality       int32
	source        string
	components    *string
	derivation    *string
	performer     string
}

// rollupWidth is the bucket width of reading_rollup.
const rollupWidth = 15 * time.Minute

type rollKey struct {
	subject, code string
	bucket        int64 // unix microseconds
}

type rollAcc struct {
	min, max, sum float64
	n             int64
}

// bucketOf returns the start of the width-wide bucket holding us (unix
// microseconds), counted from the epoch.
func bucketOf(us, width int64) int64 {
	return us - ((us%width)+width)%width
}

// upsertDerived keeps the latest table and the 15-minute roll-ups up to
// date with the readings stored: one statement each, rows in key order so
// that concurrent writers lock them in the same order.
func upsertDerived(ctx context.Context, tx pgx.Tx, done []stored, rows []stagedReading) error {
	if len(done) == 0 {
		return nil
	}
	newest := map[[2]string]latestRow{}
	offer := func(row latestRow) {
		k := [2]string{row.subject, row.code}
		if cur, ok := newest[k]; ok && (cur.t.After(row.t) || cur.t.Equal(row.t) && cur.id > row.id) {
			return
		}
		newest[k] = row
	}
	rolls := map[rollKey]*rollAcc{}
	w := rollupWidth.Microseconds()
	roll := func(subject, code string, t time.Time, v float64) {
		k := rollKey{subject, code, bucketOf(t.UnixMicro(), w)}
		if a := rolls[k]; a != nil {
			a.min, a.max, a.sum, a.n = min(a.min, v), max(a.max, v), a.sum+v, a.n+1
			return
		}
		rolls[k] = &rollAcc{min: v, max: v, sum: v, n: 1}
	}
	for i, d := range done {
		r, st := d.r, rows[i]
		t := r.Time.Truncate(time.Microsecond)
		row := latestRow{subject: r.SubjectID, code: r.Code, id: d.id, device: r.DeviceID, value: st.value, unit: r.Unit,
			t: t, received: st.received, key: d.key, quality: int32(r.Quality), source: r.Source,
			components: st.components, derivation: st.derivation, performer: r.Performer}
		offer(row)
		if r.HasValue() {
			roll(r.SubjectID, r.Code, t, r.Value)
		}
		for _, c := range r.Components {
			v := c.Value
			cr := row
			cr.code, cr.value, cr.unit, cr.components, cr.derivation = c.Code, &v, c.Unit, nil, nil
			offer(cr)
			roll(r.SubjectID, c.Code, t, c.Value)
		}
	}

	ls := make([]latestRow, 0, len(newest))
	for _, row := range newest {
		ls = append(ls, row)
	}
	slices.SortFunc(ls, func(a, b latestRow) int {
		return cmp.Or(strings.Compare(a.subject, b.subject), strings.Compare(a.code, b.code))
	})
	var (
		subj, code, dev, unit, key, src, perf []string
		ids                                   []int64
		vals                                  []*float64
		ts                                    []time.Time
		recv                                  []*time.Time
		qual                                  []int32
		comps, derivs                         []*string
	)
	for _, l := range ls {
		subj, code, ids, dev, vals, unit = append(subj, l.subject), append(code, l.code), append(ids, l.id), append(dev, l.device), append(vals, l.value), append(unit, l.unit)
		ts, recv, key, qual, src = append(ts, l.t), append(recv, l.received), append(key, l.key), append(qual, l.quality), append(src, l.source)
		comps, derivs, perf = append(comps, l.components), append(derivs, l.derivation), append(perf, l.performer)
	}
	if _, err := tx.Exec(ctx, upsertLatest, subj, code, ids, dev, vals, unit, ts, recv, key, qual, src, comps, derivs, perf); err != nil {
		return fmt.Errorf("update latest: %w", err)
	}

	rk := make([]rollKey, 0, len(rolls))
	for k := range rolls {
		rk = append(rk, k)
	}
	slices.SortFunc(rk, func(a, b rollKey) int {
		return cmp.Or(strings.Compare(a.subject, b.subject), strings.Compare(a.code, b.code), cmp.Compare(a.bucket, b.bucket))
	})
	var (
		rs, rc           []string
		rb               []time.Time
		rmin, rmax, rsum []float64
		rn               []int64
	)
	for _, k := range rk {
		a := rolls[k]
		rs, rc, rb = append(rs, k.subject), append(rc, k.code), append(rb, time.UnixMicro(k.bucket).UTC())
		rmin, rmax, rsum, rn = append(rmin, a.min), append(rmax, a.max), append(rsum, a.sum), append(rn, a.n)
	}
	if len(rk) > 0 {
		if _, err := tx.Exec(ctx, upsertRollup, rs, rc, rb, rmin, rmax, rsum, rn); err != nil {
			return fmt.Errorf("update roll-up: %w", err)
		}
	}
	return nil
}

// writeQuarantine stores the quarantine items not stored yet, in order.
func writeQuarantine(ctx context.Context, tx pgx.Tx, qs []*vigil.QuarantineItem) error {
	n := len(qs)
	ids, srcs, senders, reasons, codes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	recv, idx, payloads, trunc := make([]time.Time, n), make([]int32, n), make([][]byte, n), make([]bool, n)
	templates, versions := make([]string, n), make([]int32, n)
	for i, q := range qs {
		p := q.Payload
		if p == nil {
			p = []byte{}
		}
		ids[i], recv[i], srcs[i], senders[i], idx[i] = q.ID, q.Received, q.Source, q.Sender, int32(q.Index)
		reasons[i], codes[i], payloads[i], trunc[i] = q.Reason, q.Code, p, q.Truncated
		templates[i], versions[i] = q.Template, int32(q.TemplateVersion)
	}
	if _, err := tx.Exec(ctx, insertQuarantine, ids, recv, srcs, senders, idx, reasons, codes, payloads, trunc, templates, versions); err != nil {
		return fmt.Errorf("insert quarantine items: %w", err)
	}
	return nil
}

// checkReading reports why r cannot be stored, or nil.
func checkReading(r *vigil.Reading) error {
	switch {
	case r.SubjectID == "":
		return vigil.Errorf(vigil.EINVALID, "reading %q without subject", r.Key)
	case r.Code == "":
		return vigil.Errorf(vigil.EINVALID, "reading %q without code", r.Key)
	case r.Key == "":
		return vigil.Errorf(vigil.EINVALID, "reading without key")
	case r.Time.IsZero():
		return vigil.Errorf(vigil.EINVALID, "reading %q without time", r.Key)
	}
	return nil
}

// Readings returns one page of a subject's readings in time order (ties
// broken by ID), oldest first unless q.Desc. A Limit of 0 or more than
// vigil.MaxReadingLimit means vigil.MaxReadingLimit. Next is set only when
// more readings follow. EINVALID without a subject.
func (s *Store) Readings(ctx context.Context, q vigil.ReadingQuery) (vigil.ReadingPage, error) {
	if q.SubjectID == "" {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", vigil.Errorf(vigil.EINVALID, "subject required"))
	}
	limit := q.Limit
	if limit <= 0 || limit > vigil.MaxReadingLimit {
		limit = vigil.MaxReadingLimit
	}
	var a args
	where := []string{"subject_id = " + a.add(q.SubjectID)}
	switch len(q.Codes) {
	case 0:
	case 1:
		where = append(where, "code = "+a.add(q.Codes[0]))
	default:
		where = append(where, "code = ANY("+a.add(q.Codes)+")")
	}
	if !q.From.IsZero() {
		where = append(where, "t >= "+a.add(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "t < "+a.add(q.To))
	}
	if !q.ReceivedFrom.IsZero() {
		where = append(where, "received >= "+a.add(q.ReceivedFrom))
	}
	if !q.ReceivedTo.IsZero() {
		where = append(where, "received < "+a.add(q.ReceivedTo))
	}
	order := " ORDER BY t, id"
	if q.Desc {
		order = " ORDER BY t DESC, id DESC"
	}
	if q.After != nil {
		op := ">"
		if q.Desc {
			op = "<"
		}
		where = append(where, "(t, id) "+op+" ("+a.add(q.After.Time)+", "+a.add(q.After.ID)+")")
	}
	lim := a.add(limit + 1) // one more tells whether another page follows
	rows, err := s.pool.Query(ctx, "SELECT "+readingColumns+" FROM readings"+whereClause(where)+order+" LIMIT "+lim, a...)
	if err != nil {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", err)
	}
	rs, err := scanReadings(rows)
	if err != nil {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", err)
	}
	page := vigil.ReadingPage{Readings: rs}
	if len(rs) > limit {
		page.Readings = rs[:limit]
		last := page.Readings[limit-1]
		page.Next = &vigil.Cursor{Time: last.Time, ID: last.ID}
	}
	return page, nil
}

// Reading returns one stored reading by its ID; ENOTFOUND if none.
func (s *Store) Reading(ctx context.Context, id int64) (vigil.Reading, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+readingColumns+" FROM readings WHERE id = $1", id)
	if err != nil {
		return vigil.Reading{}, fmt.Errorf("query reading %d: %w", id, err)
	}
	rs, err := scanReadings(rows)
	if err != nil {
		return vigil.Reading{}, fmt.Errorf("query reading %d: %w", id, err)
	}
	if len(rs) == 0 {
		return vigil.Reading{}, vigil.Errorf(vigil.ENOTFOUND, "reading %d not found", id)
	}
	return rs[0], nil
}

// ReadingByKey returns the stored reading with idempotency key key;
// ENOTFOUND if none.
func (s *Store) ReadingByKey(ctx context.Context, key string) (vigil.Reading, error) {
	rows, err := s.pool.Query(ctx, "SELECT r."+strings.ReplaceAll(readingColumns, ", ", ", r.")+
		" FROM reading_keys k JOIN readings r ON r.subject_id = k.subject_id AND r.t = k.t AND r.id = k.id WHERE k.key = $1", key)
	if err != nil {
		return vigil.Reading{}, fmt.Errorf("query reading by key: %w", err)
	}
	rs, err := scanReadings(rows)
	if err != nil {
		return vigil.Reading{}, fmt.Errorf("query reading by key: %w", err)
	}
	if len(rs) == 0 {
		return vigil.Reading{}, vigil.Errorf(vigil.ENOTFOUND, "reading with key %q not found", key)
	}
	return rs[0], nil
}

// Latest returns the newest reading of each code for a subject, ordered by
// code. Component codes of panels are included as readings of their own,
// with the panel's ID, time, device and key.
func (s *Store) Latest(ctx context.Context, subjectID string) ([]vigil.Reading, error) {
	rows, err := s.pool.Query(ctx,
		"SELECT reading_id, subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer"+
			" FROM latest WHERE subject_id = $1 ORDER BY code", subjectID)
	if err != nil {
		return nil, fmt.Errorf("query latest: %w", err)
	}
	rs, err := scanReadings(rows)
	if err != nil {
		return nil, fmt.Errorf("query latest: %w", err)
	}
	return rs, nil
}

// usExpr is the SQL of a timestamptz column in unix microseconds.
func usExpr(col string) string {
	return "(extract(epoch FROM " + col + ") * 1000000)::bigint"
}

// Buckets summarises one code's values per time bucket, oldest first.
// Buckets start at multiples of q.Width since the Unix epoch; a bucket that
// starts before q.From summarises only the values from q.From on. Values of
// components of panels count as well as stand-alone readings. EINVALID
// without a subject, code, range (From before To) or width (a positive
// whole number of microseconds). Whole quarter-hours are answered from the
// 15-minute roll-ups.
func (s *Store) Buckets(ctx context.Context, q vigil.BucketQuery) ([]vigil.Bucket, error) {
	switch {
	case q.SubjectID == "":
		return nil, fmt.Errorf("query buckets: %w", vigil.Errorf(vigil.EINVALID, "subject required"))
	case q.Code == "":
		return nil, fmt.Errorf("query buckets: %w", vigil.Errorf(vigil.EINVALID, "code required"))
	case q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To):
		return nil, fmt.Errorf("query buckets: %w", vigil.Errorf(vigil.EINVALID, "range required: from before to"))
	case q.Width <= 0 || q.Width%time.Microsecond != 0:
		return nil, fmt.Errorf("query buckets: %w", vigil.Errorf(vigil.EINVALID, "width must be a positive whole number of microseconds"))
	}
	w := q.Width.Microseconds()
	rw := rollupWidth.Microseconds()
	from, to := q.From.UnixMicro(), q.To.UnixMicro()
	var sql string
	if w%rw == 0 && from%rw == 0 && to%rw == 0 {
		b := usExpr("bucket")
		sql = `SELECT ` + b + ` - mod(mod(` + b + `, $1) + $1, $1) AS b, min(min), max(max), sum(sum), sum(n)::bigint
			FROM reading_rollup WHERE subject_id = $2 AND code = $3 AND bucket >= $4 AND bucket < $5
			GROUP BY 1 ORDER BY 1`
	} else {
		sql = `SELECT us - mod(mod(us, $1) + $1, $1) AS b, min(v), max(v), sum(v), count(*) FROM (
				SELECT ` + usExpr("t") + ` AS us, value AS v FROM readings
				WHERE subject_id = $2 AND code = $3 AND t >= $4 AND t < $5 AND value IS NOT NULL
				UNION ALL
				SELECT ` + usExpr("r.t") + `, (c->>'value')::float8 FROM readings r, jsonb_array_elements(r.components::jsonb) c
				WHERE r.subject_id = $2 AND r.components IS NOT NULL AND r.t >= $4 AND r.t < $5 AND c->>'code' = $3
			) x GROUP BY 1 ORDER BY 1`
	}
	rows, err := s.pool.Query(ctx, sql, w, q.SubjectID, q.Code, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("query buckets: %w", err)
	}
	defer rows.Close()
	var bs []vigil.Bucket
	for rows.Next() {
		var b vigil.Bucket
		var us int64
		var sum float64
		if err := rows.Scan(&us, &b.Min, &b.Max, &sum, &b.Count); err != nil {
			return nil, fmt.Errorf("query buckets: %w", err)
		}
		b.Start = time.UnixMicro(us).UTC()
		b.Mean = sum / float64(b.Count)
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query buckets: %w", err)
	}
	return bs, nil
}

// scanReadings reads every row of rows (readingColumns) and closes rows.
func scanReadings(rows pgx.Rows) ([]vigil.Reading, error) {
	defer rows.Close()
	var rs []vigil.Reading
	for rows.Next() {
		var r vigil.Reading
		var (
			value         *float64
			received      *time.Time
			quality       int32
			comps, derivs *string
		)
		if err := rows.Scan(&r.ID, &r.SubjectID, &r.DeviceID, &r.Code, &value, &r.Unit, &r.Time, &received,
			&r.Key, &quality, &r.Source, &comps, &derivs, &r.Performer); err != nil {
			return nil, fmt.Errorf("scan reading: %w", err)
		}
		if value != nil {
			r.Value = *value
		}
		r.Received = zeroIfNil(received)
		r.Quality = vigil.Quality(quality)
		if comps != nil {
			if err := json.Unmarshal([]byte(*comps), &r.Components); err != nil {
				return nil, fmt.Errorf("decode components of reading %d: %w", r.ID, err)
			}
		}
		if derivs != nil {
			r.Derivation = &vigil.Derivation{}
			if err := json.Unmarshal([]byte(*derivs), r.Derivation); err != nil {
				return nil, fmt.Errorf("decode derivation of reading %d: %w", r.ID, err)
			}
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}
