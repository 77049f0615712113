package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PartitionWidth is the time span of one partition of the readings table.
// Partitions start at multiples of it since 1970-01-05 00:00 UTC (a Monday),
// so each holds one week, Monday to Monday (UTC), and is named
// readings_YYYYMMDD after its first day.
const PartitionWidth = 7 * 24 * time.Hour

// partitionOrigin is where partitions are counted from.
var partitionOrigin = time.Date(1970, 1, 5, 0, 0, 0, 0, time.UTC)

// partitionIndex returns the number of the partition holding time t.
func partitionIndex(t time.Time) int64 {
	d := t.Sub(partitionOrigin)
	i := int64(d / PartitionWidth)
	if d < 0 && d%PartitionWidth != 0 {
		i-- // round towards minus infinity
	}
	return i
}

// partitionStart returns the first instant of partition i.
func partitionStart(i int64) time.Time {
	return partitionOrigin.Add(time.Duration(i) * PartitionWidth)
}

// partitionName returns the table name of partition i.
func partitionName(i int64) string {
	return "readings_" + partitionStart(i).Format("20060102")
}

var partitionNameRE = regexp.MustCompile(`^readings_(\d{8})$`)

// partitions remembers which partitions exist, so that a batch whose
// readings fall in known partitions costs no DDL.
type partitions struct {
	mu    sync.Mutex
	known map[int64]bool
}

func newPartitions() *partitions { return &partitions{known: map[int64]bool{}} }

// forget clears what p knows (another node may have dropped partitions).
func (p *partitions) forget() {
	p.mu.Lock()
	p.known = map[int64]bool{}
	p.mu.Unlock()
}

// ensurePartitions creates the partitions numbered is that do not exist
// yet, each in a transaction of its own under an advisory lock, so that
// nodes creating the same partition at once do not collide.
func (s *Store) ensurePartitions(ctx context.Context, is []int64) error {
	s.parts.mu.Lock()
	var missing []int64
	for _, i := range is {
		if !s.parts.known[i] && !slices.Contains(missing, i) {
			missing = append(missing, i)
		}
	}
	s.parts.mu.Unlock()
	for _, i := range missing {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+lockKey("partitions")+")"); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", partitionName(i)).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			// Created apart and attached: ATTACH PARTITION takes a SHARE UPDATE
			// EXCLUSIVE lock on readings, which lets reads and writes go on,
			// where CREATE TABLE … PARTITION OF would take an ACCESS EXCLUSIVE
			// lock and queue every query on readings behind a long one. The
			// lock timeout bounds the wait all the same.
			from, to := partitionStart(i), partitionStart(i+1)
			name := pgx.Identifier{partitionName(i)}.Sanitize()
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "CREATE TABLE "+name+" (LIKE readings INCLUDING DEFAULTS)"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE readings ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
				name, from.Format(time.RFC3339), to.Format(time.RFC3339)))
			return err
		})
		if err != nil {
			return fmt.Errorf("create partition %s: %w", partitionName(i), err)
		}
		s.parts.mu.Lock()
		s.parts.known[i] = true
		s.parts.mu.Unlock()
	}
	return nil
}

// Partition is one partition of the readings table: readings with an
// effective time in [From, To).
type Partition struct {
	Name     string
	From, To time.Time
}

// Partitions returns the partitions of the readings table, oldest first.
func (s *Store) Partitions(ctx context.Context) ([]Partition, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var out []Partition
	for _, n := range names {
		m := partitionNameRE.FindStringSubmatch(n)
		if m == nil {
			continue // not one of ours: left alone
		}
		from, err := time.Parse("20060102", m[1])
		if err != nil {
			continue
		}
		out = append(out, Partition{Name: n, From: from, To: from.Add(PartitionWidth)})
	}
	slices.SortFunc(out, func(a, b Partition) int { return a.From.Compare(b.From) })
	return out, nil
}

