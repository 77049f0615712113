-- The rules engine's checkpoint per log partition (decision 34): with
-- several nodes each partition's engine runs on one node at a time and
-- saves its patients' states and log position under its partition (part),
-- so that another node takes over from them. A database of one node has
-- everything in partition 0, which the rows it had move to.
ALTER TABLE engine_state ADD COLUMN part integer NOT NULL DEFAULT 0 CHECK (part >= 0);
ALTER TABLE engine_state DROP CONSTRAINT engine_state_pkey;
ALTER TABLE engine_state ADD PRIMARY KEY (part, subject_id);
-- Erasure deletes a patient's state whatever its partition.
CREATE INDEX engine_state_subject ON engine_state (subject_id);

ALTER TABLE engine_position ADD COLUMN part integer NOT NULL DEFAULT 0 CHECK (part >= 0);
ALTER TABLE engine_position DROP COLUMN id;
ALTER TABLE engine_position ADD PRIMARY KEY (part);
-- owner is the engine instance that last claimed the partition
-- (vigil.PartitionCheckpointer.ClaimPartition); '' before any claim.
ALTER TABLE engine_position ADD COLUMN owner text NOT NULL DEFAULT '';
