package postgres

import (
	"context"
	"fmt"
)

// StoreIdentity names the store s is: "postgres:" then the database
// cluster's system identifier (pg_control_system(), the same through any
// address or replica of the cluster), the database and the schema the
// store's tables are in, separated by '/'. Every node on the same database
// and schema gets the same identity; another schema, database or cluster
// another one. A role that may not read the system identifier gets the
// server's address and port in its place (then the same database reached
// through two addresses has two identities). It holds no credential.
func (s *Store) StoreIdentity(ctx context.Context) (string, error) {
	var db, schema string
	if err := s.pool.QueryRow(ctx, "SELECT current_database(), coalesce(current_schema(), '')").Scan(&db, &schema); err != nil {
		return "", fmt.Errorf("store identity: %w", err)
	}
	var cluster string
	if err := s.pool.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&cluster); err != nil {
		if err := s.pool.QueryRow(ctx, "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port()::text, '')").Scan(&cluster); err != nil {
			return "", fmt.Errorf("store identity: %w", err)
		}
	}
	return "postgres:" + cluster + "/" + db + "/" + schema, nil
}