// errHeldPartition stops the drop of a partition that holds readings of a
// patient under legal hold.
var errHeldPartition = errors.New("partition holds readings under legal hold")

// sqlUndefinedTable is PostgreSQL's undefined_table error.
const sqlUndefinedTable = "42P01"

// PartitionsAhead is how many partitions after the current one
// MaintainPartitions keeps created, so that the writer never waits for DDL
// at a week's turn.
const PartitionsAhead = 2

// MaintainPartitions creates the partition of now and the PartitionsAhead
// after it, and, if retention is positive, drops every partition whose
// readings are all older than now − retention, with their idempotency keys,
// and deletes their latest values and 15-minute roll-ups. A partition is
// dropped whole or not at all, so readings are kept up to one
// PartitionWidth longer than retention; a partition holding readings of a
// patient under legal hold is not dropped at all (it stays until the hold
// is cleared; RetentionStore.DeleteReadingsBefore deletes the others' rows). It returns the names of the
// partitions dropped. Safe to run from several nodes at once.
func (s *Store) MaintainPartitions(ctx context.Context, now time.Time, retention time.Duration) (dropped []string, err error) {
	cur := partitionIndex(now)
	ahead := make([]int64, 0, PartitionsAhead+1)
	for i := int64(0); i <= PartitionsAhead; i++ {
		ahead = append(ahead, cur+i)
	}
	if err := s.ensurePartitions(ctx, ahead); err != nil {
		return nil, fmt.Errorf("maintain partitions: %w", err)
	}
	if retention <= 0 {
		return nil, nil
	}
	cutoff := now.Add(-retention)
	// The keys' block range index summarises the ranges filled since the
	// last time, so that the deletes below read only the old keys' pages.
	if _, err := s.pool.Exec(ctx, "SELECT brin_summarize_new_values('reading_keys_t'::regclass)"); err != nil {
		return nil, fmt.Errorf("maintain partitions: summarise reading_keys_t: %w", err)
	}
	ps, err := s.Partitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintain partitions: %w", err)
	}
	for _, p := range ps {
		if p.To.After(cutoff) {
			break
		}
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+lockKey("partitions")+")"); err != nil {
				return err
			}
			// Dropping a partition locks readings whole: a long query on it
			// makes the drop wait, and every other query wait behind the drop,
			// so the wait is bounded; the next run tries again.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
				return err
			}
			// A legal hold keeps a patient's readings: a partition holding
			// any of a held patient's is not dropped (the rows of the others
			// go by RetentionStore's deletes instead). legal_holds is locked
			// against new holds until the drop commits.
			if _, err := tx.Exec(ctx, "LOCK TABLE legal_holds IN SHARE MODE"); err != nil {
				return err
			}
			var held bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{p.Name}.Sanitize()+
				" WHERE subject_id IN (SELECT subject_id FROM legal_holds))").Scan(&held); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == sqlUndefinedTable {
					return nil // dropped by another node meanwhile
				}
				return err
			}
			if held {
				return errHeldPartition
			}
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.Name}.Sanitize()); err != nil {
				return err
			}
			// The week's keys, latest values and roll-ups, not those of an
			// earlier partition kept for a hold, nor those of held patients.
			for _, q := range []string{
				"DELETE FROM reading_keys WHERE t >= $1 AND t < $2",
				"DELETE FROM latest WHERE t >= $1 AND t < $2 AND subject_id NOT IN (SELECT subject_id FROM legal_holds)",
				"DELETE FROM reading_rollup WHERE bucket >= $1 AND bucket < $2 AND subject_id NOT IN (SELECT subject_id FROM legal_holds)",
			} {
				if _, err := tx.Exec(ctx, q, p.From, p.To); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, errHeldPartition) {
			continue
		}
		if err != nil {
			return dropped, fmt.Errorf("drop partition %s: %w", p.Name, err)
		}
		dropped = append(dropped, p.Name)
	}
	if len(dropped) > 0 {
		s.parts.forget()
	}
	return dropped, nil
}
