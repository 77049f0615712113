-- performer is the user id of the person who entered a reading by hand
-- (quality flag manual); '' when a device measured it or Vigil derived it.
-- latest keeps a copy, like every other column of readings.
ALTER TABLE readings ADD COLUMN performer TEXT NOT NULL DEFAULT '';
ALTER TABLE latest ADD COLUMN performer TEXT NOT NULL DEFAULT '';
