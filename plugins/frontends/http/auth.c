/* auth.c: the session key file, HMAC tokens, who a request comes from (auth.h). */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "http.key"
#define SECRET_MAX (HTTP_ID_MAX + 1 + HTTP_TOKEN_HEX + 1)

static tb_status fill_random(uint8_t *out, size_t n, char *err, size_t errlen)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "getrandom: %s", strerror(errno));
            return TB_EIO;
        }
        got += (size_t)r;
    }
    return TB_OK;
}

tb_status auth_random_hex(char *out, size_t n, char *err, size_t errlen)
{
    uint8_t bytes[64];
    if (n > sizeof bytes) n = sizeof bytes;
    tb_status s = fill_random(bytes, n, err, errlen);
    if (s != TB_OK) return s;
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return TB_OK;
}

/* Writes a new key file: a temporary file, written and fsync'ed, then linked
 * to its name, so a crash or a full disk never leaves a short key behind.
 * EEXIST (another process won the race) is left to the caller. */
static tb_status create_key_file(http_server *srv, const char *path, const char *dir, char *err, size_t errlen)
{
    tb_status s = fill_random(srv->key, sizeof srv->key, err, errlen);
    if (s != TB_OK) return s;
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err, errlen, "archive path too long for %s", KEY_FILE);
        return TB_EINVAL;
    }
    unlink(tmp); /* one a crash left */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return TB_EIO;
    }
    ssize_t w;
    do w = write(fd, srv->key, sizeof srv->key);
    while (w < 0 && errno == EINTR);
    int saved = w == (ssize_t)sizeof srv->key ? 0 : (w < 0 ? errno : ENOSPC);
    if (!saved && fsync(fd) != 0) saved = errno;
    if (close(fd) != 0 && !saved) saved = errno;
    if (!saved && link(tmp, path) != 0) saved = errno;
    unlink(tmp);
    if (saved == EEXIST) return TB_EINVAL; /* read it instead */
    if (saved) {
        snprintf(err, errlen, "cannot write %s: %s%s", path, strerror(saved),
                 saved == ENOSPC || saved == EDQUOT ? " (the disk is full: free space and start again)" : "");
        return TB_EIO;
    }
    /* the file's name is durable once its directory is */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int bad = fsync(dfd) != 0 ? errno : 0;
        close(dfd);
        if (bad) {
            snprintf(err, errlen, "cannot sync directory %s: %s", dir, strerror(bad));
            return TB_EIO;
        }
    }
    return TB_OK;
}

static tb_status read_key_file(http_server *srv, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return TB_EIO;
    }
    struct stat st;
    tb_status s = TB_OK;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        s = TB_EIO;
    } else if (!S_ISREG(st.st_mode) || st.st_size != HTTP_KEY_BYTES) {
        snprintf(err, errlen, "%s is not a %d-byte key file (delete it to make a new key; participants then log in again)",
                 path, HTTP_KEY_BYTES);
        s = TB_EFORMAT;
    } else if (st.st_mode & 077) {
        snprintf(err, errlen, "%s can be read by others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
        s = TB_EINVAL;
    } else {
        ssize_t r;
        do r = read(fd, srv->key, sizeof srv->key);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof srv->key) {
            snprintf(err, errlen, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "short read");
            s = TB_EIO;
        }
    }
    close(fd);
    return s;
}

tb_status auth_load_key(http_server *srv, const char *archive, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", archive, KEY_FILE) >= sizeof path) {
        snprintf(err, errlen, "archive path too long for %s", KEY_FILE);
        return TB_EINVAL;
    }
    if (access(path, F_OK) != 0) {
        tb_status s = create_key_file(srv, path, archive, err, errlen);
        if (s != TB_EINVAL) return s; /* created, or a real error; EINVAL: it appeared meanwhile */
    }
    return read_key_file(srv, path, err, errlen);
}

static void hmac_hex(const http_server *srv, const char *label, const char *text, char out[HTTP_TOKEN_HEX + 1])
{
    struct hmac_sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    hmac_sha256_set_key(&ctx, sizeof srv->key, srv->key);
    hmac_sha256_update(&ctx, strlen(label), (const uint8_t *)label);
    hmac_sha256_update(&ctx, strlen(text), (const uint8_t *)text);
    hmac_sha256_digest(&ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

void auth_participant_secret(const http_server *srv, const char *id, char *out, size_t cap)
{
    char token[HTTP_TOKEN_HEX + 1];
    hmac_hex(srv, "participant:", id, token);
    snprintf(out, cap, "%s.%s", id, token);
}

int auth_check_participant(const http_server *srv, const char *secret, char id_out[HTTP_ID_MAX])
{
    if (!secret) return 0;
    const char *dot = strrchr(secret, '.');
    if (!dot || dot == secret || (size_t)(dot - secret) >= HTTP_ID_MAX || strlen(dot + 1) != HTTP_TOKEN_HEX)
        return 0;
    char id[HTTP_ID_MAX], expected[HTTP_TOKEN_HEX + 1];
    memcpy(id, secret, (size_t)(dot - secret));
    id[dot - secret] = '\0';
    hmac_hex(srv, "participant:", id, expected);
    if (!memeql_sec(expected, dot + 1, HTTP_TOKEN_HEX)) return 0;
    snprintf(id_out, HTTP_ID_MAX, "%s", id);
    return 1;
}

void auth_admin_cookie_value(const http_server *srv, char *out, size_t cap)
{
    char v[HTTP_TOKEN_HEX + 1];
    hmac_hex(srv, "admin:", srv->admin_token, v);
    snprintf(out, cap, "%s", v);
}

/* Compares digests, so the time taken says nothing about the token or its length. */
int auth_check_admin_token(const http_server *srv, const char *token)
{
    if (!token) return 0;
    char given[HTTP_TOKEN_HEX + 1], expected[HTTP_TOKEN_HEX + 1];
    hmac_hex(srv, "admin:", token, given);
    hmac_hex(srv, "admin:", srv->admin_token, expected);
    return memeql_sec(given, expected, HTTP_TOKEN_HEX);
}

static int check_admin_cookie(const http_server *srv, const char *value)
{
    if (!value || strlen(value) != HTTP_TOKEN_HEX) return 0;
    char expected[HTTP_TOKEN_HEX + 1];
    auth_admin_cookie_value(srv, expected, sizeof expected);
    return memeql_sec(expected, value, HTTP_TOKEN_HEX);
}

void auth_identify(http_request *rq)
{
    const http_server *srv = rq->srv;
    rq->admin = 0;
    rq->participant[0] = '\0';
    rq->by_bearer = 0;
    const char *authz = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz && strncmp(authz, "Bearer ", 7) == 0) {
        const char *token = authz + 7;
        rq->by_bearer = 1;
        if (strlen(token) < SECRET_MAX && auth_check_participant(srv, token, rq->participant)) return;
        rq->admin = auth_check_admin_token(srv, token);
        return; /* a bearer token replaces the cookies */
    }
    const char *session = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, AUTH_COOKIE_PARTICIPANT);
    if (session && strlen(session) < SECRET_MAX) auth_check_participant(srv, session, rq->participant);
    rq->admin = check_admin_cookie(srv, MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, AUTH_COOKIE_ADMIN));
}

void auth_session_cookie(char *out, size_t cap, const char *name, const char *value)
{
    snprintf(out, cap, "%s=%s; HttpOnly; SameSite=Strict; Path=/", name, value);
}

void auth_clear_cookie(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", name);
}
