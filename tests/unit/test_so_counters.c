/* Unit tests for so_counters (services/http): requests by route and status,
 * the latency histogram (cumulative buckets, sum, count), errors by
 * ErrorCode and source, rejections, feedback, gauges, label escaping, and
 * the summary the stats line prints. */
#include "so_test_util.h"
#include "so_counters.h"

static void test_render(void **state)
{
    so_counters_t *m = so_counters_new();
    assert_non_null(m);
    so_counters_request(m, SO_ROUTE_CHAT, 200, 0.003);
    so_counters_request(m, SO_ROUTE_CHAT, 200, 0.2);
    so_counters_request(m, SO_ROUTE_CHAT, 504, 40);
    so_counters_request(m, SO_ROUTE_FEEDBACK, 404, 0.001);
    so_counters_request(m, SO_ROUTE_OTHER, 418, 0); /* a status not in the table */
    so_counters_request(m, SO_ROUTE_CHAT, 0, 0.5);  /* the client went away */
    so_counters_error(m, 6, 0);                     /* NO_ELIGIBLE_AGENT from the gateway */
    so_counters_error(m, 2, 1);                     /* TIMEOUT here */
    so_counters_error(m, 1000, 0);                  /* unknown code */
    so_counters_reject(m, SO_REJ_INVALID_JSON);
    so_counters_reject(m, SO_REJ_INVALID_JSON);
    so_counters_feedback(m, SO_FB_LOGGED);
    so_counters_gauges_t g = { .inflight = 3,
                               .gateway_peers = 1,
                               .redis_up = 1,
                               .ready = 1,
                               .handbook_version = "v\"1\\",
                               .gw_sent = 9 };
    char *s = so_counters_render(m, &g);
    assert_non_null(s);
    SO_ASSERT_CONTAINS(s, "so_http_requests_total{route=\"chat\",code=\"200\"} 2\n");
    SO_ASSERT_CONTAINS(s, "so_http_requests_total{route=\"chat\",code=\"504\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_requests_total{route=\"chat\",code=\"0\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_requests_total{route=\"other\",code=\"other\"} 1\n");
    assert_null(strstr(s, "code=\"401\"")); /* zero series are left out */
    SO_ASSERT_CONTAINS(
        s, "so_http_request_duration_seconds_bucket{route=\"chat\",le=\"0.005\"} 1\n");
    SO_ASSERT_CONTAINS(s,
                       "so_http_request_duration_seconds_bucket{route=\"chat\",le=\"0.25\"} 2\n");
    SO_ASSERT_CONTAINS(s,
                       "so_http_request_duration_seconds_bucket{route=\"chat\",le=\"30\"} 3\n");
    SO_ASSERT_CONTAINS(s,
                       "so_http_request_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 4\n");
    SO_ASSERT_CONTAINS(s, "so_http_request_duration_seconds_count{route=\"chat\"} 4\n");
    SO_ASSERT_CONTAINS(s, "so_http_request_duration_seconds_sum{route=\"chat\"} 40.703000\n");
    SO_ASSERT_CONTAINS(s,
                       "so_http_errors_total{code=\"NO_ELIGIBLE_AGENT\",source=\"gateway\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_errors_total{code=\"TIMEOUT\",source=\"local\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_errors_total{code=\"UNKNOWN\",source=\"gateway\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_rejected_total{reason=\"invalid_json\"} 2\n");
    SO_ASSERT_CONTAINS(s, "so_http_rejected_total{reason=\"too_large\"} 0\n");
    SO_ASSERT_CONTAINS(s, "so_http_feedback_total{result=\"logged\"} 1\n");
    SO_ASSERT_CONTAINS(s, "so_http_inflight 3\n");
    SO_ASSERT_CONTAINS(s, "so_http_gateway_messages_total{kind=\"sent\"} 9\n");
    SO_ASSERT_CONTAINS(s, "so_http_handbook_info{version=\"v\\\"1\\\\\"} 1\n");
    /* Every line is a comment or "name{labels} value". */
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strchr(line, ' ') < nl);
        line = nl + 1;
    }
    free(s);

    so_counters_summary_t sum;
    so_counters_summary(m, &sum);
    assert_int_equal(sum.requests, 6);
    assert_int_equal(sum.ok, 2);
    assert_int_equal(sum.client_errors, 1);
    assert_int_equal(sum.server_errors, 1);
    assert_int_equal(sum.rejected, 2);
    assert_int_equal(sum.feedback, 1);
    SO_ASSERT_NEAR(sum.p50_s, 0.5, 0); /* upper bound of the bucket of the 3rd of 4 */
    so_counters_destroy(&m);
    assert_null(m);
    so_counters_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
