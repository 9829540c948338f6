package api

import (
	"sync"
	"time"
)

// logEvery is how often a repeated warning is logged: a flood (bad
// signatures from a stranger, 503s while the disk is full) must not become
// a flood of log lines. Metrics count every occurrence.
const logEvery = 10 * time.Second

// logLimiter lets one log line per key through per interval and counts
// the ones it held back. It is safe for concurrent use.
type logLimiter struct {
	every      time.Duration
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line for key may be logged now and, if so, how
// many were held back since the last one. The keys are fixed sets (source
// names, routes and codes), so the maps stay small.
func (l *logLimiter) allow(key string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.every {
		l.suppressed[key]++
		return 0, false
	}
	n := l.suppressed[key]
	l.last[key], l.suppressed[key] = now, 0
	return n, true
}
