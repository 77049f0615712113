-- display_name is how people see a user on the dashboard; '' shows the
-- username.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
