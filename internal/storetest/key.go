package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threads-server/threads"
)

var keyTests = []leaf{
	{"CreateFindList", testKeys},
	{"Revoke", testRevokeKey},
	{"FirstKey", testFirstKey},
}

// testFirstKey: of many concurrent first keys on an empty store, exactly
// one is created; on a store with keys, none is.
func testFirstKey(t *testing.T, s threads.Store) {
	const n = 8
	created := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			k, _, err := threads.NewKey("default", false)
			if err != nil {
				t.Error(err)
				return
			}
			ok, err := s.CreateFirstKey(t.Context(), k)
			if err != nil {
				t.Errorf("CreateFirstKey: %v", err)
			}
			if ok {
				if k.CreatedAt.IsZero() {
					t.Error("CreateFirstKey did not set CreatedAt")
				}
				created <- k.ID
			}
		})
	}
	wg.Wait()
	close(created)
	var ids []string
	for id := range created {
		ids = append(ids, id)
	}
	if len(ids) != 1 || countKeys(t, s) != 1 {
		t.Fatalf("%d first keys reported created, %d stored; want 1", len(ids), countKeys(t, s))
	}
	k, _, _ := threads.NewKey("default", false)
	if ok, err := s.CreateFirstKey(t.Context(), k); ok || err != nil {
		t.Fatalf("CreateFirstKey on a store with a key: %v, %v; want false, nil", ok, err)
	}
}

func newKey(t *testing.T, s threads.Store, tenant string, admin bool) (*threads.Key, string) {
	t.Helper()
	k, secret, err := threads.NewKey(tenant, admin)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	if err := s.CreateKey(t.Context(), k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return k, secret
}

func countKeys(t *testing.T, s threads.Store) int {
	t.Helper()
	n, err := s.CountKeys(t.Context())
	if err != nil {
		t.Fatalf("CountKeys: %v", err)
	}
	return n
}

func listKeys(t *testing.T, s threads.Store) []*threads.Key {
	t.Helper()
	ks, err := s.ListKeys(t.Context())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	return ks
}

var byKeyID = cmpopts.SortSlices(func(a, b *threads.Key) bool { return a.ID < b.ID })

func testKeys(t *testing.T, s threads.Store) {
	ctx := t.Context()
	if n := countKeys(t, s); n != 0 {
		t.Fatalf("fresh store: CountKeys = %d, want 0", n)
	}
	if ks := listKeys(t, s); len(ks) != 0 {
		t.Fatalf("fresh store: ListKeys has %d keys, want none", len(ks))
	}

	before := time.Now()
	user, userSecret := newKey(t, s, tenantA, false)
	admin, adminSecret := newKey(t, s, tenantB, true)
	checkTime(t, "CreatedAt", user.CreatedAt, before, time.Now())
	checkTime(t, "admin CreatedAt", admin.CreatedAt, before, time.Now())

	for _, tt := range []struct {
		secret string
		want   *threads.Key
	}{{userSecret, user}, {adminSecret, admin}} {
		got, err := s.FindKey(ctx, threads.HashKey(tt.secret))
		if err != nil {
			t.Fatalf("FindKey(%s): %v", tt.want.ID, err)
		}
		diff(t, "FindKey "+tt.want.ID, tt.want, got)
		if got.Revoked() {
			t.Errorf("new key %s is revoked", got.ID)
		}
	}
	if !admin.Admin || user.Admin {
		t.Fatalf("admin flags: user %v, admin %v", user.Admin, admin.Admin)
	}

	_, err := s.FindKey(ctx, threads.HashKey(userSecret+"x"))
	wantCode(t, "FindKey(unknown hash)", err, threads.ENOTFOUND)
	_, err = s.FindKey(ctx, nil)
	wantCode(t, "FindKey(nil)", err, threads.ENOTFOUND)
	// The stored hash is the key's identity, not its prefix.
	_, err = s.FindKey(ctx, bytes.Clone(user.Hash[:16]))
	wantCode(t, "FindKey(hash prefix)", err, threads.ENOTFOUND)

	if d := cmp.Diff([]*threads.Key{user, admin}, listKeys(t, s), byKeyID); d != "" {
		t.Errorf("ListKeys (-want +got):\n%s", d)
	}
	if n := countKeys(t, s); n != 2 {
		t.Errorf("CountKeys = %d, want 2", n)
	}
}

func testRevokeKey(t *testing.T, s threads.Store) {
	ctx := t.Context()
	k, secret := newKey(t, s, tenantA, false)
	other, otherSecret := newKey(t, s, tenantA, false)

	before := time.Now()
	if err := s.RevokeKey(ctx, k.ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	after := time.Now()
	got, err := s.FindKey(ctx, threads.HashKey(secret))
	if err != nil {
		t.Fatalf("FindKey(revoked): %v", err)
	}
	if !got.Revoked() {
		t.Fatalf("revoked key: RevokedAt is zero")
	}
	checkTime(t, "RevokedAt", got.RevokedAt, before, after)
	if got.RevokedAt.Before(got.CreatedAt) {
		t.Errorf("RevokedAt %v is before CreatedAt %v", got.RevokedAt, got.CreatedAt)
	}
	want := *k
	want.RevokedAt = got.RevokedAt
	diff(t, "revoked key", &want, got)

	stillValid, err := s.FindKey(ctx, threads.HashKey(otherSecret))
	if err != nil {
		t.Fatalf("FindKey(other): %v", err)
	}
	diff(t, "other key", other, stillValid)

	if d := cmp.Diff([]*threads.Key{&want, other}, listKeys(t, s), byKeyID); d != "" {
		t.Errorf("ListKeys after revoke (-want +got):\n%s", d)
	}
	// A revoked key still exists: it counts, so revoking the last key does
	// not make the store look new.
	if n := countKeys(t, s); n != 2 {
		t.Errorf("CountKeys after revoke = %d, want 2", n)
	}
	wantCode(t, "RevokeKey(unknown)", s.RevokeKey(ctx, "key_0000000000000000"), threads.ENOTFOUND)
	wantCode(t, "RevokeKey(empty)", s.RevokeKey(ctx, ""), threads.ENOTFOUND)
}
