/* journal.h: an append-only, checksummed record log (one per archive run).
 *
 * On disk a journal is a sequence of records, nothing else (no file header):
 *
 *   u32 length            bytes of payload (little-endian)
 *   u32 crc32c(length)    CRC32C of the 4 length bytes
 *   payload               u32 type (little-endian), then length-4 bytes of data
 *   u32 crc32c(payload)   CRC32C of the whole payload, type included
 *
 * the framing of TensorBoard's event files. A reader stops at the first record
 * that is short (torn by a crash) or fails a check, and reports how many bytes
 * were valid; tb_journal_truncate_to_valid cuts such a tail off on recovery.
 *
 * A tb_journal handle is not thread-safe: one thread at a time (the archive
 * holds its mutex around every call). */
#ifndef TB_JOURNAL_H
#define TB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

/* The largest payload accepted (type included); longer length fields are treated as damage. */
#define TB_JOURNAL_MAX_PAYLOAD (64u << 20)

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven in software.
 * Start with crc = 0; pass the previous result to continue over more bytes.
 * tb_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t tb_crc32c(uint32_t crc, const void *data, size_t n);

typedef struct tb_journal tb_journal;

/* Creates path (mode 0644) or opens it for appending. An existing journal must
 * end on a record boundary: a torn or damaged tail is an error (run
 * tb_journal_truncate_to_valid first). When the file is created, its directory
 * is fsync'ed too, so the new name survives power loss. */
tb_status tb_journal_open(const char *path, tb_journal **out, tb_err *err);

/* tb_journal_open for an existing journal the caller has just read whole with
 * tb_journal_read and, when its tail was torn, cut back with tb_journal_truncate:
 * valid_bytes is its valid prefix, now the whole file. The records are not read
 * again; only the file's size is checked (TB_EFORMAT when it differs). */
tb_status tb_journal_open_valid(const char *path, uint64_t valid_bytes, tb_journal **out, tb_err *err);

/* Appends one record with a single write() of the whole record (a failed or
 * short write is cut off again, so the journal stays well formed). With durable
 * set it fsync()s before returning: then this record and every earlier one
 * survive power loss. Without it they survive the death of the process. */
tb_status tb_journal_append(tb_journal *j, uint32_t type, const void *data, size_t len, int durable, tb_err *err);

/* fsync()s what was appended so far. */
tb_status tb_journal_sync(tb_journal *j, tb_err *err);

/* Bytes in the journal (all of them whole records). */
uint64_t tb_journal_size(const tb_journal *j);
const char *tb_journal_path(const tb_journal *j);

/* Closes the descriptor (no fsync; call tb_journal_sync first if needed). NULL is fine. */
void tb_journal_close(tb_journal *j);

/* Called once per valid record, in order; return 0 to go on, -1 to stop
 * (tb_journal_read then fails with TB_EFORMAT naming the record's offset). */
typedef int (*tb_journal_fn)(void *ctx, uint32_t type, const void *data, size_t len);

/* Replays the valid records of path and stops at the first torn or bad one.
 * valid_bytes (may be NULL) receives the length of the valid prefix and
 * file_bytes (may be NULL) the file's size: they differ when the tail is torn
 * or damaged, which is not an error here. fn may be NULL (just validate). */
tb_status tb_journal_read(const char *path, tb_journal_fn fn, void *ctx, uint64_t *valid_bytes, uint64_t *file_bytes,
                          tb_err *err);

/* What tb_journal_scan found in a journal. When valid_bytes < file_bytes the
 * journal is damaged at valid_bytes; the bytes after it are searched for
 * intact records (re-synchronising: an offset where the length's CRC and the
 * payload's CRC both check, and again after any further damage). None after
 * it (records_after 0): a torn tail, what a crash in the middle of an append
 * leaves. Some: damage in the middle, and cutting there would drop them. */
typedef struct tb_journal_damage {
    uint64_t file_bytes;    /* the file's size */
    uint64_t valid_bytes;   /* the valid prefix; the first damaged byte when < file_bytes */
    uint64_t records_valid; /* records in the valid prefix */
    uint64_t resync_at;     /* where the first intact record after the damage starts (file_bytes: none) */
    uint64_t records_after; /* intact records after the damage */
    uint64_t bytes_after;   /* their bytes */
} tb_journal_damage;

/* Reads path whole and describes its damage, if any (changes nothing). Only
 * the framing is checked, not what the records mean. */
tb_status tb_journal_scan(const char *path, tb_journal_damage *out, tb_err *err);

/* Copies path's bytes from offset from to its end into a new file
 * "<path>.damaged-N" (the first free N from 1: an earlier one is never
 * overwritten), fsync'ed with its directory; aside (cap bytes, may be 0)
 * receives its name. Call before cutting the journal at from. */
tb_status tb_journal_save_tail(const char *path, uint64_t from, char *aside, size_t cap, tb_err *err);

/* Cuts path back to valid_bytes (the valid prefix tb_journal_read reported) and
 * fsync()s it: recovery after one read of the journal. */
tb_status tb_journal_truncate(const char *path, uint64_t valid_bytes, tb_err *err);

/* Cuts path back to its valid prefix and fsync()s it (nothing happens when the
 * whole file is valid). dropped_bytes (may be NULL) receives how much was cut. */
tb_status tb_journal_truncate_to_valid(const char *path, uint64_t *dropped_bytes, tb_err *err);

#endif
