/* views.h: the JSON the API answers, one builder per schema of
 * docs/openapi.yaml (Study, Me, Run, Curve, Counts, Overview). Non-finite
 * numbers become null. Each returns a new object, or NULL when out of memory. */
#ifndef TB_HTTP_VIEWS_H
#define TB_HTTP_VIEWS_H

#include "server.h"

#define VIEW_CURVE_BATCH_CAP 20000 /* batch points per curve answer; ask again from the next index */
#define VIEW_CURVE_EPOCH_CAP 1000

/* A JSON string of text as the study wrote it: a byte that is not part of
 * valid UTF-8 (a message cut inside a character) becomes '?'. */
json_t *view_text(const char *text);

json_t *view_study(const http_server *srv);
/* admin: the final result is shown even when the study hides it from participants */
json_t *view_me(const http_server *srv, const tb_fe_state *st, int admin);
json_t *view_run(const http_server *srv, const tb_fe_run *r);
/* Points of run_id's curves from batch_from / epoch_from (NULL: unknown run). */
json_t *view_curve(const http_server *srv, const char *run_id, int batch_from, int epoch_from);
json_t *view_counts(const tb_fe_counts *c);
json_t *view_overview(const http_server *srv);

/* A participant's snapshot / a run's, sized for this build; TB_OK or the study's error in err. */
tb_status view_participant(const http_server *srv, const char *id, tb_fe_state *st, char *err, size_t errlen);
tb_status view_run_info(const http_server *srv, const char *run_id, tb_fe_run *r, char *err, size_t errlen);

#endif
