package harness

import (
	"context"
	"time"
)

// loop runs a step of the harness's stand-ins for cluster controllers (the
// membership watch, the StatefulSet controller) every interval until stop,
// logging an error once until it changes, as a controller's log would.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLoop(ctx context.Context, p *Pipeline, name string, every time.Duration, step func(context.Context) error) *loop {
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &loop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		var lastErr string
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-tick.C:
			}
			if err := step(loopCtx); err != nil && loopCtx.Err() == nil && err.Error() != lastErr {
				lastErr = err.Error()
				p.logf("%s: %v", name, err)
			}
		}
	}()
	return l
}

func (l *loop) stop() {
	if l != nil {
		l.cancel()
		<-l.done
	}
}
