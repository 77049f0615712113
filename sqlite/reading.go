package sqlite

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// readingColumns are the columns scanReading reads, in order. The latest
// table has the same columns, with reading_id for id.
const readingColumns = "id, subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer"

const (
	insertReading = `INSERT INTO readings (subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`
	// selectByKey reads what makes a stored reading the same as another.
	selectByKey     = `SELECT subject_id, device_id, code, value, unit, t, quality, components FROM readings WHERE key = ?`
	insertComponent = `INSERT INTO reading_components (subject_id, code, t, reading_id, idx, value) VALUES (?, ?, ?, ?, ?, ?)`
	// upsertLatest replaces a subject's latest reading of a code only with a
	// newer one: later in time, or as late and stored later.
	upsertLatest = `INSERT INTO latest (subject_id, code, reading_id, device_id, value, unit, t, received, key, quality, source, components, derivation, performer)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject_id, code) DO UPDATE SET
			reading_id = excluded.reading_id, device_id = excluded.device_id, value = excluded.value,
			unit = excluded.unit, t = excluded.t, received = excluded.received, key = excluded.key,
			quality = excluded.quality, source = excluded.source, components = excluded.components,
			derivation = excluded.derivation, performer = excluded.performer
		WHERE excluded.t > latest.t OR (excluded.t = latest.t AND excluded.reading_id > latest.reading_id)`
	// upsertRollup adds a transaction's values of one subject, code and
	// 15-minute bucket to reading_rollup.
	upsertRollup = `INSERT INTO reading_rollup (subject_id, code, bucket, min, max, sum, n) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject_id, code, bucket) DO UPDATE SET
			min = min(reading_rollup.min, excluded.min), max = max(reading_rollup.max, excluded.max),
			sum = reading_rollup.sum + excluded.sum, n = reading_rollup.n + excluded.n`
	insertQuarantine = `INSERT INTO quarantine (id, received, source, sender, idx, reason, code, payload, truncated,
			template, template_version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
)

// WriteBatches stores the readings and quarantine items of bs in one
// transaction. A reading whose Key is stored already is skipped if it is the
// same reading (see sameReading); a different one is stored under its
// conflict key (conflictKey), which WriteBatches sets in Reading.Key, so
// that nothing written is dropped. A quarantine item whose ID is stored is
// skipped. It sets Reading.ID of the readings it stores (only once the
// transaction has committed) and returns how many readings it stored.
// EINVALID if a reading has no subject, code, key or time, or a quarantine
// item no ID; then nothing is stored.
func (s *Store) WriteBatches(ctx context.Context, bs []vigil.Batch) (int, error) {
	for i := range bs {
		for j := range bs[i].Readings {
			if err := checkReading(&bs[i].Readings[j]); err != nil {
				return 0, fmt.Errorf("write batches: %w", err)
			}
		}
		for j := range bs[i].Quarantine {
			if bs[i].Quarantine[j].ID == "" {
				return 0, fmt.Errorf("write batches: %w", vigil.Errorf(vigil.EINVALID, "quarantine item without id"))
			}
		}
	}

	type stored struct {
		r   *vigil.Reading
		id  int64
		key string // the key it was stored under
	}
	var done []stored
	err := s.write(ctx, func(tx *sql.Tx) error {
		w, err := newBatchWriter(ctx, tx)
		if err != nil {
			return err
		}
		defer w.close()
		erased, err := erasedSubjects(ctx, tx)
		if err != nil {
			return err
		}
		note := func(r *vigil.Reading, id int64, key string) { done = append(done, stored{r, id, key}) }
		pending := make([]*vigil.Reading, 0, insertChunk)
		for i := range bs {
			for j := range bs[i].Readings {
				r := &bs[i].Readings[j]
				if erased[r.SubjectID] {
					continue // still in the log when the patient was erased
				}
				if pending = append(pending, r); len(pending) == insertChunk {
					if err := w.readings(ctx, pending, note); err != nil {
						return err
					}
					pending = pending[:0]
				}
			}
			for j := range bs[i].Quarantine {
				if err := w.quarantine(ctx, &bs[i].Quarantine[j]); err != nil {
					return err
				}
			}
		}
		if err := w.readings(ctx, pending, note); err != nil {
			return err
		}
		if err := w.flushRollup(ctx); err != nil {
			return err
		}
		return w.flushLatest(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("write batches: %w", err)
	}
	for _, d := range done {
		d.r.ID, d.r.Key = d.id, d.key
	}
	return len(done), nil
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

// latestKey identifies a row of the latest table.
type latestKey struct{ subject, code string }

// latestRow is a row of the latest table: a reading, or a panel's component
// as a reading of its own. Values are as stored.
type latestRow struct {
	subject, code string
	id            int64
	device        string
	value         any
	unit          string
	t             int64
	received      any
	key           string
	quality       int64
	source        string
	components    any
	derivation    any
	performer     string
}

// batchWriter writes the readings and quarantine items of one transaction
// with statements prepared once. It collects the newest reading of each
// (subject, code) and upserts the latest table once per pair, in flushLatest.
type batchWriter struct {
	insReading, selByKey, insComponent, upsLatest, upsRollup, insQuarantine *sql.Stmt
	insChunk                                                                *sql.Stmt // insertReadings(insertChunk), prepared when first needed
	tx                                                                      *sql.Tx

	newest map[latestKey]latestRow
	rolls  map[rollKey]*rollAcc

	// maxID is the largest readings.id, read when a chunk first needs it
	// (maxRead) and kept as readings are inserted: the writer is the
	// transaction's only one, and SQLite gives a new row the largest
	// rowid plus one.
	maxID   int64
	maxRead bool
}

// rollupWidth is the bucket width of reading_rollup, in microseconds.
const rollupWidth = int64(15 * time.Minute / time.Microsecond)

type rollKey struct {
	subject, code string
	bucket        int64
}

type rollAcc struct {
	min, max, sum float64
	n             int64
}

// roll adds a stored value to its 15-minute roll-up.
func (w *batchWriter) roll(subject, code string, t int64, v float64) {
	k := rollKey{subject, code, t - ((t%rollupWidth)+rollupWidth)%rollupWidth}
	a := w.rolls[k]
	if a == nil {
		w.rolls[k] = &rollAcc{min: v, max: v, sum: v, n: 1}
		return
	}
	a.min, a.max, a.sum, a.n = min(a.min, v), max(a.max, v), a.sum+v, a.n+1
}

// flushRollup adds the transaction's roll-ups to reading_rollup.
func (w *batchWriter) flushRollup(ctx context.Context) error {
	for k, a := range w.rolls {
		if _, err := w.upsRollup.ExecContext(ctx, k.subject, k.code, k.bucket, a.min, a.max, a.sum, a.n); err != nil {
			return fmt.Errorf("update roll-up %s: %w", k.code, err)
		}
	}
	return nil
}

func newBatchWriter(ctx context.Context, tx *sql.Tx) (*batchWriter, error) {
	w := &batchWriter{tx: tx, newest: make(map[latestKey]latestRow), rolls: make(map[rollKey]*rollAcc)}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&w.insReading, insertReading},
		{&w.selByKey, selectByKey},
		{&w.insComponent, insertComponent},
		{&w.upsLatest, upsertLatest},
		{&w.upsRollup, upsertRollup},
		{&w.insQuarantine, insertQuarantine},
	} {
		st, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
		*p.stmt = st
	}
	return w, nil
}

func (w *batchWriter) close() {
	for _, st := range []*sql.Stmt{w.insReading, w.selByKey, w.insComponent, w.upsLatest, w.upsRollup, w.insQuarantine, w.insChunk} {
		if st != nil {
			st.Close()
		}
	}
}

// insertChunk is how many readings one INSERT statement stores
// (insertReadings): one statement per reading spent as much time in
// database/sql, the driver and statement setup as in SQLite's B-trees.
const insertChunk = 64

// insertReadings is insertReading for n readings. A reading whose key is
// stored already, or repeated earlier in the same statement, is not
// inserted.
func insertReadings(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO readings (subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(" ON CONFLICT (key) DO NOTHING")
	return b.String()
}

// readingRow is a reading's column values as stored.
type readingRow struct {
	value, comps, deriv, received any
	t                             int64
}

// row returns r's column values as stored.
func row(r *vigil.Reading) (readingRow, error) {
	rr := readingRow{t: r.Time.UnixMicro(), received: micros(r.Received)}
	if r.HasValue() {
		rr.value = r.Value
	}
	if len(r.Components) > 0 {
		b, err := json.Marshal(r.Components)
		if err != nil {
			return rr, fmt.Errorf("encode components of reading %q: %w", r.Key, err)
		}
		rr.comps = string(b)
	}
	if r.Derivation != nil {
		b, err := json.Marshal(r.Derivation)
		if err != nil {
			return rr, fmt.Errorf("encode derivation of reading %q: %w", r.Key, err)
		}
		rr.deriv = string(b)
	}
	return rr, nil
}

// readings stores rs, in order, as reading would one by one, and calls
// stored for each reading stored (not for one stored already). A chunk of
// insertChunk readings is inserted by one statement; the readings it did
// not insert (their key is taken) then go through reading, which finds
// them stored or stores them under their conflict key.
func (w *batchWriter) readings(ctx context.Context, rs []*vigil.Reading, stored func(r *vigil.Reading, id int64, key string)) error {
	if len(rs) < insertChunk {
		for _, r := range rs {
			id, key, err := w.reading(ctx, r)
			if err != nil {
				return err
			}
			if id != 0 {
				stored(r, id, key)
			}
		}
		return nil
	}
	if w.insChunk == nil {
		st, err := w.tx.PrepareContext(ctx, insertReadings(insertChunk))
		if err != nil {
			return fmt.Errorf("prepare statement: %w", err)
		}
		w.insChunk = st
	}
	rows := make([]readingRow, len(rs))
	args := make([]any, 0, 13*len(rs))
	for i, r := range rs {
		rr, err := row(r)
		if err != nil {
			return err
		}
		rows[i] = rr
		args = append(args, r.SubjectID, r.DeviceID, r.Code, rr.value, r.Unit, rr.t, rr.received,
			r.Key, int64(r.Quality), r.Source, rr.comps, rr.deriv, r.Performer)
	}
	if !w.maxRead {
		if err := w.tx.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM readings").Scan(&w.maxID); err != nil {
			return fmt.Errorf("insert readings: %w", err)
		}
		w.maxRead = true
	}
	res, err := w.insChunk.ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	last, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	before := w.maxID
	if n > 0 {
		w.maxID = last
	}
	if n == int64(len(rs)) && last == before+n {
		// All inserted, in the statement's order, each with the largest
		// id so far plus one: the ids are before+1 … last. (SQLite
		// chooses another way only once a rowid reaches 2⁶³−1, and then
		// last would not be before+n but by a chance of one in 2⁶³.)
		for i, r := range rs {
			id := before + 1 + int64(i)
			if err := w.inserted(ctx, r, rows[i], id, r.Key); err != nil {
				return err
			}
			stored(r, id, r.Key)
		}
		return nil
	}
	// Some were not inserted: the rows this statement inserted are those
	// above before.
	ids, err := w.insertedSince(ctx, before)
	if err != nil {
		return fmt.Errorf("insert readings: %w", err)
	}
	for i, r := range rs {
		// Rows are inserted in the statement's order, so of two readings
		// with one key the first is the one inserted.
		if id, ok := ids[r.Key]; ok {
			delete(ids, r.Key)
			if err := w.inserted(ctx, r, rows[i], id, r.Key); err != nil {
				return err
			}
			stored(r, id, r.Key)
			continue
		}
		id, key, err := w.reading(ctx, r)
		if err != nil {
			return err
		}
		if id != 0 {
			stored(r, id, key)
		}
	}
	return nil
}

// insertedSince returns the id of each reading with an id above id, by
// key.
func (w *batchWriter) insertedSince(ctx context.Context, id int64) (map[string]int64, error) {
	rows, err := w.tx.QueryContext(ctx, "SELECT id, key FROM readings WHERE id > ? ORDER BY id", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[string]int64)
	for rows.Next() {
		var id int64
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			return nil, err
		}
		ids[key] = id
	}
	return ids, rows.Err()
}

// reading stores r and returns its new id and the key it was stored under;
// id 0 if the same reading is stored already. A different reading under a
// stored key is stored under its conflict key.
func (w *batchWriter) reading(ctx context.Context, r *vigil.Reading) (int64, string, error) {
	rr, err := row(r)
	if err != nil {
		return 0, "", err
	}
	key := r.Key
	var id int64
	for {
		res, err := w.insReading.ExecContext(ctx, r.SubjectID, r.DeviceID, r.Code, rr.value, r.Unit, rr.t, rr.received,
			key, int64(r.Quality), r.Source, rr.comps, rr.deriv, r.Performer)
		if err != nil {
			return 0, "", fmt.Errorf("insert reading %q: %w", key, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, "", fmt.Errorf("insert reading %q: %w", key, err)
		}
		if n == 1 {
			if id, err = res.LastInsertId(); err != nil {
				return 0, "", fmt.Errorf("insert reading %q: %w", key, err)
			}
			w.maxID = max(w.maxID, id)
			break
		}
		same, err := w.sameReading(ctx, key, r, rr.value, rr.comps)
		if err != nil {
			return 0, "", err
		}
		if same {
			return 0, "", nil // stored already
		}
		if key != r.Key {
			// The conflict key covers the content: another reading under it
			// would take a SHA-256 collision.
			return 0, "", fmt.Errorf("insert reading %q: %w", key, vigil.Errorf(vigil.ECONFLICT, "conflict key taken by another reading"))
		}
		key = conflictKey(r)
	}
	if err := w.inserted(ctx, r, rr, id, key); err != nil {
		return 0, "", err
	}
	return id, key, nil
}

// inserted completes the storing of r, just inserted with id under key:
// its components, its roll-ups and its candidacy for the latest table.
func (w *batchWriter) inserted(ctx context.Context, r *vigil.Reading, rr readingRow, id int64, key string) error {
	row := latestRow{subject: r.SubjectID, code: r.Code, id: id, device: r.DeviceID, value: rr.value, unit: r.Unit,
		t: rr.t, received: rr.received, key: key, quality: int64(r.Quality), source: r.Source, components: rr.comps,
		derivation: rr.deriv, performer: r.Performer}
	w.offer(row)
	if r.HasValue() {
		w.roll(r.SubjectID, r.Code, rr.t, r.Value)
	}
	for i, c := range r.Components {
		if _, err := w.insComponent.ExecContext(ctx, r.SubjectID, c.Code, rr.t, id, i, c.Value); err != nil {
			return fmt.Errorf("insert component %s of reading %q: %w", c.Code, key, err)
		}
		cr := row
		cr.code, cr.value, cr.unit, cr.components, cr.derivation = c.Code, c.Value, c.Unit, nil, nil
		w.offer(cr)
		w.roll(r.SubjectID, c.Code, rr.t, c.Value)
	}
	return nil
}

// sameQuality are the quality flags that make two readings differ: all but
// converted, which says how a reading was sent, not what was measured.
const sameQuality = ^vigil.QualityConverted

// sameReading reports whether the reading stored under key is r: the same
// subject, device, code, time, value, unit, components and quality flags
// (but converted). value and comps are r's as stored.
func (w *batchWriter) sameReading(ctx context.Context, key string, r *vigil.Reading, value, comps any) (bool, error) {
	var (
		subject, device, code, unit string
		v                           sql.NullFloat64
		t, quality                  int64
		cs                          sql.NullString
	)
	err := w.selByKey.QueryRowContext(ctx, key).Scan(&subject, &device, &code, &v, &unit, &t, &quality, &cs)
	if err != nil {
		return false, fmt.Errorf("read reading %q: %w", key, err)
	}
	sameValue := v.Valid == (value != nil) && (!v.Valid || v.Float64 == value.(float64))
	sameComps := cs.Valid == (comps != nil) && (!cs.Valid || cs.String == comps.(string))
	return subject == r.SubjectID && device == r.DeviceID && code == r.Code && unit == r.Unit &&
		t == r.Time.UnixMicro() && vigil.Quality(quality)&sameQuality == r.Quality&sameQuality && sameValue && sameComps, nil
}

// conflictKey is the key a reading is stored under when its own key holds
// a different reading: the key, "~", and the first 128 bits of the SHA-256
// of its content in hex. Writing it again finds it stored.
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

// offer makes row a candidate for the latest table, kept if it is the
// newest of its (subject, code) in this transaction.
func (w *batchWriter) offer(row latestRow) {
	k := latestKey{row.subject, row.code}
	if cur, ok := w.newest[k]; ok && (cur.t > row.t || cur.t == row.t && cur.id > row.id) {
		return
	}
	w.newest[k] = row
}

// flushLatest upserts the newest candidate of each (subject, code).
func (w *batchWriter) flushLatest(ctx context.Context) error {
	for _, r := range w.newest {
		if _, err := w.upsLatest.ExecContext(ctx, r.subject, r.code, r.id, r.device, r.value, r.unit, r.t,
			r.received, r.key, r.quality, r.source, r.components, r.derivation, r.performer); err != nil {
			return fmt.Errorf("update latest %s: %w", r.code, err)
		}
	}
	return nil
}

// quarantine stores q unless its ID is stored already.
func (w *batchWriter) quarantine(ctx context.Context, q *vigil.QuarantineItem) error {
	payload := q.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err := w.insQuarantine.ExecContext(ctx, q.ID, q.Received.UnixMicro(), q.Source, q.Sender, q.Index,
		q.Reason, q.Code, payload, q.Truncated, q.Template, q.TemplateVersion)
	if err != nil {
		return fmt.Errorf("insert quarantine item %s: %w", q.ID, err)
	}
	return nil
}

// subjectCodes is a loose index scan of readings_subject_code_t listing
// the codes a subject (?1) has readings of, one index step a code: the
// common table expression c, whose last row is NULL. A subject's readings
// are indexed by code and time only (migration 0036), so queries over all
// of a subject's codes go code by code.
const subjectCodes = `WITH RECURSIVE c(code) AS (
		SELECT min(code) FROM readings WHERE subject_id = ?1
		UNION ALL
		SELECT (SELECT min(code) FROM readings WHERE subject_id = ?1 AND code > c.code) FROM c WHERE c.code IS NOT NULL
	) `

// Readings returns one page of a subject's readings in time order (ties
// broken by ID), oldest first unless q.Desc. A Limit of 0 or more than
// vigil.MaxReadingLimit means vigil.MaxReadingLimit. Next is set only when
// more readings follow. EINVALID without a subject.
//
// Readings are indexed by (subject, code, time, id), so one code is one
// index range. Several codes, or all of them, are read code by code (each
// range at most one page long) in one read transaction, so that the page
// is of one snapshot, and merged.
func (s *Store) Readings(ctx context.Context, q vigil.ReadingQuery) (vigil.ReadingPage, error) {
	if q.SubjectID == "" {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", vigil.Errorf(vigil.EINVALID, "subject required"))
	}
	limit := q.Limit
	if limit <= 0 || limit > vigil.MaxReadingLimit {
		limit = vigil.MaxReadingLimit
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", err)
	}
	defer tx.Rollback()
	codes := q.Codes
	if len(codes) == 0 {
		if codes, err = strings1(ctx, tx, subjectCodes+"SELECT code FROM c WHERE code IS NOT NULL", q.SubjectID); err != nil {
			return vigil.ReadingPage{}, fmt.Errorf("query readings: list codes: %w", err)
		}
	} else if len(codes) > 1 {
		codes = slices.Clone(codes)
		slices.Sort(codes)
		codes = slices.Compact(codes)
	}
	rs, err := mergeCodes(ctx, tx, q, codes, limit+1)
	if err != nil {
		return vigil.ReadingPage{}, fmt.Errorf("query readings: %w", err)
	}
	page := vigil.ReadingPage{Readings: rs}
	if len(rs) > limit { // one more tells that another page follows
		page.Readings = rs[:limit:limit]
		last := page.Readings[limit-1]
		page.Next = &vigil.Cursor{Time: last.Time, ID: last.ID}
	}
	return page, nil
}

// mergeCodes returns the first n of the readings q asks for of any of
// codes, in q's order: one query a code, read in step, each only as far as
// the merge takes from it.
func mergeCodes(ctx context.Context, tx *sql.Tx, q vigil.ReadingQuery, codes []string, n int) ([]vigil.Reading, error) {
	type head struct {
		rows *sql.Rows
		r    vigil.Reading
	}
	var heads []*head
	defer func() {
		for _, h := range heads {
			h.rows.Close()
		}
	}()
	// next advances h, dropping it from heads at its end.
	next := func(i int) error {
		h := heads[i]
		if h.rows.Next() {
			h.r = vigil.Reading{}
			return scanReading(h.rows, &h.r)
		}
		if err := h.rows.Err(); err != nil {
			return err
		}
		h.rows.Close()
		heads = slices.Delete(heads, i, i+1)
		return nil
	}
	for _, code := range codes {
		rows, err := readingsOfCode(ctx, tx, q, code, n)
		if err != nil {
			return nil, err
		}
		heads = append(heads, &head{rows: rows})
		if err := next(len(heads) - 1); err != nil {
			return nil, err
		}
	}
	before := func(a, b *vigil.Reading) bool {
		c := a.Time.Compare(b.Time)
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		return c < 0 != q.Desc
	}
	var rs []vigil.Reading
	for len(rs) < n && len(heads) > 0 {
		first := 0
		for i := 1; i < len(heads); i++ {
			if before(&heads[i].r, &heads[first].r) {
				first = i
			}
		}
		rs = append(rs, heads[first].r)
		if err := next(first); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// readingsOfCode queries up to n of the readings q asks for that are of
// code, in q's order.
func readingsOfCode(ctx context.Context, tx *sql.Tx, q vigil.ReadingQuery, code string, n int) (*sql.Rows, error) {
	where := []string{"subject_id = ?", "code = ?"}
	args := []any{q.SubjectID, code}
	if !q.From.IsZero() {
		where = append(where, "t >= ?")
		args = append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where = append(where, "t < ?")
		args = append(args, q.To.UnixMicro())
	}
	if !q.ReceivedFrom.IsZero() {
		where = append(where, "received >= ?")
		args = append(args, q.ReceivedFrom.UnixMicro())
	}
	if !q.ReceivedTo.IsZero() {
		where = append(where, "received < ?")
		args = append(args, q.ReceivedTo.UnixMicro())
	}
	order := " ORDER BY t, id"
	if q.Desc {
		order = " ORDER BY t DESC, id DESC"
	}
	if q.After != nil {
		if q.Desc {
			where = append(where, "(t, id) < (?, ?)")
		} else {
			where = append(where, "(t, id) > (?, ?)")
		}
		args = append(args, q.After.Time.UnixMicro(), q.After.ID)
	}
	args = append(args, n)
	return tx.QueryContext(ctx, "SELECT "+readingColumns+" FROM readings"+whereClause(where)+order+" LIMIT ?", args...)
}

// Reading returns one stored reading by its ID; ENOTFOUND if none.
func (s *Store) Reading(ctx context.Context, id int64) (vigil.Reading, error) {
	var r vigil.Reading
	err := scanReading(s.r.QueryRowContext(ctx, "SELECT "+readingColumns+" FROM readings WHERE id = ?", id), &r)
	if errors.Is(err, sql.ErrNoRows) {
		return r, vigil.Errorf(vigil.ENOTFOUND, "reading %d not found", id)
	}
	if err != nil {
		return r, fmt.Errorf("query reading %d: %w", id, err)
	}
	return r, nil
}

// ReadingByKey returns the stored reading with idempotency key key;
// ENOTFOUND if none.
func (s *Store) ReadingByKey(ctx context.Context, key string) (vigil.Reading, error) {
	var r vigil.Reading
	err := scanReading(s.r.QueryRowContext(ctx, "SELECT "+readingColumns+" FROM readings WHERE key = ?", key), &r)
	if errors.Is(err, sql.ErrNoRows) {
		return r, vigil.Errorf(vigil.ENOTFOUND, "reading with key %q not found", key)
	}
	if err != nil {
		return r, fmt.Errorf("query reading by key: %w", err)
	}
	return r, nil
}

// Latest returns the newest reading of each code for a subject, ordered by
// code. Component codes of panels are included as readings of their own,
// with the panel's ID, time, device and key.
func (s *Store) Latest(ctx context.Context, subjectID string) ([]vigil.Reading, error) {
	rows, err := s.r.QueryContext(ctx,
		"SELECT reading_id, subject_id, device_id, code, value, unit, t, received, key, quality, source, components, derivation, performer"+
			" FROM latest WHERE subject_id = ? ORDER BY code", subjectID)
	if err != nil {
		return nil, fmt.Errorf("query latest: %w", err)
	}
	rs, err := scanReadings(rows)
	if err != nil {
		return nil, fmt.Errorf("query latest: %w", err)
	}
	return rs, nil
}

// Buckets summarises one code's values per time bucket, oldest first.
// Buckets start at multiples of q.Width since the Unix epoch; a bucket that
// starts before q.From summarises only the values from q.From on. Values of
// components of panels count as well as stand-alone readings. EINVALID
// without a subject, code, range (From before To) or width (a positive
// whole number of microseconds).
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
	from, to := q.From.UnixMicro(), q.To.UnixMicro()
	if w%rollupWidth == 0 && from%rollupWidth == 0 && to%rollupWidth == 0 {
		return s.rollupBuckets(ctx, q.SubjectID, q.Code, from, to, w)
	}
	// start is t rounded down to a multiple of the width. SQLite's % takes
	// the sign of t, so times before the epoch need more arithmetic.
	start := "t - t % :w"
	if from < 0 {
		start = "t - ((t % :w) + :w) % :w"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT b, min(v), max(v), avg(v), count(*) FROM (
			SELECT `+start+` AS b, value AS v FROM readings
			WHERE subject_id = :subject AND code = :code AND t >= :from AND t < :to AND value IS NOT NULL
			UNION ALL
			SELECT `+start+` AS b, value AS v FROM reading_components
			WHERE subject_id = :subject AND code = :code AND t >= :from AND t < :to
		) GROUP BY b ORDER BY b`,
		sql.Named("w", w), sql.Named("subject", q.SubjectID), sql.Named("code", q.Code),
		sql.Named("from", from), sql.Named("to", to))
	if err != nil {
		return nil, fmt.Errorf("query buckets: %w", err)
	}
	defer rows.Close()
	var bs []vigil.Bucket
	for rows.Next() {
		var b vigil.Bucket
		var us int64
		if err := rows.Scan(&us, &b.Min, &b.Max, &b.Mean, &b.Count); err != nil {
			return nil, fmt.Errorf("query buckets: %w", err)
		}
		b.Start = time.UnixMicro(us).UTC()
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query buckets: %w", err)
	}
	return bs, nil
}

