/*
 * so_test_openai_stub — tests/openai_stub.py as a fixture for the so_openai
 * unit tests: the group setup starts the stub on a free loopback port (it
 * writes the port to a file), killed with the test if the test crashes
 * (PR_SET_PDEATHSIG); the teardown stops it; every wait is bounded.  The
 * stub's behaviour is chosen by the model name (see its docstring); every
 * test uses its own "~tag" so the stub's per-model counters never mix.
 * Without python3 the tests are skipped (SO_TSTUB_NEED).
 *
 *   group setup/teardown:  so_tstub_setup, so_tstub_teardown
 *   a client:              so_tstub_cfg, so_tstub_client(_cfg), so_tstub_chat
 *   the stub's counters:   so_tstub_stats (GET /control/stats), so_tstub_stat
 *
 * Header-only, for one test file per binary (the state is static).
 */
#ifndef SO_TEST_OPENAI_STUB_H
#define SO_TEST_OPENAI_STUB_H

#include "so_test_util.h"
#include "llm/so_openai.h"
#include "base/so_buf.h"
#include "base/so_svc.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

static char so_tstub_dir[128];
static char so_tstub_port_file[200];
static int so_tstub_port;
static pid_t so_tstub_pid = -1;
static char so_tstub_base[64];

static inline void so_tstub_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static inline int so_tstub_setup(void **state)
{
    (void) state;
    so_log_open("test", SO_LOG_WARN);
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return 0; /* each test skips */
    snprintf(so_tstub_dir, sizeof so_tstub_dir, "/tmp/so_test_openai_XXXXXX");
    if (!mkdtemp(so_tstub_dir))
        return -1;
    snprintf(so_tstub_port_file, sizeof so_tstub_port_file, "%s/port", so_tstub_dir);
    so_tstub_pid = fork();
    if (so_tstub_pid < 0)
        return -1;
    if (so_tstub_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("python3", "python3", "tests/openai_stub.py", "--port-file", so_tstub_port_file,
               (char *) NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) { /* bounded: 10 s */
        FILE *f = fopen(so_tstub_port_file, "r");
        if (f) {
            char line[32] = "";
            char *end = NULL;
            long port = fgets(line, sizeof line, f) ? strtol(line, &end, 10) : 0;
            int ok = end && end != line && port > 0 && port < 65536;
            so_tstub_port = (int) port;
            fclose(f);
            if (ok) {
                snprintf(so_tstub_base, sizeof so_tstub_base, "http://127.0.0.1:%d/v1",
                         so_tstub_port);
                return 0;
            }
        }
        if (waitpid(so_tstub_pid, NULL, WNOHANG) == so_tstub_pid) {
            so_tstub_pid = -1;
            return -1;
        }
        so_tstub_sleep_ms(50);
    }
    return -1;
}

static inline int so_tstub_teardown(void **state)
{
    (void) state;
    if (so_tstub_pid > 0) {
        kill(so_tstub_pid, SIGTERM);
        int st;
        for (int i = 0; i < 100 && waitpid(so_tstub_pid, &st, WNOHANG) == 0; i++)
            so_tstub_sleep_ms(50);
        if (waitpid(so_tstub_pid, &st, WNOHANG) == 0) {
            kill(so_tstub_pid, SIGKILL);
            waitpid(so_tstub_pid, &st, 0);
        }
    }
    if (so_tstub_dir[0]) {
        unlink(so_tstub_port_file);
        rmdir(so_tstub_dir);
    }
    return 0;
}

#define SO_TSTUB_NEED() \
    do { \
        if (so_tstub_pid <= 0) \
            skip(); \
    } while (0)

/* A config for the stub with short backoffs; price 1 and 2 USD per 1M. */
static inline void so_tstub_cfg(so_openai_config_t *cfg, const char *model)
{
    so_openai_config_defaults(cfg);
    cfg->base_url = so_tstub_base;
    cfg->model = model;
    cfg->price_in = 1.0;
    cfg->price_out = 2.0;
    cfg->timeout_ms = 5000;
    cfg->backoff_base_ms = 20;
    cfg->backoff_max_ms = 100;
    cfg->seed = 7;
}

static inline so_openai_t *so_tstub_client_cfg(const so_openai_config_t *cfg)
{
    char err[256] = "";
    so_openai_t *c = so_openai_new(cfg, err, sizeof err);
    if (!c)
        fail_msg("so_openai_new: %s", err);
    return c;
}

static inline so_openai_t *so_tstub_client(const char *model)
{
    so_openai_config_t cfg;
    so_tstub_cfg(&cfg, model);
    return so_tstub_client_cfg(&cfg);
}

static inline int so_tstub_chat(so_openai_t *c, const char *text, so_openai_response_t *resp)
{
    so_openai_msg_t m[2] = { { "system", "be brief" }, { "user", text } };
    so_openai_request_t req;
    so_openai_request_init(&req);
    req.messages = m;
    req.n_messages = 2;
    return so_openai_chat(c, &req, resp);
}

/* ---- the stub's /control/stats ---------------------------------------- */

static inline size_t so_tstub_collect(char *data, size_t size, size_t nmemb, void *ud)
{
    so_buf_append(ud, data, size * nmemb);
    return size * nmemb;
}

/* {"requests": {...}, "connections": {...}, "last": {...}}; caller decrefs. */
static inline json_t *so_tstub_stats(void)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/control/stats", so_tstub_port);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    so_buf_t body = SO_BUF_INIT;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, so_tstub_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || !body.data)
        fail_msg("GET /control/stats: %s", curl_easy_strerror(rc));
    json_t *root = json_loadb(body.data, body.len, 0, NULL);
    so_buf_free(&body);
    assert_non_null(root);
    return root;
}

static inline long so_tstub_stat(const char *what, const char *model)
{
    json_t *root = so_tstub_stats();
    json_t *v = json_object_get(json_object_get(root, what), model);
    long n = json_is_integer(v) ? (long) json_integer_value(v) : 0;
    json_decref(root);
    return n;
}

#endif
