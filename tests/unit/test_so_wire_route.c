/*
 * Tests of the wire additions made for the service chain: RouteRequest
 * (type 9) and TurnRequest.final_turn.  The golden vector
 * tests/golden/route_request.bin is checked field by field here, independent
 * of tools/so-golden.c, then re-encoded byte for byte.
 */
#include "so_test_wire.h"

static void test_type_table(void **state)
{
    (void) state;
    assert_int_equal(SO_MSG_ROUTE_REQUEST, 9);
    assert_string_equal(so_wire_type_name(SO_MSG_ROUTE_REQUEST), "RouteRequest");
    assert_ptr_equal(so_wire_descriptor(SO_MSG_ROUTE_REQUEST),
                     &skillorchestra__v1__route_request__descriptor);
    assert_int_equal(so_wire_type_of(&skillorchestra__v1__route_request__descriptor),
                     SO_MSG_ROUTE_REQUEST);
}

static void test_golden(void **state)
{
    (void) state;
    size_t len = 0;
    uint8_t *file = s_read("route_request", &len);
    char err[256] = "";
    so_pb_route_request_t *m = NULL;
    assert_int_equal(so_wire_decode(file, SO_WIRE_HDR_LEN, file + SO_WIRE_HDR_LEN,
                                    len - SO_WIRE_HDR_LEN, SO_MSG_ROUTE_REQUEST, (void **) &m,
                                    err, sizeof err),
                     0);
    assert_memory_equal(file, "SO\x01\x09", 4);
    assert_non_null(m->turn);
    assert_non_null(m->demand);
    assert_string_equal(m->turn->request_id, "req-0001");
    assert_string_equal(m->turn->episode_id, "ep-42");
    assert_int_equal(m->turn->turn_index, 3);
    assert_string_equal(m->turn->mode, "code");
    assert_int_equal(m->turn->n_messages, 2);
    assert_string_equal(m->turn->messages[1]->role, "user");
    assert_int_equal(m->turn->lambda_opt_case,
                     SKILLORCHESTRA__V1__TURN_REQUEST__LAMBDA_OPT_LAMBDA);
    assert_true(m->turn->lambda == 0.5);
    assert_true(m->turn->final_turn);
    assert_int_equal(m->turn->n_exclude_agents, 2);
    assert_string_equal(m->demand->request_id, "req-0001");
    assert_string_equal(m->demand->handbook_version, "hb-2024-06-01.3");
    assert_int_equal(m->demand->n_skills, 3);
    assert_string_equal(m->demand->skills[0]->skill_id, "code.string_manipulation");
    assert_true(m->demand->skills[0]->weight == 0.625);
    assert_int_equal(m->demand->source, SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_LLM);

    uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
    size_t blen = 0;
    assert_int_equal(so_wire_encode(SO_MSG_ROUTE_REQUEST, m, hdr, &body, &blen, err, sizeof err),
                     0);
    assert_int_equal(SO_WIRE_HDR_LEN + blen, len);
    assert_memory_equal(hdr, file, SO_WIRE_HDR_LEN);
    assert_memory_equal(body, file + SO_WIRE_HDR_LEN, blen);
    free(body);
    so_wire_free(SO_MSG_ROUTE_REQUEST, m);
    free(file);
}

static void test_validation(void **state)
{
    (void) state;
    char err[256] = "";
    so_pb_chat_message_t chat = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
    so_pb_chat_message_t *chats[] = { &chat };
    chat.role = "user";
    chat.content = "hello";
    so_pb_turn_request_t turn = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    turn.request_id = "r1";
    turn.episode_id = "e1";
    turn.n_messages = 1;
    turn.messages = chats;
    so_pb_skill_demand_t dem = SKILLORCHESTRA__V1__SKILL_DEMAND__INIT;
    dem.request_id = "r1";
    dem.handbook_version = "v1";
    dem.source = SKILLORCHESTRA__V1__SKILL_DEMAND__SOURCE__SOURCE_UNIFORM_FALLBACK;
    so_pb_route_request_t rr = SKILLORCHESTRA__V1__ROUTE_REQUEST__INIT;

    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), -1);
    assert_string_equal(err, "RouteRequest.turn: absent (required)");
    rr.turn = &turn;
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), -1);
    assert_string_equal(err, "RouteRequest.demand: absent (required)");
    rr.demand = &dem;
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), 0);
    dem.request_id = "r2";
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), -1);
    assert_string_equal(err,
                        "RouteRequest.demand.request_id: \"r2\" differs from turn.request_id");
    dem.request_id = "r1";
    turn.episode_id = "";
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), -1);
    assert_string_equal(err, "RouteRequest.turn.episode_id: empty (required)");
    turn.episode_id = "e1";
    dem.source = 0;
    assert_int_equal(so_wire_validate(SO_MSG_ROUTE_REQUEST, &rr, err, sizeof err), -1);
    assert_non_null(strstr(err, "RouteRequest.demand.source"));
}

/* final_turn survives a round trip; an unset one stays false. */
static void test_final_turn(void **state)
{
    (void) state;
    char err[256] = "";
    so_pb_chat_message_t chat = SKILLORCHESTRA__V1__CHAT_MESSAGE__INIT;
    so_pb_chat_message_t *chats[] = { &chat };
    chat.role = "user";
    so_pb_turn_request_t turn = SKILLORCHESTRA__V1__TURN_REQUEST__INIT;
    turn.request_id = "r1";
    turn.episode_id = "e1";
    turn.n_messages = 1;
    turn.messages = chats;
    /* A client may leave episode_id empty (the gateway assigns one). */
    turn.episode_id = "";
    assert_int_equal(so_wire_validate(SO_MSG_TURN_REQUEST, &turn, err, sizeof err), 0);
    turn.episode_id = "e1";
    for (int final = 0; final <= 1; final++) {
        turn.final_turn = final;
        uint8_t hdr[SO_WIRE_HDR_LEN], *body = NULL;
        size_t blen = 0;
        assert_int_equal(so_wire_encode(SO_MSG_TURN_REQUEST, &turn, hdr, &body, &blen, err,
                                        sizeof err),
                         0);
        so_pb_turn_request_t *back = NULL;
        assert_int_equal(so_wire_decode(hdr, sizeof hdr, body, blen, SO_MSG_TURN_REQUEST,
                                        (void **) &back, err, sizeof err),
                         0);
        assert_int_equal(back->final_turn, final);
        so_wire_free(SO_MSG_TURN_REQUEST, back);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_final_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
