package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/paytrail/paytrail/api/auth"
)

// Console sessions are held in memory, on this node only: a restart signs
// everyone out, and behind a load balancer a person must stay on one node
// (sticky sessions). The cookie carries a 256-bit random value; the store
// keys sessions by its SHA-256, so a dump of the store holds no usable
// cookie. A session ends at sign-out (removed from the store: the cookie
// is worthless from then on), after IdleTimeout without a request, or
// MaxAge after sign-in.
//
// A token sign-in keeps only the token's hash, and the principal is looked
// up again on every request, so revoking the token ends the session at
// once. An OIDC sign-in keeps the principal the ID token mapped to, until
// MaxAge (or the ID token's expiry, whichever is first).

const (
	sessionCookie = "paytrail_session"
	// preCookie binds a sign-in form (CSRF) or an OIDC login (state,
	// nonce, PKCE verifier) to the browser that started it.
	preCookie = "paytrail_signin"
	// loginTimeout bounds an OIDC login, from redirect to callback.
	loginTimeout = 10 * time.Minute
	maxPending   = 16
)

type session struct {
	key       string // SHA-256 of the cookie value, hex
	csrf      string
	tokenHash string          // token sign-in: looked up on every request
	fixed     *auth.Principal // OIDC sign-in
	principal *auth.Principal // this request's principal
	created   time.Time
	seen      time.Time
	expires   time.Time
	// pending holds erasures awaiting confirmation, by random id: the
	// identifiers stay on the server, never in a form or URL.
	pending map[string]pendingRequest
}

type pendingRequest struct {
	body    subjectRequestJSON
	created time.Time
}

// preSession is a sign-in in progress: the CSRF token of the token form,
// or the state, nonce and PKCE verifier of an OIDC login.
type preSession struct {
	csrf, state, nonce, verifier string
	created                      time.Time
}

type sessionStore struct {
	idle, max time.Duration
	limit     int
	now       func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	pre      map[string]*preSession
}

func newSessionStore(idle, max time.Duration, limit int, now func() time.Time) *sessionStore {
	return &sessionStore{idle: idle, max: max, limit: limit, now: now,
		sessions: map[string]*session{}, pre: map[string]*preSession{}}
}

var (
	errNoRole        = newError(http.StatusForbidden, "no_role", "your identity provider groups map to no paytrail role")
	errAmbiguousRole = newError(http.StatusForbidden, "ambiguous_role", "your identity provider groups map to more than one paytrail role; a person has one")
)

var errTooManySessions = newError(http.StatusServiceUnavailable, "unavailable", "too many console sessions are open; try again later")

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func cookieKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// sweep drops expired sessions and sign-ins; the caller holds mu.
func (st *sessionStore) sweep(now time.Time) {
	for k, ss := range st.sessions {
		if now.After(ss.expires) || now.Sub(ss.seen) > st.idle {
			delete(st.sessions, k)
		}
	}
	for k, p := range st.pre {
		if now.Sub(p.created) > loginTimeout {
			delete(st.pre, k)
		}
	}
}

// create starts a session and returns its cookie value. expires, if not
// zero and earlier than MaxAge from now, ends it sooner.
func (st *sessionStore) create(tokenHash string, fixed *auth.Principal, expires time.Time) (string, error) {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.sessions) >= st.limit {
		st.sweep(now)
		if len(st.sessions) >= st.limit {
			return "", errTooManySessions
		}
	}
	v := randomToken()
	ss := &session{key: cookieKey(v), csrf: randomToken(), tokenHash: tokenHash, fixed: fixed,
		created: now, seen: now, expires: now.Add(st.max)}
	if !expires.IsZero() && expires.Before(ss.expires) {
		ss.expires = expires
	}
	st.sessions[ss.key] = ss
	return v, nil
}

// get returns the live session of a cookie value and marks it used.
func (st *sessionStore) get(v string) (*session, bool) {
	if v == "" || len(v) > 100 {
		return nil, false
	}
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	ss, ok := st.sessions[cookieKey(v)]
	if !ok {
		return nil, false
	}
	if now.After(ss.expires) || now.Sub(ss.seen) > st.idle {
		delete(st.sessions, ss.key)
		return nil, false
	}
	ss.seen = now
	cp := *ss // a request works on its own copy; pending is shared, under mu
	return &cp, true
}

// revoke ends a session.
func (st *sessionStore) revoke(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.sessions, key)
}

// addPending keeps a request awaiting confirmation and returns its id.
func (st *sessionStore) addPending(key string, body subjectRequestJSON) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	ss := st.sessions[key]
	if ss == nil {
		return ""
	}
	if ss.pending == nil || len(ss.pending) >= maxPending {
		ss.pending = map[string]pendingRequest{}
	}
	id := randomToken()
	ss.pending[id] = pendingRequest{body: body, created: st.now()}
	return id
}

// takePending removes and returns a request awaiting confirmation.
func (st *sessionStore) takePending(key, id string) (subjectRequestJSON, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ss := st.sessions[key]
	if ss == nil {
		return subjectRequestJSON{}, false
	}
	p, ok := ss.pending[id]
	delete(ss.pending, id)
	if !ok || st.now().Sub(p.created) > loginTimeout {
		return subjectRequestJSON{}, false
	}
	return p.body, true
}

