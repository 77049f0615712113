-- Systems registered to send HL7 v2 messages over MLLP, named as their
-- messages name them: MSH-3 (application) and MSH-4 (facility). A message
-- from a pair not registered here is refused.
CREATE TABLE hl7_senders (
	id                  TEXT    PRIMARY KEY,
	application         TEXT    NOT NULL,
	facility            TEXT    NOT NULL,
	assigning_authority TEXT    NOT NULL DEFAULT '',
	created             INTEGER NOT NULL, -- unix microseconds, UTC
	UNIQUE (application, facility)
) STRICT;
