/*
 * so_csv — streaming RFC 4180 reader.  See so_csv.h.
 *
 * The parser is a small state machine driven one byte at a time from either
 * a caller's buffer or a 64 KiB chunk refilled from a FILE*.  All fields of
 * the current row live back to back in one growing byte buffer, each
 * followed by a NUL, with their offsets in a side array; nothing is sized
 * from the input beyond the configurable per-field and per-row caps.
 */
#include "offline/so_csv.h"
#include "base/so_alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK 65536

struct so_csv_t {
    char *name;
    FILE *fp;        /* NULL in buffer mode */
    const char *src; /* current input window */
    size_t src_len, src_pos;
    char *chunk; /* file mode: owned window */
    int at_eof;  /* the source is exhausted */

    size_t line, col;     /* position of the next byte */
    size_t c_line, c_col; /* position of the byte last returned */

    char *data; /* fields of the current row, NUL-separated */
    size_t data_len, data_cap;
    size_t *starts, *lens; /* per field */
    size_t nfields, fields_cap;

    size_t max_field, max_fields;
    int ragged;
    size_t expect; /* field count of the first row; 0 = not yet */
    size_t row_line, row_number;

    int failed;
    char err[512];
    size_t err_line, err_col;
};

static so_csv_t *s_new(const char *name)
{
    so_csv_t *self = so_calloc(1, sizeof *self);
    self->name = so_strdup(name ? name : "<csv>");
    self->line = 1;
    self->col = 1;
    self->max_field = SO_CSV_DEFAULT_MAX_FIELD;
    self->max_fields = SO_CSV_DEFAULT_MAX_FIELDS;
    return self;
}

so_csv_t *so_csv_new_file(FILE *fp, const char *name)
{
    if (!fp)
        return NULL;
    so_csv_t *self = s_new(name);
    self->chunk = so_malloc(S_CHUNK);
    self->fp = fp;
    self->src = self->chunk;
    return self;
}

so_csv_t *so_csv_new_buffer(const char *buf, size_t len, const char *name)
{
    if (!buf && len)
        return NULL;
    so_csv_t *self = s_new(name);
    self->src = buf ? buf : "";
    self->src_len = len;
    return self;
}

void so_csv_destroy(so_csv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    so_csv_t *self = *self_p;
    free(self->name);
    free(self->chunk);
    free(self->data);
    free(self->starts);
    free(self->lens);
    free(self);
    *self_p = NULL;
}

void so_csv_set_max_field(so_csv_t *self, size_t max_bytes)
{
    self->max_field = max_bytes;
}

void so_csv_set_max_fields(so_csv_t *self, size_t max_fields)
{
    self->max_fields = max_fields ? max_fields : 1;
}

void so_csv_set_ragged(so_csv_t *self, int ragged)
{
    self->ragged = ragged;
}

static int s_fail(so_csv_t *self, size_t line, size_t col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(self->err, sizeof self->err, "%s:%zu:%zu: %s", self->name, line, col, msg);
    self->err_line = line;
    self->err_col = col;
    self->failed = 1;
    return -1;
}

/* Makes at least one byte available; returns 0 at end of input, -1 on a
 * read error (recorded), 1 otherwise. */
static int s_fill(so_csv_t *self)
{
    if (self->failed)
        return -1;
    if (self->src_pos < self->src_len)
        return 1;
    if (self->at_eof || !self->fp) {
        self->at_eof = 1;
        return 0;
    }
    size_t n = fread(self->chunk, 1, S_CHUNK, self->fp);
    if (n == 0) {
        self->at_eof = 1;
        if (ferror(self->fp))
            return s_fail(self, self->line, self->col, "read error: %s", strerror(errno));
        return 0;
    }
    self->src_len = n;
    self->src_pos = 0;
    return 1;
}

/* Next raw byte without consuming it; EOF at end; -2 on read error. */
static int s_peek(so_csv_t *self)
{
    int rc = s_fill(self);
    if (rc < 0)
        return -2;
    if (rc == 0)
        return EOF;
    return (unsigned char) self->src[self->src_pos];
}

/* Consumes one byte (call only after s_peek returned a byte) and keeps the
 * line/column bookkeeping: LF, CRLF and a lone CR each end one line. */
static int s_get(so_csv_t *self)
{
    int c = (unsigned char) self->src[self->src_pos++];
    self->c_line = self->line;
    self->c_col = self->col;
    if (c == '\n') {
        self->line++;
        self->col = 1;
    } else if (c == '\r') {
        if (s_peek(self) == '\n') {
            self->col++; /* the LF that follows ends the line */
        } else {
            self->line++;
            self->col = 1;
        }
    } else {
        self->col++;
    }
    return c;
}

/* Ensures room for `need` bytes in the row buffer. */
static void s_reserve(so_csv_t *self, size_t need)
{
    if (need <= self->data_cap)
        return;
    size_t ncap = self->data_cap ? self->data_cap : 4096;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            so_oom("so_csv");
        ncap *= 2;
    }
    self->data = so_realloc(self->data, ncap);
    self->data_cap = ncap;
}

