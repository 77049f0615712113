-- The alert lifecycle's own clock and memory (package alerting):
--   raised:         when Vigil last raised the alert (opened, re-raised at a
--                   priority nobody had acknowledged, re-opened); escalation
--                   and reminders run from it. Existing alerts: their opening.
--   episodes:       how many times the condition began; re-opening within
--                   the re-arm window adds one.
--   acked_priority: the highest priority the acknowledgement or snooze
--                   covers; '' when none. Existing acknowledged or snoozed
--                   alerts: their priority.
ALTER TABLE alerts ADD COLUMN raised INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN episodes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN acked_priority TEXT NOT NULL DEFAULT '';
UPDATE alerts SET raised = opened;
UPDATE alerts SET acked_priority = priority WHERE acknowledged IS NOT NULL OR snoozed_until IS NOT NULL;

-- The newest alert of a patient and condition key, for re-opening.
CREATE INDEX alerts_key ON alerts (subject_id, key, resolved);
