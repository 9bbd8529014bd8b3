/*
 * so_csv — a streaming RFC 4180 CSV reader.
 *
 * Reads one record at a time from a FILE* or a memory buffer (both borrowed,
 * never closed or freed by the reader).  Handles quoted fields containing
 * commas, doubled quotes ("") and line breaks, and LF, CRLF or lone-CR line
 * ends.  Fields of the current row are NUL-terminated strings owned by the
 * reader and valid until the next so_csv_next() or so_csv_destroy().
 *
 * Strictness: a quote inside an unquoted field, a character other than a
 * separator or line end after a closing quote, an unterminated quote at end
 * of input, a field longer than the cap (16 MiB by default) and, unless
 * disabled, a row whose field count differs from the first row's are errors
 * with a message "NAME:LINE:COL: problem".  Completely empty lines are
 * skipped (as Python's csv module does).  Quoted line breaks are kept
 * verbatim (a quoted CRLF stays CRLF).
 *
 *     so_csv_t *csv = so_csv_new_file(fp, "data.csv");
 *     int rc;
 *     while ((rc = so_csv_next(csv)) == 1)
 *         use(so_csv_field(csv, 0), so_csv_nfields(csv));
 *     if (rc < 0)
 *         fprintf(stderr, "%s\n", so_csv_error(csv));
 *     so_csv_destroy(&csv);
 */
#ifndef SO_CSV_H
#define SO_CSV_H

#include <stddef.h>
#include <stdio.h>

#define SO_CSV_DEFAULT_MAX_FIELD ((size_t) 16 << 20) /* 16 MiB */
#define SO_CSV_DEFAULT_MAX_FIELDS ((size_t) 1 << 20) /* fields per row */

typedef struct so_csv_t so_csv_t;

/* Reader over an open stream; `name` (copied; may be NULL → "<csv>") is used
 * in error messages.  The stream stays the caller's.  NULL when fp is NULL
 * (allocation follows base/so_alloc.h: out of memory aborts). */
so_csv_t *so_csv_new_file(FILE *fp, const char *name);
/* Reader over buf[0..len); the buffer must outlive the reader. */
so_csv_t *so_csv_new_buffer(const char *buf, size_t len, const char *name);
/* NULL-safe; sets *self_p to NULL. */
void so_csv_destroy(so_csv_t **self_p);

/* Longest accepted field in bytes (default SO_CSV_DEFAULT_MAX_FIELD). */
void so_csv_set_max_field(so_csv_t *self, size_t max_bytes);
/* Most fields accepted in one row (default SO_CSV_DEFAULT_MAX_FIELDS). */
void so_csv_set_max_fields(so_csv_t *self, size_t max_fields);
/* ragged != 0: rows may have different field counts (default: every row
 * must have as many fields as the first). */
void so_csv_set_ragged(so_csv_t *self, int ragged);

/* Reads the next record: 1 = a row is available, 0 = end of input,
 * -1 = error (see so_csv_error; the reader stays in the error state). */
int so_csv_next(so_csv_t *self);

size_t so_csv_nfields(const so_csv_t *self);
/* Field i of the current row (NUL-terminated), or NULL if i is out of range.
 * so_csv_field_len gives its length in bytes (fields may contain NUL). */
const char *so_csv_field(const so_csv_t *self, size_t i);
size_t so_csv_field_len(const so_csv_t *self, size_t i);
/* 1-based physical line on which the current row starts. */
size_t so_csv_row_line(const so_csv_t *self);
/* 1-based record number of the current row (the header is record 1). */
size_t so_csv_row_number(const so_csv_t *self);
/* The name given at creation. */
const char *so_csv_name(const so_csv_t *self);
/* Last error message ("" if none); owned by the reader. */
const char *so_csv_error(const so_csv_t *self);
/* Line and column (1-based, in bytes) of the last error; 0 if none. */
size_t so_csv_error_line(const so_csv_t *self);
size_t so_csv_error_col(const so_csv_t *self);

#endif
