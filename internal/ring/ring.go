package ring

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Member is one worker of the ring: Name identifies it (the pod name, which
// keeps its ordinal through restarts), Endpoint is where gateways send its
// OTLP/gRPC traffic and Peer where other workers hand state over to it.
type Member struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Peer     string `json:"peer,omitempty"`
}

// Membership is the ring at one epoch. Members are in ordinal order: the
// member at index i is the worker of ordinal i. Epochs only grow; a
// gateway or worker ignores a membership older than the one it has.
//
// Previous is set while the workers hand state over after a change of
// members: it lists the members of the ring before the change, the owners
// that streams are moving away from. Gateways route by Members alone.
type Membership struct {
	Epoch    uint64   `json:"epoch"`
	Members  []Member `json:"members"`
	Previous []Member `json:"previous,omitempty"`
}

// Owner is the ordinal of the member that owns key. It must not be called
// on an empty membership (Validate refuses one).
func (m Membership) Owner(k Key) int { return jump(uint64(k), len(m.Members)) }

// PreviousOwner is the ordinal of the member that owned key before the
// change being handed over; ok is false when no hand-over is under way.
func (m Membership) PreviousOwner(k Key) (ordinal int, ok bool) {
	if len(m.Previous) == 0 {
		return 0, false
	}
	return jump(uint64(k), len(m.Previous)), true
}

// Rescaling reports whether the workers are handing state over.
func (m Membership) Rescaling() bool { return len(m.Previous) > 0 }

// SameMembers reports whether two memberships route every key to the same
// endpoint, whatever their epochs.
func (m Membership) SameMembers(o Membership) bool { return slices.Equal(m.Members, o.Members) }

// Validate reports the first problem of a membership that gateways cannot
// route by.
func (m Membership) Validate() error {
	if m.Epoch == 0 {
		return errors.New("membership epoch must be at least 1")
	}
	if len(m.Members) == 0 {
		return fmt.Errorf("membership epoch %d has no members", m.Epoch)
	}
	seen := make(map[string]int, len(m.Members))
	for i, mem := range m.Members {
		if mem.Name == "" || mem.Endpoint == "" {
			return fmt.Errorf("membership epoch %d: member %d needs a name and an endpoint", m.Epoch, i)
		}
		if j, dup := seen[mem.Name]; dup {
			return fmt.Errorf("membership epoch %d: members %d and %d are both named %q", m.Epoch, j, i, mem.Name)
		}
		seen[mem.Name] = i
	}
	for i, mem := range m.Previous {
		if mem.Name == "" || mem.Endpoint == "" {
			return fmt.Errorf("membership epoch %d: previous member %d needs a name and an endpoint", m.Epoch, i)
		}
	}
	return nil
}

// Marshal encodes a membership as the operator publishes it.
func (m Membership) Marshal() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding membership epoch %d: %w", m.Epoch, err)
	}
	return b, nil
}

// ParseMembership decodes and validates a published membership.
func ParseMembership(b []byte) (Membership, error) {
	var m Membership
	if err := json.Unmarshal(b, &m); err != nil {
		return Membership{}, fmt.Errorf("decoding membership: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Membership{}, err
	}
	return m, nil
}

// jump is Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory,
// Consistent Hash Algorithm", 2014): the bucket in [0, buckets) of key.
// Going from n to n+1 buckets moves exactly the keys that land in the new
// bucket, about 1/(n+1) of them, and no key moves between old buckets.
func jump(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
