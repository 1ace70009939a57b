/* test_metrics.c: confusion matrix, accuracy, macro precision/recall/F1 and
 * torch.argmax's tie and NaN rules, against numbers computed by hand. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/common.h"
#include "engine/metrics.h"
#include "tb_test.h"

/* Writes a logits row whose torch.argmax is pred. */
static void one_hot_row(float *row, int classes, int pred)
{
    for (int j = 0; j < classes; j++) row[j] = (float)(j == 0 ? -0.5 : 0.1 * j);
    row[pred] = 3.0f;
}

/* (true, predicted) for 8 samples:
 *   (0,0) (0,0) (0,1) (1,1) (1,2) (2,2) (3,0) (3,2)
 * Confusion (row true, column predicted), with a 5th class that has neither
 * samples nor predictions when classes = 5:
 *         p0 p1 p2 p3 p4 | row (tp+fn)
 *   t0  [  2  1  0  0  0 ]  3
 *   t1  [  0  1  1  0  0 ]  2
 *   t2  [  0  0  1  0  0 ]  1
 *   t3  [  1  0  1  0  0 ]  2     class 3 is never predicted
 *   t4  [  0  0  0  0  0 ]  0
 *   col   3  2  3  0  0          (tp+fp)
 * accuracy = (2+1+1+0)/8 = 0.5
 * sklearn (labels=range(classes), average='macro', zero_division=0):
 *   precision_c = tp/col (0 if col == 0): 2/3, 1/2, 1/3, 0, 0
 *   recall_c    = tp/row (0 if row == 0): 2/3, 1/2, 1,   0, 0
 *   f1_c = 2tp/(2tp+fp+fn) = 2tp/(row+col) (0 if row+col == 0): 4/6, 2/4, 2/4, 0/2, 0
 * classes = 4: P = 1.5/4 = 0.375, R = (13/6)/4 = 13/24, F1 = (5/3)/4 = 5/12
 * classes = 5: P = 1.5/5 = 0.3,   R = (13/6)/5 = 13/30, F1 = (5/3)/5 = 1/3 */
static const int32_t T8[8] = {0, 0, 0, 1, 1, 2, 3, 3};
static const int P8[8] = {0, 0, 1, 1, 2, 2, 0, 2};

static void add_example(tb_metrics *m, int classes, int split)
{
    float logits[8 * 5];
    for (int i = 0; i < 8; i++) one_hot_row(logits + i * classes, classes, P8[i]);
    if (split) {
        /* two batches: 3 samples with mean loss 1.0, 5 with mean loss 2.0 */
        tb_metrics_add(m, logits, T8, 3, 1.0);
        tb_metrics_add(m, logits + 3 * classes, T8 + 3, 5, 2.0);
    } else {
        tb_metrics_add(m, logits, T8, 8, 1.625);
    }
}

