"""A real MongoDB-wire server for tests: FerretDB 1.x on SQLite, built from the Go module proxy."""
