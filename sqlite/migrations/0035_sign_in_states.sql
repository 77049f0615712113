-- sign_in_states holds auth.Lockout's state when it is kept in the store
-- (vigil.SignInFailureStore, decision 36): per key ("user:<name>",
-- "addr:<address>", "trust:<address>|<name>") the JSON of a
-- vigil.SignInState, and when it was last written (Unix microseconds).
-- Rows are deleted when they remember nothing.
CREATE TABLE sign_in_states (
	key     TEXT    PRIMARY KEY,
	state   TEXT    NOT NULL,
	updated INTEGER NOT NULL
) STRICT;
