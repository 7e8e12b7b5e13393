package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The listener receives other replicas' announcements (and this one's:
// LISTEN hears every session, its own process's included) and calls the
// OnEvents callbacks with the tenant each one names.

const (
	// listenerName is the listener's application_name, so that operators
	// can tell its long-lived idle connection from the pool's.
	listenerName = "threads-listener"
	// listenIdle is how long the listener waits for a notification before
	// it checks, with listenCheck to answer, that its connection still
	// works: a half-open TCP connection would otherwise go unnoticed for
	// as long as the kernel's keepalive takes (tens of minutes).
	listenIdle  = 30 * time.Second
	listenCheck = 5 * time.Second
	// Reconnect attempts back off from listenRetryMin to listenRetryMax.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// connectListener opens a connection of its own (the pool's settings, not
// one of its connections: a pool connection held forever would shrink the
// pool and hide from its health checks) and listens on the channel.
func (db *DB) connectListener(ctx context.Context) (*pgx.Conn, error) {
	cfg := db.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.fan.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	db.fan.listenerPID.Store(conn.PgConn().PID())
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// listen runs until ctx ends. conn is the connection Open made, or nil if
// that failed. Whenever it has to listen anew, it calls the callbacks with
// tenant "": notifications sent while nobody listened are lost, so every
// reader must look again.
func (db *DB) listen(ctx context.Context, conn *pgx.Conn) {
	wait := listenRetryMin
	for {
		if conn == nil {
			var err error
			if conn, err = db.connectListener(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				db.log.Warn("event listener cannot connect; retrying", "in", wait, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, listenRetryMax)
				continue
			}
			wait = listenRetryMin
			db.log.Info("event listener listening again")
			db.fire("")
		}
		err := db.receive(ctx, conn)
		db.fan.listenerPID.Store(0)
		closeConn(conn)
		conn = nil
		if ctx.Err() != nil {
			return
		}
		db.log.Warn("event listener lost its connection; reconnecting", "err", err)
	}
}

// receive delivers notifications until the connection fails or ctx ends.
func (db *DB) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n.Channel == db.fan.channel {
				db.received(n.Payload)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Idle for listenIdle: a timed-out wait leaves the connection
			// usable, so check that it still answers.
			cctx, cancel := context.WithTimeout(ctx, listenCheck)
			_, err = conn.Exec(cctx, "SELECT 1")
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// received handles one announcement, "tenant F": F is a final boundary the
// sender has established for the tenant (final.go), so that this process's
// readers find the events at once even if their own checks cannot take the
// lock just then.
func (db *DB) received(payload string) {
	tenant, f, ok := strings.Cut(payload, " ")
	if ok {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			db.finals.get(tenant).raise(n)
		}
	}
	db.fire(tenant)
}
