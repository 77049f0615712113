-- The second factor of local accounts and the identities of an OpenID
-- Connect provider.
--
-- user_totp holds one TOTP secret per user (RFC 6238). last_step is the
-- time step of the last accepted code: a code of that step or an earlier one
-- is refused, so a code is used once. recovery_codes holds SHA-256 hashes of
-- single-use recovery codes; used is the time of use (Unix microseconds).
CREATE TABLE user_totp (
	user_id   TEXT    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret    BLOB    NOT NULL,
	confirmed INTEGER NOT NULL DEFAULT 0,
	last_step INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE recovery_codes (
	user_id TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash    BLOB    NOT NULL,
	used    INTEGER,
	PRIMARY KEY (user_id, hash)
) STRICT, WITHOUT ROWID;

-- external_identities links an OpenID Connect provider's identity (issuer
-- and subject of its ID tokens) to one Vigil user.
CREATE TABLE external_identities (
	issuer  TEXT NOT NULL,
	subject TEXT NOT NULL,
	user_id TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (issuer, subject)
) STRICT, WITHOUT ROWID;
