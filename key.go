package threads

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Key is an API key. The secret is shown once, when the key is made; only
// its SHA-256 is stored. A fast hash is enough because the secret is 256
// random bits: there is nothing to brute-force that a slow hash would
// protect.
type Key struct {
	ID        string // public, for listing and revoking: "key_" + 16 hex digits
	Tenant    string
	Admin     bool // may act for any tenant named in micro-namespace
	Hash      []byte
	CreatedAt time.Time
	RevokedAt time.Time // zero while the key is valid
}

// Revoked reports whether the key has been revoked.
func (k *Key) Revoked() bool { return !k.RevokedAt.IsZero() }

// keyPrefix starts every secret, so a leaked key is recognisable (secret
// scanners) and a wrong kind of token is refused before any lookup.
const keyPrefix = "thr_"

// keySecretLen is the length of a secret: the prefix and 32 random bytes
// in unpadded base64url.
const keySecretLen = len(keyPrefix) + 43

// NewKey makes a key for tenant and returns it with its secret.
func NewKey(tenant string, admin bool) (*Key, string, error) {
	if err := CheckTenant(tenant); err != nil {
		return nil, "", Errorf(EBADREQUEST, "%v", err)
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, "", err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, "", err
	}
	s := keyPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	k := &Key{ID: "key_" + hex.EncodeToString(id[:]), Tenant: tenant, Admin: admin, Hash: HashKey(s)}
	return k, s, nil
}

// HashKey returns the stored form of a secret.
func HashKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SameHash compares two key hashes in constant time.
func SameHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// ParseBearer extracts the secret from an Authorization header value and
// checks its shape. It never echoes the value in its error.
func ParseBearer(header string) (string, error) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", Errorf(EUNAUTHORIZED, "an Authorization: Bearer <key> header is required")
	}
	secret = strings.TrimSpace(secret)
	if len(secret) != keySecretLen || !strings.HasPrefix(secret, keyPrefix) {
		return "", Errorf(EUNAUTHORIZED, "invalid API key")
	}
	for i := len(keyPrefix); i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", Errorf(EUNAUTHORIZED, "invalid API key")
		}
	}
	return secret, nil
}

// KeyStore keeps API keys. Keys are looked up by hash before the tenant
// is known, so this is the one table whose key does not start with the
// tenant.
type KeyStore interface {
	CreateKey(ctx context.Context, k *Key) error
	// CreateFirstKey stores k only if there is no key at all, atomically:
	// of several replicas starting together on an empty database, one
	// creates the first key and the others report false.
	CreateFirstKey(ctx context.Context, k *Key) (bool, error)
	// FindKey returns the key with this hash, revoked or not; ENOTFOUND
	// when there is none.
	FindKey(ctx context.Context, hash []byte) (*Key, error)
	ListKeys(ctx context.Context) ([]*Key, error)
	// RevokeKey marks the key revoked; ENOTFOUND when there is no such key.
	RevokeKey(ctx context.Context, id string) error
	CountKeys(ctx context.Context) (int, error)
}
