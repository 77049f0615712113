-- The rules engine's checkpoint per log partition (decision 34): with
-- several nodes each partition's engine runs on one node at a time and
-- saves its patients' states and log position under its partition (part),
-- so that another node takes over from them. A store of one node has
-- everything in partition 0, which the rows it had move to.
CREATE TABLE engine_state_new (
	part       INTEGER NOT NULL DEFAULT 0 CHECK (part >= 0),
	subject_id TEXT    NOT NULL,
	state      BLOB    NOT NULL,
	PRIMARY KEY (part, subject_id)
) STRICT, WITHOUT ROWID;
INSERT INTO engine_state_new (part, subject_id, state) SELECT 0, subject_id, state FROM engine_state;
DROP TABLE engine_state;
ALTER TABLE engine_state_new RENAME TO engine_state;
-- Erasure deletes a patient's state whatever its partition.
CREATE INDEX engine_state_subject ON engine_state (subject_id);

-- owner is the engine instance that last claimed the partition
-- (vigil.PartitionCheckpointer.ClaimPartition); '' before any claim.
CREATE TABLE engine_position_new (
	part     INTEGER PRIMARY KEY CHECK (part >= 0),
	position INTEGER NOT NULL,
	owner    TEXT    NOT NULL DEFAULT ''
) STRICT;
INSERT INTO engine_position_new (part, position) SELECT 0, position FROM engine_position;
DROP TABLE engine_position;
ALTER TABLE engine_position_new RENAME TO engine_position;
