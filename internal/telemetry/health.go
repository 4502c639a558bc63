package telemetry

import (
	"strings"
	"sync"
)

// Readiness tracks whether the worker may receive traffic. It starts not
// ready with a reason, so a probe during state restore explains itself.
//
// It has two layers. The worker's own phase (starting, ready, shutting
// down) gates the ingest path through State. Checks that other packages own
// (the state store's journal) are added with Require and Notice and only
// change what /readyz answers: the package behind a check refuses its own
// requests when it must, and keeps trying the ones it can recover with.
type Readiness struct {
	mu       sync.Mutex
	ready    bool
	reason   string
	required []func() error
	notices  []func() error
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

// State reports the worker's own phase: ready once started and until
// shutdown, and when not, why.
func (r *Readiness) State() (ready bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready, r.reason
}

// Require makes the probe depend on check: while it returns an error the
// worker is reported not ready, with the error as a reason.
func (r *Readiness) Require(check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.required = append(r.required, check)
}

// Notice adds check's error, while there is one, to the probe's answer as a
// warning: a problem worth seeing that is no reason to stop traffic.
func (r *Readiness) Notice(check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, check)
}

// Probe is what /readyz answers: ready when the worker's phase is ready and
// every required check passes. reason says why not, naming every failed
// check; warnings lists the notices that apply.
func (r *Readiness) Probe() (ready bool, reason string, warnings []string) {
	r.mu.Lock()
	ready, phase := r.ready, r.reason
	required, notices := r.required, r.notices
	r.mu.Unlock()
	// Checks run outside the lock: they take their owners' locks.
	var reasons []string
	if !ready {
		reasons = append(reasons, phase)
	}
	for _, check := range required {
		if err := check(); err != nil {
			ready = false
			reasons = append(reasons, err.Error())
		}
	}
	for _, check := range notices {
		if err := check(); err != nil {
			warnings = append(warnings, err.Error())
		}
	}
	return ready, strings.Join(reasons, "; "), warnings
}
