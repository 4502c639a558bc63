// Package convert owns delta-to-cumulative conversion: the per-stream state
// that turns DELTA sums, histograms and exponential histograms into
// CUMULATIVE series, the rules that decide which points count (duplicates,
// overlapping writers, invalid points, the stream limit), the emission of
// cumulative points, and the binary per-stream records used for checkpoints
// and hand-over.
//
// The engine keeps its state in 64 shards selected by a 128-bit identity
// hash. Apply touches one shard lock per point and allocates nothing for
// streams it already holds; descriptors and attribute values shared by many
// streams are interned once. docs/conversion.md documents the rules for users.
package convert