START_TEST(test_confusion_and_macro_4)
{
    tb_metrics m;
    ck_assert_int_eq(tb_metrics_init(&m, 4), 0);
    add_example(&m, 4, 1);
    static const int64_t expect[16] = {2, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(m.confusion[i] == expect[i], "confusion[%d][%d] = %lld, expected %lld", i / 4, i % 4,
                      (long long)m.confusion[i], (long long)expect[i]);
    ck_assert_int_eq(m.count, 8);
    tb_metrics_finish(&m);
    ck_assert_double_eq_tol(m.loss, (3 * 1.0 + 5 * 2.0) / 8.0, 1e-15); /* 1.625 */
    ck_assert_double_eq_tol(m.accuracy, 0.5, 1e-15);
    ck_assert_double_eq_tol(m.macro_precision, 0.375, 1e-15);
    ck_assert_double_eq_tol(m.macro_recall, 13.0 / 24.0, 1e-15);
    ck_assert_double_eq_tol(m.macro_f1, 5.0 / 12.0, 1e-15);
    tb_metrics_free(&m);
    ck_assert_ptr_null(m.confusion);
}
END_TEST

START_TEST(test_macro_ignores_absent_classes)
{
    /* sklearn (labels=None) averages over the labels in y_true or y_pred: a fifth class with
     * no samples and no predictions changes nothing, so the figures equal the 4-class ones. */
    tb_metrics m;
    ck_assert_int_eq(tb_metrics_init(&m, 5), 0);
    add_example(&m, 5, 0);
    tb_metrics_finish(&m);
    ck_assert_double_eq_tol(m.loss, 1.625, 1e-15);
    ck_assert_double_eq_tol(m.accuracy, 0.5, 1e-15);
    ck_assert_double_eq_tol(m.macro_precision, 0.375, 1e-15);
    ck_assert_double_eq_tol(m.macro_recall, 13.0 / 24.0, 1e-15);
    ck_assert_double_eq_tol(m.macro_f1, 5.0 / 12.0, 1e-15);
    tb_metrics_free(&m);
}
END_TEST

START_TEST(test_perfect_and_reset)
{
    tb_metrics m;
    ck_assert_int_eq(tb_metrics_init(&m, 3), 0);
    add_example(&m, 3, 0); /* targets 3 are out of range for 3 classes: counted, never correct */
    tb_metrics_reset(&m);
    ck_assert_int_eq(m.count, 0);
    for (int i = 0; i < 9; i++) ck_assert_int_eq(m.confusion[i], 0);
    float logits[3 * 3];
    const int32_t t[3] = {2, 0, 1};
    for (int i = 0; i < 3; i++) one_hot_row(logits + 3 * i, 3, t[i]);
    tb_metrics_add(&m, logits, t, 3, 0.25);
    tb_metrics_finish(&m);
    ck_assert_double_eq(m.accuracy, 1.0);
    ck_assert_double_eq(m.macro_precision, 1.0);
    ck_assert_double_eq(m.macro_recall, 1.0);
    ck_assert_double_eq(m.macro_f1, 1.0);
    ck_assert_double_eq_tol(m.loss, 0.25, 1e-15);
    tb_metrics_free(&m);
}
END_TEST

START_TEST(test_empty_and_init_errors)
{
    tb_metrics m;
    ck_assert_int_eq(tb_metrics_init(&m, 0), -1);
    ck_assert_int_eq(tb_metrics_init(&m, 2), 0);
    tb_metrics_finish(&m); /* no samples: undefined, NaN rather than a fake 0 */
    ck_assert(isnan(m.loss) && isnan(m.accuracy) && isnan(m.macro_f1));
    tb_metrics_free(&m);
}
END_TEST

START_TEST(test_argmax_ties_and_nan)
{
    /* torch.argmax: first maximum on ties; NaN is the maximum (the first NaN wins). */
    const float rows[][4] = {
        {1.0f, 3.0f, 3.0f, 0.0f},          /* tie -> 1 */
        {2.0f, 2.0f, 2.0f, 2.0f},          /* all equal -> 0 */
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, /* -> 0 */
        {1.0f, NAN, 5.0f, NAN},            /* first NaN -> 1 */
        {NAN, 9.0f, 1.0f, 0.0f},           /* NaN first -> 0 */
        {0.0f, 1.0f, INFINITY, NAN},       /* NaN beats +inf -> 3 */
        {-0.0f, 0.0f, -1.0f, -2.0f},       /* -0 == 0: first -> 0 */
    };
    const int expect[] = {1, 0, 0, 1, 0, 3, 0};
    const int n = (int)TB_ARRAY_LEN(expect);
    for (int i = 0; i < n; i++) {
        tb_metrics m;
        ck_assert_int_eq(tb_metrics_init(&m, 4), 0);
        int32_t target = 0;
        tb_metrics_add(&m, rows[i], &target, 1, 0.0);
        int got = -1;
        for (int j = 0; j < 4; j++)
            if (m.confusion[j]) got = j;
        ck_assert_msg(got == expect[i], "row %d: predicted %d, torch.argmax gives %d", i, got, expect[i]);
        tb_metrics_free(&m);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_confusion_and_macro_4);
    tcase_add_test(tc, test_macro_ignores_absent_classes);
    tcase_add_test(tc, test_perfect_and_reset);
    tcase_add_test(tc, test_empty_and_init_errors);
    tcase_add_test(tc, test_argmax_ties_and_nan);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
