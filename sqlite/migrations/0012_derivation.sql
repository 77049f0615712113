-- derivation records what a derived reading (NEWS2) was computed from: a
-- JSON vigil.Derivation (the keys of its input readings, the inputs missing
-- or stale); NULL for every other reading. latest keeps a copy, so that the
-- newest score shows its completeness without a second lookup.
ALTER TABLE readings ADD COLUMN derivation TEXT;
ALTER TABLE latest ADD COLUMN derivation TEXT;
