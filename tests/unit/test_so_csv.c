/* Unit tests for so_csv: RFC 4180 quoting, line ends, limits and errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "offline/so_csv.h"

static so_csv_t *s_open(const char *text)
{
    so_csv_t *csv = so_csv_new_buffer(text, strlen(text), "t.csv");
    assert_non_null(csv);
    return csv;
}

static void s_expect_row(so_csv_t *csv, size_t n, ...)
{
    assert_int_equal(so_csv_next(csv), 1);
    assert_int_equal(so_csv_nfields(csv), n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(so_csv_field(csv, i), va_arg(ap, const char *));
    va_end(ap);
}

static void test_plain(void **state)
{
    so_csv_t *csv = s_open("a,b,c\n1,2,3\n");
    s_expect_row(csv, 3, "a", "b", "c");
    assert_int_equal(so_csv_row_line(csv), 1);
    s_expect_row(csv, 3, "1", "2", "3");
    assert_int_equal(so_csv_row_line(csv), 2);
    assert_int_equal(so_csv_row_number(csv), 2);
    assert_int_equal(so_csv_next(csv), 0);
    assert_int_equal(so_csv_next(csv), 0);
    assert_null(so_csv_field(csv, 3));
    so_csv_destroy(&csv);
    assert_null(csv);
    so_csv_destroy(&csv); /* NULL-safe */
}

static void test_quoted(void **state)
{
    so_csv_t *csv = s_open(
        "x,y,z\n\"a,b\",\"say \"\"hi\"\"\",\"line1\nline2\"\n\"\"\"\",\"\",end\n");
    s_expect_row(csv, 3, "x", "y", "z");
    s_expect_row(csv, 3, "a,b", "say \"hi\"", "line1\nline2");
    assert_int_equal(so_csv_row_line(csv), 2);
    s_expect_row(csv, 3, "\"", "", "end");
    assert_int_equal(so_csv_row_line(csv), 4); /* the quoted newline counted */
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);
}

static void test_crlf(void **state)
{
    so_csv_t *csv = s_open("a,b\r\n1,\"x\r\ny\"\r\n\r\n3,4");
    s_expect_row(csv, 2, "a", "b");
    s_expect_row(csv, 2, "1", "x\r\ny"); /* quoted CRLF kept verbatim */
    s_expect_row(csv, 2, "3", "4");      /* blank line skipped, no final newline */
    assert_int_equal(so_csv_row_line(csv), 5);
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);

    csv = s_open("a,b\r1,2\r"); /* lone CR line ends */
    s_expect_row(csv, 2, "a", "b");
    s_expect_row(csv, 2, "1", "2");
    assert_int_equal(so_csv_row_line(csv), 2);
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);
}

static void test_empty_fields(void **state)
{
    so_csv_t *csv = s_open(",,\n\"\",x,\n\n\n");
    s_expect_row(csv, 3, "", "", "");
    s_expect_row(csv, 3, "", "x", "");
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);

    csv = s_open("");
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);
}

static void test_unterminated_quote(void **state)
{
    so_csv_t *csv = s_open("a,b\n1,\"oops\nmore text\n");
    s_expect_row(csv, 2, "a", "b");
    assert_int_equal(so_csv_next(csv), -1);
    assert_int_equal(so_csv_error_line(csv), 2);
    assert_int_equal(so_csv_error_col(csv), 3);
    assert_non_null(strstr(so_csv_error(csv), "t.csv:2:3:"));
    assert_non_null(strstr(so_csv_error(csv), "unterminated"));
    assert_int_equal(so_csv_next(csv), -1); /* stays failed */
    so_csv_destroy(&csv);
}

static void test_stray_quote(void **state)
{
    so_csv_t *csv = s_open("a,b\"c\n");
    assert_int_equal(so_csv_next(csv), -1);
    assert_non_null(strstr(so_csv_error(csv), "t.csv:1:4:"));
    assert_non_null(strstr(so_csv_error(csv), "stray quote"));
    so_csv_destroy(&csv);

    csv = s_open("a,b\n\"x\"y,z\n");
    s_expect_row(csv, 2, "a", "b");
    assert_int_equal(so_csv_next(csv), -1);
    assert_non_null(strstr(so_csv_error(csv), "t.csv:2:4:"));
    assert_non_null(strstr(so_csv_error(csv), "after closing quote"));
    so_csv_destroy(&csv);
}

