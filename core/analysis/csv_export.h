/* csv_export.h: an archive as tidy CSV tables for R and pandas (docs/csv.md).
 *
 * OUT_DIR/participants.csv, submissions.csv, finals.csv, runs.csv,
 * epochs.csv, batches.csv, sweep_runs.csv: UTF-8, a header row, RFC 4180
 * quoting (a field with a comma, a quote or a line break is quoted, quotes
 * doubled), NaN and "not given" as an empty field, rows ending in "\n".
 * Every table is written to NAME.csv.tmp first; only when all of them are
 * complete (flushed, fsync'ed, closed) are they renamed into place, so a
 * failure (a full disk) leaves the tables that were there before and no
 * half file. */
#ifndef TB_ANALYSIS_CSV_EXPORT_H
#define TB_ANALYSIS_CSV_EXPORT_H

#include <stdint.h>

#include "base/common.h"
#include "study_data.h"

typedef struct tb_csv_result {
    int64_t participants, submissions, finals, runs, epochs, batches, sweep_runs; /* rows written */
    char notes[4096]; /* runs whose curves could not be read, one line each */
} tb_csv_result;

/* Writes the tables of d into out_dir (created when missing). TB_EIO with
 * "cannot write OUT_DIR/epochs.csv: <reason>" (or create, close, rename) when
 * a table could not be written; then no table in out_dir was changed. */
tb_status tb_csv_export(const tb_study_data *d, const char *out_dir, tb_csv_result *result, tb_err *err);

#endif
