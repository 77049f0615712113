-- auth.Lockout's state kept in the store so that every node counts the
-- same failed sign-ins (vigil.SignInFailureStore, decision 36): the table
-- of package sqlite's migration 0035, on PostgreSQL. Per key the JSON of a
-- vigil.SignInState; rows are deleted when they remember nothing.
CREATE TABLE sign_in_states (
	key     text        PRIMARY KEY,
	state   text        NOT NULL,
	updated timestamptz NOT NULL
);