static void test_field_count(void **state)
{
    so_csv_t *csv = s_open("a,b,c\n1,2,3\n\"multi\nline\",2\n");
    s_expect_row(csv, 3, "a", "b", "c");
    s_expect_row(csv, 3, "1", "2", "3");
    assert_int_equal(so_csv_next(csv), -1);
    assert_int_equal(so_csv_error_line(csv), 3);
    assert_non_null(strstr(so_csv_error(csv), "t.csv:3:"));
    assert_non_null(strstr(so_csv_error(csv), "2 fields, expected 3"));
    so_csv_destroy(&csv);

    csv = s_open("a,b,c\n1,2\n");
    so_csv_set_ragged(csv, 1);
    s_expect_row(csv, 3, "a", "b", "c");
    s_expect_row(csv, 2, "1", "2");
    so_csv_destroy(&csv);
}

static void test_limits(void **state)
{
    so_csv_t *csv = s_open("12345678,\"123456789\"\n");
    so_csv_set_max_field(csv, 8);
    assert_int_equal(so_csv_next(csv), -1);
    assert_non_null(strstr(so_csv_error(csv), "limit of 8 bytes"));
    assert_non_null(strstr(so_csv_error(csv), "t.csv:1:"));
    so_csv_destroy(&csv);

    csv = s_open("a,b,c,d\n");
    so_csv_set_max_fields(csv, 3);
    assert_int_equal(so_csv_next(csv), -1);
    assert_non_null(strstr(so_csv_error(csv), "more than 3 fields"));
    so_csv_destroy(&csv);
}

static void test_embedded_nul(void **state)
{
    const char text[] = "a\0b,c\n";
    so_csv_t *csv = so_csv_new_buffer(text, sizeof text - 1, NULL);
    assert_int_equal(so_csv_next(csv), 1);
    assert_int_equal(so_csv_field_len(csv, 0), 3);
    assert_memory_equal(so_csv_field(csv, 0), "a\0b", 4);
    assert_string_equal(so_csv_name(csv), "<csv>");
    so_csv_destroy(&csv);
}

/* Large quoted fields and CRLFs straddling the 64 KiB read chunks. */
static void test_file_stream(void **state)
{
    FILE *fp = tmpfile();
    assert_non_null(fp);
    const size_t big = 300000;
    fputs("id,text\r\n", fp);
    fputs("1,\"", fp);
    for (size_t i = 0; i < big; i++)
        fputc(i % 1000 == 999 ? '\n' : (i % 7 == 0 ? ',' : 'x'), fp);
    fputs("\"\"\"\r\n", fp);
    for (int r = 0; r < 20000; r++)
        fprintf(fp, "%d,row%d\r\n", r + 2, r);
    rewind(fp);
    so_csv_t *csv = so_csv_new_file(fp, "big.csv");
    assert_non_null(csv);
    s_expect_row(csv, 2, "id", "text");
    assert_int_equal(so_csv_next(csv), 1);
    assert_int_equal(so_csv_field_len(csv, 1), big + 1);
    assert_int_equal(so_csv_field(csv, 1)[big], '"');
    assert_int_equal(so_csv_field(csv, 1)[999], '\n');
    size_t line_after = 2 + big / 1000 + 1;
    for (int r = 0; r < 20000; r++) {
        assert_int_equal(so_csv_next(csv), 1);
        char want[32];
        snprintf(want, sizeof want, "row%d", r);
        assert_string_equal(so_csv_field(csv, 1), want);
        assert_int_equal(so_csv_row_line(csv), line_after + (size_t) r);
    }
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);
    fclose(fp);
}

/* A CR as the last byte of a read chunk and its LF as the first of the next
 * must still count as one line end. */
static void test_crlf_chunk_boundary(void **state)
{
    FILE *fp = tmpfile();
    assert_non_null(fp);
    for (int i = 0; i < 65535; i++)
        fputc('x', fp);
    fputs("\r\ny\r\n", fp);
    rewind(fp);
    so_csv_t *csv = so_csv_new_file(fp, "edge.csv");
    assert_int_equal(so_csv_next(csv), 1);
    assert_int_equal(so_csv_field_len(csv, 0), 65535);
    s_expect_row(csv, 1, "y");
    assert_int_equal(so_csv_row_line(csv), 2);
    assert_int_equal(so_csv_next(csv), 0);
    so_csv_destroy(&csv);
    fclose(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_empty_fields),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_stray_quote),
        cmocka_unit_test(test_field_count),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_file_stream),
        cmocka_unit_test(test_crlf_chunk_boundary),
    };
    return cmocka_run_group_tests_name("so_csv", tests, NULL, NULL);
}
