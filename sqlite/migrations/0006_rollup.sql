-- reading_rollup summarises the values of each subject and code per 15
-- minutes (bucket: the time rounded down to a multiple of 900,000,000 µs),
-- kept by the store writer in the same transaction as the readings, so that
-- charts and worklist trend lines over long windows read one row per 15
-- minutes instead of every value. Components of panels count for their own
-- code, as in Buckets.
CREATE TABLE reading_rollup (
	subject_id TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	bucket     INTEGER NOT NULL, -- unix microseconds, a multiple of 900,000,000
	min        REAL    NOT NULL,
	max        REAL    NOT NULL,
	sum        REAL    NOT NULL,
	n          INTEGER NOT NULL,
	PRIMARY KEY (subject_id, code, bucket)
) STRICT, WITHOUT ROWID;

INSERT INTO reading_rollup (subject_id, code, bucket, min, max, sum, n)
SELECT subject_id, code, b, min(v), max(v), sum(v), count(*) FROM (
	SELECT subject_id, code, t - ((t % 900000000) + 900000000) % 900000000 AS b, value AS v
	FROM readings WHERE value IS NOT NULL
	UNION ALL
	SELECT subject_id, code, t - ((t % 900000000) + 900000000) % 900000000, value FROM reading_components
) GROUP BY subject_id, code, b;