static int s_putc(so_csv_t *self, int c)
{
    size_t fi = self->nfields - 1;
    if (self->lens[fi] >= self->max_field)
        return s_fail(self, self->c_line, self->c_col,
                      "field %zu is longer than the limit of %zu bytes", self->nfields,
                      self->max_field);
    s_reserve(self, self->data_len + 2);
    self->data[self->data_len++] = (char) c;
    self->lens[fi]++;
    return 0;
}

static int s_begin_field(so_csv_t *self)
{
    if (self->nfields >= self->max_fields)
        return s_fail(self, self->line, self->col, "more than %zu fields in one row",
                      self->max_fields);
    if (self->nfields + 1 > self->fields_cap) {
        size_t ncap = self->fields_cap ? self->fields_cap * 2 : 64;
        self->starts = so_reallocarray(self->starts, ncap, sizeof(size_t));
        self->lens = so_reallocarray(self->lens, ncap, sizeof(size_t));
        self->fields_cap = ncap;
    }
    self->starts[self->nfields] = self->data_len;
    self->lens[self->nfields] = 0;
    self->nfields++;
    return 0;
}

static int s_end_field(so_csv_t *self)
{
    s_reserve(self, self->data_len + 1);
    self->data[self->data_len++] = '\0';
    return 0;
}

static const char *s_show(int c, char *buf, size_t len)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, len, "'%c'", c);
    else
        snprintf(buf, len, "byte 0x%02x", (unsigned) c & 0xffu);
    return buf;
}

/* Reads one field starting at the current position.  Returns 1 when the
 * field ended with a separator (another field follows), 0 when it ended the
 * record, -1 on error. */
static int s_field(so_csv_t *self)
{
    char shown[32];
    if (s_begin_field(self) < 0)
        return -1;
    int c = s_peek(self);
    if (c == '"') {
        s_get(self);
        size_t q_line = self->c_line, q_col = self->c_col;
        for (;;) {
            c = s_peek(self);
            if (c == -2)
                return -1;
            if (c == EOF)
                return s_fail(
                    self, q_line, q_col,
                    "unterminated quoted field (the input ends before its closing quote)");
            s_get(self);
            if (c == '"') {
                if (s_peek(self) == '"') {
                    s_get(self);
                } else {
                    break;
                }
            }
            if (s_putc(self, c) < 0)
                return -1;
        }
        if (s_end_field(self) < 0)
            return -1;
        c = s_peek(self);
        if (c == ',') {
            s_get(self);
            return 1;
        }
        if (c == '\r' || c == '\n' || c == EOF)
            return 0;
        if (c == -2)
            return -1;
        return s_fail(self, self->line, self->col, "unexpected %s after closing quote",
                      s_show(c, shown, sizeof shown));
    }
    for (;;) {
        c = s_peek(self);
        if (c == -2)
            return -1;
        if (c == ',') {
            s_get(self);
            return s_end_field(self) < 0 ? -1 : 1;
        }
        if (c == '\r' || c == '\n' || c == EOF)
            return s_end_field(self) < 0 ? -1 : 0;
        if (c == '"')
            return s_fail(self, self->line, self->col,
                          "stray quote inside an unquoted field (quote the whole field and "
                          "double the quote)");
        s_get(self);
        if (s_putc(self, c) < 0)
            return -1;
    }
}

int so_csv_next(so_csv_t *self)
{
    if (!self)
        return -1;
    if (self->failed)
        return -1;
    self->nfields = 0;
    self->data_len = 0;
    /* skip empty lines */
    for (;;) {
        int c = s_peek(self);
        if (c == -2)
            return -1;
        if (c == EOF)
            return 0;
        if (c != '\r' && c != '\n')
            break;
        s_get(self);
    }
    self->row_line = self->line;
    int rc;
    while ((rc = s_field(self)) == 1)
        ;
    if (rc < 0)
        return -1;
    /* consume the line end (CRLF, LF or CR); EOF needs nothing */
    int c = s_peek(self);
    if (c == '\r') {
        s_get(self);
        if (s_peek(self) == '\n')
            s_get(self);
    } else if (c == '\n') {
        s_get(self);
    }
    if (self->failed)
        return -1;
    self->row_number++;
    if (!self->ragged) {
        if (self->expect == 0) {
            self->expect = self->nfields;
        } else if (self->nfields != self->expect) {
            return s_fail(self, self->row_line, 1,
                          "record %zu has %zu fields, expected %zu (as in the first row)",
                          self->row_number, self->nfields, self->expect);
        }
    }
    return 1;
}

size_t so_csv_nfields(const so_csv_t *self)
{
    return self->nfields;
}

const char *so_csv_field(const so_csv_t *self, size_t i)
{
    if (i >= self->nfields)
        return NULL;
    return self->data + self->starts[i];
}

size_t so_csv_field_len(const so_csv_t *self, size_t i)
{
    return i < self->nfields ? self->lens[i] : 0;
}

size_t so_csv_row_line(const so_csv_t *self)
{
    return self->row_line;
}

size_t so_csv_row_number(const so_csv_t *self)
{
    return self->row_number;
}

const char *so_csv_name(const so_csv_t *self)
{
    return self->name;
}

const char *so_csv_error(const so_csv_t *self)
{
    return self->err;
}

size_t so_csv_error_line(const so_csv_t *self)
{
    return self->err_line;
}

size_t so_csv_error_col(const so_csv_t *self)
{
    return self->err_col;
}
