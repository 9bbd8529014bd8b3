/*
 * so_test_redis — a private redis-server for unit tests: on a unix socket in
 * a fresh temporary directory, no persistence, killed with the test if the
 * test crashes (PR_SET_PDEATHSIG), every wait bounded.
 *
 *   group setup:     so_test_redis_setup("name")  (0, or -1: the group fails)
 *   group teardown:  so_test_redis_teardown()
 *   mid-test:        so_test_redis_stop() / so_test_redis_start()  (outages)
 *   connect to:      so_tr_url ("unix:/tmp/.../redis.sock"), so_tr_sock
 *   per test:        so_test_redis_flush (a cmocka setup: FLUSHALL)
 *   arrange/inspect: so_test_redis_raw(), so_test_redis_cmd(fmt, ...)
 *   a store:         so_test_store() (prefix "t:")
 *
 * Header-only, for one test file per binary (the state is static).
 */
#ifndef SO_TEST_REDIS_H
#define SO_TEST_REDIS_H

#include "so_test_util.h"
#include "store/so_store.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char so_tr_dir[128];
static char so_tr_sock[200];
static char so_tr_url[220];
static pid_t so_tr_pid = -1;

static inline void so_test_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static inline int so_test_have_redis(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* 1 when the server answers PING. */
static inline int so_test_redis_ping(void)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectUnixWithTimeout(so_tr_sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* Starts redis-server on so_tr_sock; 0 once it answers (at most 5 s). */
static inline int so_test_redis_start(void)
{
    so_tr_pid = fork();
    if (so_tr_pid < 0)
        return -1;
    if (so_tr_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", so_tr_sock,
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", so_tr_dir,
               (char *) NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        if (so_test_redis_ping())
            return 0;
        so_test_sleep_ms(50);
    }
    return -1;
}

/* SIGTERM, at most 5 s, then SIGKILL. */
static inline void so_test_redis_stop(void)
{
    if (so_tr_pid <= 0)
        return;
    kill(so_tr_pid, SIGTERM);
    int st;
    for (int i = 0; i < 100 && waitpid(so_tr_pid, &st, WNOHANG) == 0; i++)
        so_test_sleep_ms(50);
    if (waitpid(so_tr_pid, &st, WNOHANG) == 0) {
        kill(so_tr_pid, SIGKILL);
        waitpid(so_tr_pid, &st, 0);
    }
    so_tr_pid = -1;
    unlink(so_tr_sock);
}

static inline int so_test_redis_setup(const char *name)
{
    snprintf(so_tr_dir, sizeof so_tr_dir, "/tmp/so_test_%s_XXXXXX", name);
    if (!mkdtemp(so_tr_dir))
        return -1;
    snprintf(so_tr_sock, sizeof so_tr_sock, "%s/redis.sock", so_tr_dir);
    snprintf(so_tr_url, sizeof so_tr_url, "unix:%s", so_tr_sock);
    return so_test_redis_start();
}

static inline void so_test_redis_teardown(void)
{
    so_test_redis_stop();
    char path[256];
    snprintf(path, sizeof path, "%s/dump.rdb", so_tr_dir);
    unlink(path);
    rmdir(so_tr_dir);
}

/* A raw connection for arranging and inspecting keys (fails the test). */
static inline redisContext *so_test_redis_raw(void)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectUnixWithTimeout(so_tr_sock, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

/* One command; an error reply fails the test. */
static inline void so_test_redis_cmd(const char *fmt, ...)
{
    redisContext *c = so_test_redis_raw();
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
    redisFree(c);
}

/* cmocka setup: every test starts from an empty server. */
static inline int so_test_redis_flush(void **state)
{
    (void) state;
    so_test_redis_cmd("FLUSHALL");
    return 0;
}

static inline so_store_t *so_test_store(void)
{
    char err[256] = "";
    so_store_t *s = so_store_connect(so_tr_url, "t:", 2000, err, sizeof err);
    if (!s)
        fail_msg("connect: %s", err);
    return s;
}

#endif
