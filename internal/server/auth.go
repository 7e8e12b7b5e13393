package server

import (
	"context"
	"net/http"

	"github.com/threads-server/threads"
)

type tenantKey struct{}

// withTenant records the tenant a request acts for.
func withTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// tenantFrom returns the tenant set by authentication. Every handler calls
// it; its absence is a wiring bug, answered as INTERNAL rather than
// served without a tenant.
func tenantFrom(ctx context.Context) (string, error) {
	t, _ := ctx.Value(tenantKey{}).(string)
	if t == "" {
		return "", threads.Errorf(threads.EINTERNAL, "internal error")
	}
	return t, nil
}

// admit is the one admission path of every call, on every protocol and
// for streams (the Connect interceptor, the m3o routes, openStream): the
// caller's key, the tenant it acts for (in the returned context), and the
// key's rate, whose headers go into limits. Each path records the call
// with finish.
func (s *Server) admit(ctx context.Context, h, limits http.Header) (context.Context, *threads.Key, error) {
	tenant, key, err := s.authenticate(ctx, h)
	if err != nil {
		return ctx, nil, err
	}
	if err := s.limiter.allow(key.ID, limits); err != nil {
		return ctx, nil, err
	}
	return withTenant(ctx, tenant), key, nil
}

// namespaceHeader is m3o's tenant header.
const namespaceHeader = "Micro-Namespace"

// authenticate resolves the tenant a request acts for from its headers:
// the bearer key's own tenant, or, for an admin key, the tenant named in
// micro-namespace. A tenant key naming another tenant is FORBIDDEN. The
// key is returned too, for limits that count per key.
func (s *Server) authenticate(ctx context.Context, h http.Header) (string, *threads.Key, error) {
	// Two credentials, or two tenants, are ambiguous: a proxy reading the
	// other one would authorize something else. Refuse rather than pick.
	if len(h.Values("Authorization")) > 1 {
		return "", nil, threads.Errorf(threads.EUNAUTHORIZED, "more than one Authorization header")
	}
	if len(h.Values(namespaceHeader)) > 1 {
		return "", nil, threads.Errorf(threads.EBADREQUEST, "more than one micro-namespace header")
	}
	secret, err := threads.ParseBearer(h.Get("Authorization"))
	if err != nil {
		return "", nil, err
	}
	hash := threads.HashKey(secret)
	key, err := s.keys.find(ctx, s.store, hash)
	if threads.ErrorCode(err) == threads.ENOTFOUND {
		return "", nil, threads.Errorf(threads.EUNAUTHORIZED, "invalid API key")
	}
	if err != nil {
		return "", nil, err
	}
	if !threads.SameHash(key.Hash, hash) {
		return "", nil, threads.Errorf(threads.EUNAUTHORIZED, "invalid API key")
	}
	if key.Revoked() {
		return "", nil, threads.Errorf(threads.EUNAUTHORIZED, "API key has been revoked")
	}
	ns := h.Get(namespaceHeader)
	switch {
	case ns == "" || ns == key.Tenant:
		return key.Tenant, key, nil
	case !key.Admin:
		return "", nil, threads.Errorf(threads.EFORBIDDEN, "this key may not act for another namespace")
	}
	if err := threads.CheckTenant(ns); err != nil {
		return "", nil, threads.Errorf(threads.EBADREQUEST, "micro-namespace: %v", err)
	}
	return ns, key, nil
}
