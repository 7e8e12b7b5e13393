package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/threads-server/threads"
)

// runKeys administers API keys directly in the database: keys are the
// root of trust, so they are managed by whoever can reach the database,
// not through the API.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: threads keys create TENANT [--admin] | keys list | keys revoke KEY_ID\n")
		return errUsage
	}
	fs := newFlags("keys "+args[0], stderr)
	var dbf dbFlags
	dbf.register(fs)
	admin := fs.Bool("admin", false, "with create: the key may act for any tenant named in micro-namespace")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"create": 1, "list": 0, "revoke": 1}
	n, ok := want[args[0]]
	if !ok || len(pos) != n {
		fmt.Fprint(stderr, "usage: threads keys create TENANT [--admin] | keys list | keys revoke KEY_ID\n")
		return errUsage
	}
	db, err := dbf.open(ctx, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	switch args[0] {
	case "create":
		secret, err := createKey(ctx, db, pos[0], *admin)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, secret)
	case "list":
		keys, err := db.ListKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tADMIN\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.Revoked() {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", k.ID, k.Tenant, k.Admin, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if err := db.RevokeKey(ctx, pos[0]); err != nil {
			return fmt.Errorf("revoke %s: %w", pos[0], err)
		}
		fmt.Fprintf(stderr, "revoked %s\n", pos[0])
	}
	return nil
}

// createKey makes and stores a key, returning its secret.
func createKey(ctx context.Context, s threads.KeyStore, tenant string, admin bool) (string, error) {
	k, secret, err := threads.NewKey(tenant, admin)
	if err != nil {
		return "", err
	}
	if err := s.CreateKey(ctx, k); err != nil {
		return "", err
	}
	return secret, nil
}
