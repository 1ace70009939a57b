/* http_client.c: see http_client.h. */
#define _GNU_SOURCE /* strcasestr */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double hc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void hc_free(hc_response *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *hc_header(const hc_response *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') v++;
            snprintf(out, cap, "%.*s", (int)(end - v), v);
            return out;
        }
        line = *end ? end + 2 : end;
    }
    return NULL;
}

/* Splits the raw answer in data into r; takes data. */
static void parse_answer(char *data, size_t len, hc_response *r)
{
    char *head_end = strstr(data, "\r\n\r\n");
    if (!head_end || sscanf(data, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = 0;
        r->body = data;
        r->len = len;
        return;
    }
    size_t head_len = (size_t)(head_end - data) + 2;
    char *first = strstr(data, "\r\n") + 2;
    snprintf(r->headers, sizeof r->headers, "%.*s", (int)(head_len - (size_t)(first - data)), first);
    size_t body_len = len - (head_len + 2);
    memmove(data, head_end + 4, body_len);
    data[body_len] = '\0';
    r->body = data;
    r->len = body_len;
    char ct[128];
    if (hc_header(r, "Content-Type", ct, sizeof ct) && strstr(ct, "json"))
        r->json = json_loadb(r->body, r->len, 0, NULL);
}

int hc_raw(int port, const char *raw, size_t raw_len, hc_response *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    int fd = connect_loopback(port);
    if (fd < 0) return -1;
    send_all(fd, raw, raw_len); /* a server may answer (413) and close before reading it all */
    size_t cap = 65536, len = 0;
    char *data = malloc(cap);
    double until = hc_now_ms() + timeout_ms;
    while (data) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(until - hc_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        if (len + 4096 + 1 > cap) {
            char *d = realloc(data, cap *= 2);
            if (!d) break;
            data = d;
        }
        ssize_t n = recv(fd, data + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (!data) return -1;
    data[len] = '\0';
    parse_answer(data, len, r);
    return r->status ? 0 : -1;
}

/* The request's header lines for c: credentials and, on a POST, the CSRF header. */
static void client_headers(const hc_client *c, const char *method, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    if (c->bearer[0]) used += (size_t)snprintf(out + used, cap - used, "Authorization: Bearer %s\r\n", c->bearer);
    else if (c->session[0] || c->admin[0]) {
        used += (size_t)snprintf(out + used, cap - used, "Cookie: ");
        if (c->session[0]) used += (size_t)snprintf(out + used, cap - used, "tb_session=%s", c->session);
        if (c->admin[0])
            used += (size_t)snprintf(out + used, cap - used, "%stb_admin=%s", c->session[0] ? "; " : "", c->admin);
        used += (size_t)snprintf(out + used, cap - used, "\r\n");
    }
    if (strcmp(method, "POST") == 0 && !c->no_csrf && !c->bearer[0])
        snprintf(out + used, cap - used, "X-Tunebench: 1\r\n");
}

/* Keeps the cookies a Set-Cookie header line sets (or clears). */
static void take_cookies(hc_client *c, const hc_response *r)
{
    for (const char *p = r->headers; (p = strcasestr(p, "Set-Cookie: ")) != NULL;) {
        p += 12;
        size_t n = strcspn(p, ";\r");
        if (strncmp(p, "tb_session=", 11) == 0)
            snprintf(c->session, sizeof c->session, "%.*s", (int)(n - 11), p + 11);
        else if (strncmp(p, "tb_admin=", 9) == 0)
            snprintf(c->admin, sizeof c->admin, "%.*s", (int)(n - 9), p + 9);
    }
}

int hc_call(hc_client *c, const char *method, const char *path, const char *body, hc_response *r)
{
    char headers[1024];
    client_headers(c, method, headers, sizeof headers);
    size_t body_len = body ? strlen(body) : 0;
    size_t cap = 2048 + body_len;
    char *req = malloc(cap);
    if (!req) return -1;
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s%zu\r\n\r\n%s", method, path,
                     headers, body ? "Content-Type: application/json\r\n" : "",
                     "Content-Length: ", body_len, body ? body : "");
    int rc = hc_raw(c->port, req, (size_t)n, r, 30000);
    free(req);
    if (rc == 0) take_cookies(c, r);
    return rc;
}

int hc_stream_open(hc_client *c, const char *path)
{
    char headers[1024], req[2048];
    client_headers(c, "GET", headers, sizeof headers);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n",
                     path, headers);
    int fd = connect_loopback(c->port);
    if (fd >= 0 && send_all(fd, req, (size_t)n) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

int hc_stream_wait(int fd, char *buf, size_t cap, size_t *len, size_t from, const char *pattern, int timeout_ms)
{
    double until = hc_now_ms() + timeout_ms;
    for (;;) {
        buf[*len] = '\0';
        if (from < *len && strstr(buf + from, pattern)) return 1;
        int left = (int)(until - hc_now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) return 0;
        if (*len + 1 >= cap) { /* keep the newest half */
            size_t keep = cap / 2;
            memmove(buf, buf + *len - keep, keep);
            from = from > *len - keep ? from - (*len - keep) : 0;
            *len = keep;
        }
        ssize_t n = recv(fd, buf + *len, cap - *len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        *len += (size_t)n;
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The log's text from offset on into out. */
static void read_from(const char *log, long offset, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (!f) return;
    if (fseek(f, offset, SEEK_SET) == 0) {
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
    }
    fclose(f);
}

int hc_spawn_study(const char *exe, const char *cfg, const char *log, int timeout_ms, int *pid, int *port, char *err,
                   size_t errlen)
{
    struct stat st;
    long before = stat(log, &st) == 0 ? (long)st.st_size : 0; /* a restart appends to the same log */
    pid_t child = fork();
    if (child < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (child == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0) _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, "tunebench", "study", cfg, "--frontend", "http", (char *)NULL);
        _exit(127);
    }
    static char text[65536];
    double until = hc_now_ms() + timeout_ms;
    while (hc_now_ms() < until) {
        read_from(log, before, text, sizeof text);
        const char *at = strstr(text, "tunebench: participants: http://127.0.0.1:");
        if (at && sscanf(at, "tunebench: participants: http://127.0.0.1:%d/", port) == 1) {
            *pid = child;
            return 0;
        }
        int status;
        if (waitpid(child, &status, WNOHANG) == child) {
            snprintf(err, errlen, "the server exited (status %d) before serving:\n%s", status, text);
            return -1;
        }
        sleep_ms(20);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    snprintf(err, errlen, "the server did not print its URL within %d ms:\n%s", timeout_ms, text);
    return -1;
}

int hc_stop_study(int pid, int sig, int timeout_ms)
{
    if (sig) kill(pid, sig);
    double until = hc_now_ms() + timeout_ms;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (hc_now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(20);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
