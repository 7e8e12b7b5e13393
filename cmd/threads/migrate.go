package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// runMigrate applies pending migrations and reports the schema version.
// serve does the same at start; this is for deploys that migrate first.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("migrate", stderr)
	var dbf dbFlags
	dbf.register(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	db, err := dbf.open(ctx, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d (%d migrations applied now)\n", v, db.Migrated())
	return nil
}
