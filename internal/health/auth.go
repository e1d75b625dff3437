package health

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
)

// Access is what a route asks of a request.
type Access int

// Access levels, each implying the ones before.
const (
	Open  Access = iota // probes, scrapers, the API description
	Read                // viewing: /health, /api, snapshots
	Admin               // changing (issue 10's camera API)
)

// Auth checks bearer tokens. The zero value (nil *Auth too) lets every
// request in, as http.auth.mode none does.
type Auth struct {
	on      bool
	metrics Access
	mu      sync.RWMutex
	tokens  []authToken // replaced whole by SetTokens
}

type authToken struct {
	sum   [sha256.Size]byte
	scope Access
}

// NewAuth returns the check for mode "token": tokens maps each token to its
// scope ("read" or "admin"). With no tokens every protected route answers
// 401. metricsRead closes /metrics to requests without a read token.
func NewAuth(tokens map[string]string, metricsRead bool) *Auth {
	a := &Auth{on: true, metrics: Open}
	if metricsRead {
		a.metrics = Read
	}
	a.SetTokens(tokens)
	return a
}

// SetTokens replaces the tokens (a reload of http.auth.tokens_file): a
// request is checked against one set, old or new.
func (a *Auth) SetTokens(tokens map[string]string) {
	list := make([]authToken, 0, len(tokens))
	for tok, scope := range tokens {
		s := Read
		if scope == "admin" {
			s = Admin
		}
		list = append(list, authToken{sum: sha256.Sum256([]byte(tok)), scope: s})
	}
	a.mu.Lock()
	a.tokens = list
	a.mu.Unlock()
}

// list returns the tokens in force.
func (a *Auth) list() []authToken {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.tokens
}

// Enabled reports whether requests need tokens.
func (a *Auth) Enabled() bool { return a != nil && a.on }

// Tokens reports how many tokens are configured.
func (a *Auth) Tokens() int {
	if a == nil {
		return 0
	}
	return len(a.list())
}

// scopeOf returns the scope of the request's bearer token, and whether it
// carried one at all. Every configured token is compared, in constant
// time over hashes of equal length, so neither the position of a match
// nor the length of a prefix shows in the timing.
// given is true for a Bearer credential only: another scheme (Basic) is
// answered as if none had been sent, with a challenge and no error code
// (RFC 6750, 3.1).
func (a *Auth) scopeOf(r *http.Request) (scope Access, given, valid bool) {
	h := r.Header.Get("Authorization")
	kind, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(kind, "Bearer") {
		return Open, false, false
	}
	if strings.TrimSpace(tok) == "" {
		return Open, true, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found := Open
	for _, t := range a.list() {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found = max(found, t.scope)
			valid = true
		}
	}
	return found, true, valid
}

// wrap guards h with need: 401 without a valid token, 403 when its scope
// is too small. The answer never echoes the token.
func (a *Auth) wrap(need Access, h http.HandlerFunc) http.HandlerFunc {
	if !a.Enabled() || need == Open {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		scope, given, valid := a.scopeOf(r)
		switch {
		case !valid:
			challenge := `Bearer realm="gstcapture"`
			msg := "this endpoint needs Authorization: Bearer <token> (http.auth.tokens_file)"
			if given {
				challenge += `, error="invalid_token"`
				msg = "the bearer token is not one of http.auth.tokens_file"
			}
			if a.Tokens() == 0 {
				msg = "no API tokens are configured: set http.auth.tokens_file (lines \"<scope> <token>\", scope read or admin)"
			}
			w.Header().Set("WWW-Authenticate", challenge)
			WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
		case scope < need:
			w.Header().Set("WWW-Authenticate", `Bearer realm="gstcapture", error="insufficient_scope", scope="admin"`)
			WriteJSON(w, http.StatusForbidden, map[string]string{"error": "this endpoint needs a token of scope admin"})
		default:
			h(w, r)
		}
	}
}

// access is the level each route asks for: the probes, the API
// description and the console's files are open, /metrics is open unless
// http.auth.metrics is read, a change (any method but GET) and a camera's
// stored entry need admin, everything else needs read.
func (a *Auth) access(method, path string) Access {
	if method != http.MethodGet && method != http.MethodHead {
		return Admin
	}
	switch path {
	case "/healthz", "/readyz", "/openapi.yaml", "/{$}", "/console/{file}":
		return Open
	case "/api/v1/cameras/{id}/entry":
		return Admin
	case "/metrics":
		if a == nil {
			return Open
		}
		return a.metrics
	}
	return Read
}
