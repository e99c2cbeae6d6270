package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/lni/dragonboat/v4/logger"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// dragonboat's logger factory is process-wide and may be set only once; it
// forwards to the Logger of the Node opened last.
var (
	dbLogOnce sync.Once
	dbLogger  atomic.Pointer[slog.Logger]
)

func routeLogs(l *slog.Logger) {
	dbLogger.Store(l)
	dbLogOnce.Do(func() {
		defer func() { _ = recover() }() // the embedding program set its own factory first
		logger.SetLoggerFactory(func(pkg string) logger.ILogger { return &dbLog{pkg: pkg} })
	})
}

type dbLog struct{ pkg string }

func (l *dbLog) SetLevel(logger.LogLevel) {}

func (l *dbLog) log(level slog.Level, format string, args []any) {
	lg := dbLogger.Load()
	if lg == nil || !lg.Enabled(context.Background(), level) {
		return
	}
	lg.Log(context.Background(), level, fmt.Sprintf(format, args...), "component", "dragonboat/"+l.pkg)
}

// routine lists dragonboat packages whose warnings and errors describe
// normal cluster life (elections, a peer restarting, connection retries):
// they are logged at Debug and Info so that an application logging at Info
// stays quiet while its cluster is healthy.
var routine = map[string]bool{"raft": true, "transport": true, "config": true, "dragonboat": true}

func (l *dbLog) Debugf(format string, args ...any) { l.log(slog.LevelDebug-4, format, args) }
func (l *dbLog) Infof(format string, args ...any)  { l.log(slog.LevelDebug, format, args) }
func (l *dbLog) Warningf(format string, args ...any) {
	if routine[l.pkg] {
		l.log(slog.LevelDebug, format, args)
		return
	}
	l.log(slog.LevelWarn, format, args)
}
func (l *dbLog) Errorf(format string, args ...any) {
	if routine[l.pkg] {
		l.log(slog.LevelInfo, format, args)
		return
	}
	l.log(slog.LevelError, format, args)
}

// Panicf reports that dragonboat met a state it cannot go on from. It
// stops every member of the process that runs (failAll): dragonboat's
// step workers recover the panic (see diskFS), so the member would
// otherwise hang on in silence.
func (l *dbLog) Panicf(format string, args ...any) {
	l.log(slog.LevelError, format, args)
	err := fmt.Errorf(format, args...)
	failAll(fmt.Errorf("%w: dragonboat stopped: %w", errdefs.ErrCorrupt, err))
	panic(err)
}