// rollupBuckets answers Buckets from reading_rollup: whole 15-minute
// buckets merged into buckets of width w (a multiple of 15 minutes) over
// [from, to), both on 15-minute boundaries.
func (s *Store) rollupBuckets(ctx context.Context, subject, code string, from, to, w int64) ([]vigil.Bucket, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT bucket - ((bucket % :w) + :w) % :w AS b, min(min), max(max), sum(sum), sum(n)
		FROM reading_rollup WHERE subject_id = :subject AND code = :code AND bucket >= :from AND bucket < :to
		GROUP BY b ORDER BY b`,
		sql.Named("w", w), sql.Named("subject", subject), sql.Named("code", code), sql.Named("from", from), sql.Named("to", to))
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

// scanReadings reads every row of rows with scanReading and closes rows.
func scanReadings(rows *sql.Rows) ([]vigil.Reading, error) {
	defer rows.Close()
	var rs []vigil.Reading
	for rows.Next() {
		var r vigil.Reading
		if err := scanReading(rows, &r); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// scanReading reads one row of readingColumns into r.
func scanReading(sc scanner, r *vigil.Reading) error {
	var value sql.NullFloat64
	var received sql.NullInt64
	var t int64
	var quality int64
	var comps, deriv sql.NullString
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.DeviceID, &r.Code, &value, &r.Unit, &t, &received,
		&r.Key, &quality, &r.Source, &comps, &deriv, &r.Performer); err != nil {
		return fmt.Errorf("scan reading: %w", err)
	}
	r.Value = value.Float64
	r.Time = time.UnixMicro(t).UTC()
	r.Received = timeOf(received)
	r.Quality = vigil.Quality(quality)
	if comps.Valid {
		if err := json.Unmarshal([]byte(comps.String), &r.Components); err != nil {
			return fmt.Errorf("decode components of reading %d: %w", r.ID, err)
		}
	}
	if deriv.Valid {
		r.Derivation = &vigil.Derivation{}
		if err := json.Unmarshal([]byte(deriv.String), r.Derivation); err != nil {
			return fmt.Errorf("decode derivation of reading %d: %w", r.ID, err)
		}
	}
	return nil
}
