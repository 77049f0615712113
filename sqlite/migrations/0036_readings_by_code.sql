-- A subject's readings are indexed by (subject_id, code, t, id, value)
-- alone: the (subject_id, t, id) index is dropped. Every reading stored
-- paid for an entry in it (a quarter of the store writer's B-tree work),
-- and queries over all of a subject's codes now read the code index code by
-- code (a loose index scan lists the codes) and merge.
DROP INDEX readings_subject_t_id;
