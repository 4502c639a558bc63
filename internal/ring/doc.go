// Package ring decides which worker owns a stream. It is the one place both
// tiers agree on: the gateway's router sends every data point to the worker
// ring.Membership.Owner names for the point's routing key, and a worker
// knows from the same two functions which streams are its own at a given
// membership epoch.
//
// A routing key is computed from the decoded data point with a Keyer (one
// per goroutine; it holds no state between points, only the configuration).
// The membership is the ordered list of workers the operator publishes with
// a strictly increasing epoch; owners are found with jump consistent hashing
// over the members' ordinals, which suits a StatefulSet: ordinals are
// contiguous, scaling from n to m workers moves only the |n-m|/max(n,m)
// share of the streams that must move, and the ring needs no memory.
package ring