// newPre starts a sign-in and returns its cookie value.
func (st *sessionStore) newPre(p *preSession) string {
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.pre) >= st.limit {
		st.sweep(now)
		if len(st.pre) >= st.limit {
			// Drop the oldest half: a stranger can start sign-ins at will.
			for k := range st.pre {
				delete(st.pre, k)
				if len(st.pre) < st.limit/2 {
					break
				}
			}
		}
	}
	v := randomToken()
	p.created = now
	st.pre[cookieKey(v)] = p
	return v
}

// getPre returns a sign-in in progress; take removes it (an OIDC login is
// good for one callback).
func (st *sessionStore) getPre(v string, take bool) (*preSession, bool) {
	if v == "" || len(v) > 100 {
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	k := cookieKey(v)
	p, ok := st.pre[k]
	if !ok || st.now().Sub(p.created) > loginTimeout {
		delete(st.pre, k)
		return nil, false
	}
	if take {
		delete(st.pre, k)
	}
	return p, true
}

const sessionKey = "paytrail.console.session"

func sessionOf(c *gin.Context) *session {
	v, _ := c.Get(sessionKey)
	ss, _ := v.(*session)
	return ss
}

// consoleSession requires a live session, resolves its principal (a token
// session's token must still be live), and checks the CSRF token of every
// POST. Without one, pages redirect to the sign-in.
func (s *Server) consoleSession(c *gin.Context) {
	v, _ := c.Cookie(sessionCookie)
	ss, ok := s.console.sessions.get(v)
	if ok && ss.tokenHash != "" {
		p, found, err := s.principals.PrincipalByTokenHash(c, ss.tokenHash)
		if err != nil {
			s.renderError(c, "", toError(err))
			c.Abort()
			return
		}
		if !found || p.Revoked != nil {
			s.console.sessions.revoke(ss.key)
			ok = false
		} else {
			ss.principal = p
		}
	} else if ok {
		ss.principal = ss.fixed
	}
	if !ok {
		s.setCookie(c, sessionCookie, "", -1, http.SameSiteStrictMode)
		if c.Request.Method != http.MethodGet {
			s.render(c, http.StatusUnauthorized, "error", &pageData{Title: "Signed out",
				Error: newError(http.StatusUnauthorized, "signed_out", "your session ended; sign in again")})
			c.Abort()
			return
		}
		c.Redirect(http.StatusSeeOther, "/console/sign-in")
		c.Abort()
		return
	}
	c.Set(sessionKey, ss)
	markAuthenticated(c)
	// The upload checks its token itself, from the stream (console_pages.go).
	if c.Request.Method == http.MethodPost && c.FullPath() != "/console/reconciliations" && !s.checkCSRF(c, ss.csrf) {
		return
	}
	c.Next()
}

// startSession signs the person in: a new session (a fresh cookie value,
// so a value planted before sign-in is worthless), recorded as an access
// entry. tokenHash or fixed names the principal p.
func (s *Server) startSession(c *gin.Context, p *auth.Principal, tokenHash string, fixed *auth.Principal, expires time.Time) bool {
	if old, _ := c.Cookie(sessionCookie); old != "" {
		s.console.sessions.revoke(cookieKey(old)) // one session per browser
	}
	v, err := s.console.sessions.create(tokenHash, fixed, expires)
	if err != nil {
		s.renderError(c, "", toError(err))
		return false
	}
	c.Set(principalKey, p)
	if _, err := s.recordAccess(c, access{Action: "console.sign_in", Resource: "console session"}, http.StatusOK); err != nil {
		s.console.sessions.revoke(cookieKey(v))
		s.renderError(c, "", toError(err))
		return false
	}
	s.setCookie(c, sessionCookie, v, int(s.cfg.Console.MaxAge/time.Second), http.SameSiteStrictMode)
	return true
}

// denySignIn records a refused sign-in and shows the sign-in page again.
// Failed token sign-ins are coalesced like the API's 401s (see denials),
// so that a stranger cannot grow the ledger at the rate they post.
func (s *Server) denySignIn(c *gin.Context, p *auth.Principal, e *Error) {
	if p != nil {
		c.Set(principalKey, p)
	}
	a := access{Action: "console.sign_in", Resource: "console session"}
	if p != nil || e.Status != http.StatusUnauthorized || s.denials.admit(c.ClientIP(), a.Action, a.Resource, s.now()) {
		if _, err := s.recordAccess(c, a, e.Status); err != nil {
			e = toError(err)
		}
	}
	s.renderSignIn(c, e.Status, e)
}

// denyRole records a refused SSO token that maps to no role or to two,
// naming the person, and answers 403 no_role or ambiguous_role.
func (s *Server) denyRole(c *gin.Context, a access, re *auth.RoleError) {
	c.Set(principalKey, &auth.Principal{ID: re.Subject, Name: re.Name})
	s.deny(c, a, re)
}
