// Command idp is the testbed's OIDC identity provider: github.com/oauth2-proxy/mockoidc
// (discovery, authorize, token, userinfo, JWKS) on a fixed address with a fixed client, plus
// a login form for configured users, so a scripted browser logs in the way it would at Entra ID.
// Dex is not used: see testbed/README.md. Flags and behaviour: testbed/idp/README.md.
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Test controls, outside the issuer path (no OIDC client looks there):
//   - TokenRequestsPath lists what the token endpoint was asked (GET, JSON), so a test can prove
//     that a client refreshed a session;
//   - UsersPath/{username} changes a user's groups, roles or disabled flag (POST, JSON) while
//     sessions are open, as an admin would in Entra ID: refreshes then see the change.
const (
	TokenRequestsPath = "/testbed/token-requests"
	UsersPath         = "/testbed/users/"
)

const offlineAccessScope = "offline_access"

// user is one person the IdP signs in. groups and roles become the `groups` and `roles`
// claims of the id_token and userinfo, whatever the scope (as Entra ID emits them when the app
// registration asks for them); email and preferred_username follow the email/profile scopes.
type user struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
	Roles    []string `json:"roles"`
	// Disabled: no login, and refresh grants answer invalid_grant (a revoked session).
	Disabled bool `json:"disabled"`
}

// userChange is the body of a POST to UsersPath/{username}; absent fields stay as they are.
type userChange struct {
	Groups   *[]string `json:"groups"`
	Roles    *[]string `json:"roles"`
	Disabled *bool     `json:"disabled"`
}

