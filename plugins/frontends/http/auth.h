/* auth.h: sessions and the organiser's token.
 *
 * A participant's credential is "<id>.<token>", token = hex of
 * HMAC-SHA256(key, "participant:" + id). The key (32 bytes from getrandom)
 * lives in ARCHIVE/http.key, so credentials survive a restart and nothing
 * per session is stored. It travels as the cookie tb_session (HttpOnly;
 * SameSite=Strict) or as "Authorization: Bearer <id>.<token>". The organiser
 * sends the admin token as a bearer token, or the cookie tb_admin, whose
 * value is hex HMAC-SHA256(key, "admin:" + admin token). Every comparison is
 * in constant time. */
#ifndef TB_HTTP_AUTH_H
#define TB_HTTP_AUTH_H

#include "server.h"

#define AUTH_COOKIE_PARTICIPANT "tb_session"
#define AUTH_COOKIE_ADMIN "tb_admin"

/* Reads ARCHIVE/http.key into srv->key, creating it (0600, O_EXCL, fsync'ed) the first time. */
tb_status auth_load_key(http_server *srv, const char *archive, char *err, size_t errlen);
/* n random bytes as lower-case hex into out (2n + 1 bytes): a fresh admin token. */
tb_status auth_random_hex(char *out, size_t n, char *err, size_t errlen);

/* "<id>.<token>" for id into out (at least HTTP_ID_MAX + 1 + HTTP_TOKEN_HEX + 1 bytes). */
void auth_participant_secret(const http_server *srv, const char *id, char *out, size_t cap);
/* 1 when secret is a valid credential; its id into id_out. */
int auth_check_participant(const http_server *srv, const char *secret, char id_out[HTTP_ID_MAX]);
/* The tb_admin cookie's value (HTTP_TOKEN_HEX + 1 bytes). */
void auth_admin_cookie_value(const http_server *srv, char *out, size_t cap);
/* 1 when token is the admin token. */
int auth_check_admin_token(const http_server *srv, const char *token);

/* Who sent the request (cookie or bearer): fills rq->admin, participant, by_bearer. */
void auth_identify(http_request *rq);

/* Set-Cookie values: the session for secret, the admin cookie, or one that clears `name`. */
void auth_session_cookie(char *out, size_t cap, const char *name, const char *value);
void auth_clear_cookie(char *out, size_t cap, const char *name);

#endif
