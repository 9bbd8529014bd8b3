/*
 * so_pb — the protocol's vocabulary: short names for the protobuf types
 * generated from proto/skillorchestra.proto, and SO_ERR() for its error
 * codes.  Every room may use them (the method's pure modules take turn
 * records and episode outcomes as they come off the wire) without
 * depending on the transport in wire/.
 */
#ifndef SO_PB_H
#define SO_PB_H

#include "skillorchestra.pb-c.h"

/* Use these everywhere instead of local typedefs, so a TurnRequest is
 * so_pb_turn_request_t in every file. */
typedef Skillorchestra__V1__Error so_pb_error_t;
typedef Skillorchestra__V1__ErrorCode so_pb_error_code_t;
typedef Skillorchestra__V1__ChatMessage so_pb_chat_message_t;
typedef Skillorchestra__V1__SkillWeight so_pb_skill_weight_t;
typedef Skillorchestra__V1__TurnRequest so_pb_turn_request_t;
typedef Skillorchestra__V1__SkillDemand so_pb_skill_demand_t;
typedef Skillorchestra__V1__RouteRequest so_pb_route_request_t;
typedef Skillorchestra__V1__SkillCompetence so_pb_skill_competence_t;
typedef Skillorchestra__V1__AgentScore so_pb_agent_score_t;
typedef Skillorchestra__V1__RoutingDecision so_pb_routing_decision_t;
typedef Skillorchestra__V1__AgentCall so_pb_agent_call_t;
typedef Skillorchestra__V1__AgentResult so_pb_agent_result_t;
typedef Skillorchestra__V1__TurnRecord so_pb_turn_record_t;
typedef Skillorchestra__V1__EpisodeOutcome so_pb_episode_outcome_t;
typedef Skillorchestra__V1__TurnReply so_pb_turn_reply_t;

/* The one error-code macro: SO_ERR(TIMEOUT) is
 * SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_TIMEOUT. */
#define SO_ERR(x) SKILLORCHESTRA__V1__ERROR_CODE__ERROR_CODE_##x

#endif
