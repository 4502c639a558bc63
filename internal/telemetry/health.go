package telemetry

import (
	"sync"
)

// Readiness tracks whether the worker may receive traffic. It starts not
// ready with a reason, so a probe during state restore explains itself.
type Readiness struct {
	mu     sync.Mutex
	ready  bool
	reason string
}

// NewReadiness returns a not-ready state with the given reason.
func NewReadiness(reason string) *Readiness {
	return &Readiness{reason: reason}
}

// NotReady records why the worker cannot take traffic now.
func (r *Readiness) NotReady(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready, r.reason = false, reason
}

// Ready marks the worker able to take traffic.
func (r *Readiness) Ready() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready, r.reason = true, ""
}

// State reports readiness and, when not ready, why.
func (r *Readiness) State() (ready bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready, r.reason
}