// profile is what the id_token and userinfo say about the user besides the registered claims.
type profile struct {
	Email             string   `json:"email,omitempty"`
	EmailVerified     bool     `json:"email_verified,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	Roles             []string `json:"roles,omitempty"`
}

// claims: the registered claims (sub among them) one level deeper than the profile, so no
// JSON name is defined twice.
type claims struct {
	*mockoidc.IDTokenClaims
	profile
}

type userinfo struct {
	Subject string `json:"sub"`
	profile
}

func (u *user) ID() string { return u.Username }

func (u *user) scoped(scopes []string) profile {
	info := profile{Groups: u.Groups, Roles: u.Roles}
	if slices.Contains(scopes, "email") {
		info.Email, info.EmailVerified = u.Email, true
	}
	if slices.Contains(scopes, "profile") {
		info.PreferredUsername = u.Username
	}
	return info
}

func (u *user) Userinfo(scopes []string) ([]byte, error) {
	return json.Marshal(userinfo{Subject: u.Username, profile: u.scoped(scopes)})
}

func (u *user) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &claims{IDTokenClaims: base, profile: u.scoped(scopes)}, nil
}

// tokenRequest is one call of the token endpoint, as TokenRequestsPath reports it.
type tokenRequest struct {
	Time      time.Time `json:"time"`
	GrantType string    `json:"grant_type"`
	Status    int       `json:"status"`
	Subject   string    `json:"subject,omitempty"` // of the id_token answered
	Refresh   bool      `json:"refresh_token_issued"`
}

type idp struct {
	mock *mockoidc.MockOIDC
	// requireOfflineAccess: refresh tokens only for sessions whose scope has offline_access,
	// as Entra ID does (mockoidc hands one out always).
	requireOfflineAccess bool
	users                []*user
	formLogin            bool // false: one user, no password, authorize logs in at once
	// mockoidc's session store and user queue are plain maps/slices shared by all requests,
	// and a login is "queue the user, then authorize pops it": one request at a time.
	mu       sync.Mutex
	requests []tokenRequest
}

func (p *idp) findUser(login, password string) *user {
	for _, u := range p.users {
		if subtle.ConstantTimeCompare([]byte(login), []byte(u.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(password), []byte(u.Password)) == 1 && !u.Disabled {
			return u
		}
	}
	return nil
}

func (p *idp) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	who := p.users[0]
	if p.formLogin {
		who = nil
		if r.Method == http.MethodPost {
			who = p.findUser(r.PostForm.Get("login"), r.PostForm.Get("password"))
		}
	}
	if who == nil {
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusUnauthorized
		}
		loginForm(w, r, status)
		return
	}
	log.Printf("authorize: %s logs in (scope %q)", who.Username, r.Form.Get("scope"))
	p.mock.QueueUser(who)
	p.mock.Authorize(w, r)
}

func loginForm(w http.ResponseWriter, r *http.Request, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, `<!doctype html><title>Log in</title><form method="post" action="`+mockoidc.AuthorizationEndpoint+`">`)
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			fmt.Fprintf(w, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
		}
	}
	fmt.Fprint(w, `<input name="login" placeholder="login"><input name="password" type="password"><button type="submit">Log in</button></form>`)
}

func (p *idp) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Discovery offers client_secret_basic, but mockoidc reads the client's credentials from
	// the form only: move them there.
	if id, secret, ok := r.BasicAuth(); ok {
		r.Form.Set("client_id", id)
		r.Form.Set("client_secret", secret)
	}
	grant := r.Form.Get("grant_type")
	offline := true
	var session *mockoidc.Session
	switch grant {
	case "authorization_code":
		session, _ = p.mock.SessionStore.GetSessionByID(r.Form.Get("code"))
		if session != nil {
			offline = slices.Contains(session.Scopes, offlineAccessScope)
		}
	case "refresh_token":
		if token, err := p.mock.Keypair.VerifyJWT(r.Form.Get("refresh_token"), p.mock.Now); err == nil {
			session, _ = p.mock.SessionStore.GetSessionByToken(token)
		}
	}
	rec := httptest.NewRecorder()
	if u, ok := sessionUser(session); ok && u.Disabled && grant == "refresh_token" {
		rec.Header().Set("Content-Type", "application/json")
		rec.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(rec, `{"error":"invalid_grant","error_description":"the user is disabled"}`)
	} else {
		p.mock.Token(rec, r)
	}
	body := rec.Body.Bytes()
	entry := tokenRequest{Time: time.Now().UTC(), GrantType: grant, Status: rec.Code}
	if rec.Code == http.StatusOK {
		var answer map[string]any
		if err := json.Unmarshal(body, &answer); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// mockoidc marshals expires_in as a time.Duration (nanoseconds); OAuth 2 says seconds.
		answer["expires_in"] = int64(p.mock.AccessTTL / time.Second)
		if p.requireOfflineAccess && !offline {
			delete(answer, "refresh_token")
		}
		_, entry.Refresh = answer["refresh_token"]
		if grant == "refresh_token" {
			entry.Refresh = false // the same refresh token comes back; nothing new issued
		}
		if idToken, ok := answer["id_token"].(string); ok {
			entry.Subject = subjectOf(idToken)
		}
		var err error
		if body, err = json.Marshal(answer); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	p.requests = append(p.requests, entry)
	log.Printf("token: grant_type=%s status=%d subject=%q refresh_token_issued=%t", grant, rec.Code, entry.Subject, entry.Refresh)
	for k, vs := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

func sessionUser(session *mockoidc.Session) (*user, bool) {
	if session == nil {
		return nil, false
	}
	u, ok := session.User.(*user)
	return u, ok
}

func (p *idp) changeUser(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, UsersPath)
	i := slices.IndexFunc(p.users, func(u *user) bool { return u.Username == name })
	if r.Method != http.MethodPost || i < 0 {
		http.Error(w, "POST "+UsersPath+"{username} of a configured user", http.StatusNotFound)
		return
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var change userChange
	if err := dec.Decode(&change); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// In place: open sessions hold this pointer, so the next refresh answers with the change.
	u := p.users[i]
	if change.Groups != nil {
		u.Groups = *change.Groups
	}
	if change.Roles != nil {
		u.Roles = *change.Roles
	}
	if change.Disabled != nil {
		u.Disabled = *change.Disabled
	}
	log.Printf("user %s changed: groups %v roles %v disabled %t", u.Username, u.Groups, u.Roles, u.Disabled)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(u.scoped(nil))
}

// subjectOf reads the sub claim of a JWT we signed ourselves (no verification needed).
func subjectOf(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.Sub
}

func (p *idp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(mockoidc.AuthorizationEndpoint, p.authorize)
	mux.HandleFunc(mockoidc.TokenEndpoint, p.token)
	mux.HandleFunc(mockoidc.UserinfoEndpoint, p.mock.Userinfo)
	mux.HandleFunc(mockoidc.JWKSEndpoint, p.mock.JWKS)
	mux.HandleFunc(mockoidc.DiscoveryEndpoint, p.mock.Discovery)
	mux.HandleFunc(UsersPath, p.changeUser)
	mux.HandleFunc(TokenRequestsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(append([]tokenRequest{}, p.requests...))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func readUsers(path string) ([]*user, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var users []*user
	if err := dec.Decode(&users); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s: no users", path)
	}
	seen := map[string]bool{}
	for i, u := range users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("%s: user %d needs a username and a password", path, i)
		}
		if seen[u.Username] {
			return nil, fmt.Errorf("%s: user %q twice", path, u.Username)
		}
		seen[u.Username] = true
	}
	return users, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (127.0.0.1 only in tests)")
	clientID := flag.String("client-id", "zerotrust-aks", "the one OAuth client's id")
	clientSecret := flag.String("client-secret", "zerotrust-aks-secret", "the one OAuth client's secret")
	usersFile := flag.String("users-file", "", `JSON list of users [{"username","password","email","groups":[],"roles":[]}]; replaces the single-user flags`)
	username := flag.String("username", "jane", "single user: login name (sub, preferred_username)")
	password := flag.String("password", "", "single user: password; empty: no login form, log in at once")
	email := flag.String("email", "jane@example.com", "single user: email claim")
	groups := flag.String("groups", "zerotrust-users", "single user: comma-separated groups claim")
	roles := flag.String("roles", "", "single user: comma-separated roles claim (Entra ID app role values)")
	accessTTL := flag.Duration("access-ttl", 10*time.Minute, "lifetime of access and id tokens")
	refreshTTL := flag.Duration("refresh-ttl", time.Hour, "lifetime of refresh tokens")
	requireOffline := flag.Bool("require-offline-access", true, "issue refresh tokens only when the scope has offline_access (as Entra ID)")
	issuerFile := flag.String("issuer-file", "", "write the issuer URL to this file once listening")
	flag.Parse()

	p := &idp{requireOfflineAccess: *requireOffline}
	if *usersFile != "" {
		var clash []string
		flag.Visit(func(f *flag.Flag) {
			if slices.Contains([]string{"username", "password", "email", "groups", "roles"}, f.Name) {
				clash = append(clash, "--"+f.Name)
			}
		})
		if len(clash) > 0 {
			log.Fatalf("--users-file replaces %s; give one or the other", strings.Join(clash, ", "))
		}
		users, err := readUsers(*usersFile)
		if err != nil {
			log.Fatal(err)
		}
		p.users, p.formLogin = users, true
	} else {
		p.users = []*user{{Username: *username, Password: *password, Email: *email, Groups: splitList(*groups), Roles: splitList(*roles)}}
		p.formLogin = *password != ""
	}
	if *accessTTL <= 0 || *refreshTTL <= 0 {
		log.Fatal(errors.New("--access-ttl and --refresh-ttl must be positive"))
	}

	m, err := mockoidc.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	m.ClientID, m.ClientSecret = *clientID, *clientSecret
	m.AccessTTL, m.RefreshTTL = *accessTTL, *refreshTTL
	p.mock = m
	// oauth2-proxy asks for offline_access to get refresh tokens (Entra ID needs it); mockoidc
	// refuses scopes it does not list.
	if !slices.Contains(mockoidc.ScopesSupported, offlineAccessScope) {
		mockoidc.ScopesSupported = append(mockoidc.ScopesSupported, offlineAccessScope)
	}
	mockoidc.ClaimsSupported = append(mockoidc.ClaimsSupported, "roles")

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// Serve our own mux (mockoidc's Start serves only its five endpoints); the issuer URL is
	// derived from Server.Addr, so set it as Start would.
	m.Server = &http.Server{Addr: ln.Addr().String(), Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second}
	names := make([]string, 0, len(p.users))
	for _, u := range p.users {
		names = append(names, u.Username)
	}
	log.Printf("issuer %s client-id %s users %s access-ttl %s refresh-ttl %s", m.Issuer(), m.ClientID,
		strings.Join(names, ","), m.AccessTTL, m.RefreshTTL)
	if *issuerFile != "" {
		if err := os.WriteFile(*issuerFile, []byte(m.Issuer()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(m.Server.Serve(ln))
}
