package receive

import "errors"

// errUnauthenticated is the answer to a request without a valid token. It
// names neither the expected nor the received value.
var errUnauthenticated = errors.New("missing or invalid bearer token: the worker accepts OTLP only from its pipeline's gateways")
