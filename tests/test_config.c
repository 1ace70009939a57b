/* test_config.c: INI configurations (core/base/config.c): every typed accessor
 * with its messages, --set overrides over the file, unknown keys and
 * sections with the nearest valid name, malformed, out-of-range and NaN
 * values, file errors with their line, and the INI round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "tb_test.h"

#define ASSERT_HAS(msg, part) ck_assert_msg(strstr((msg), (part)) != NULL, "\"%s\" lacks \"%s\"", (msg), (part))

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *write_ini(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tbtest-config-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert(write(fd, text, n) == (ssize_t)n);
    close(fd);
    return path;
}

static tb_config *load_text(const char *text)
{
    const char *path = write_ini(text);
    tb_config *cfg = NULL;
    tb_err err;
    tb_status s = tb_config_load(&cfg, path, &err);
    ck_assert_msg(s == TB_OK, "%s", err.msg);
    ck_assert_str_eq(tb_config_path(cfg), path);
    unlink(path);
    return cfg;
}

/* Loads text expecting failure; returns the message with the temporary path replaced by "F". */
static const char *load_fails(const char *text)
{
    static char msg[600];
    const char *path = write_ini(text);
    tb_config *cfg = (tb_config *)1;
    tb_err err;
    ck_assert(tb_config_load(&cfg, path, &err) != TB_OK);
    ck_assert_ptr_null(cfg);
    unlink(path);
    const char *at = strstr(err.msg, path);
    ck_assert_msg(at != NULL, "message does not name the file: %s", err.msg);
    snprintf(msg, sizeof msg, "%.*sF%s", (int)(at - err.msg), err.msg, at + strlen(path));
    return msg;
}

static const char *sample =
    "; a sample configuration\n"
    "[Train]\n"
    "Epochs = 3\n"
    "lr = 0.05        ; inline comment\n"
    "batch_size=64\n"
    "nesterov = Yes\n"
    "optimizer = Adam\n"
    "\n"
    "# another comment\n"
    "[model]\n"
    "name = cnn\n"
    "filters = 32, 64,128\n"
    "title = \"a # and ; quoted\"\n"
    "empty =\n"
    "[plugins]\n";

START_TEST(test_load_and_read)
{
    tb_config *cfg = load_text(sample);
    ck_assert_str_eq(tb_config_get(cfg, "train", "epochs"), "3");
    ck_assert_str_eq(tb_config_get(cfg, "TRAIN", "Epochs"), "3"); /* case-insensitive names */
    ck_assert_str_eq(tb_config_get(cfg, "train", "lr"), "0.05");
    ck_assert_str_eq(tb_config_get(cfg, "train", "optimizer"), "Adam"); /* values keep their case */
    ck_assert_str_eq(tb_config_get(cfg, "model", "title"), "a # and ; quoted");
    ck_assert_str_eq(tb_config_get(cfg, "model", "empty"), "");
    ck_assert_ptr_null(tb_config_get(cfg, "train", "momentum"));
    ck_assert_ptr_null(tb_config_get(cfg, "nosection", "lr"));
    ck_assert(tb_config_has_section(cfg, "plugins")); /* empty, but present */
    ck_assert(tb_config_has_section(cfg, "Model"));
    ck_assert(!tb_config_has_section(cfg, "output"));

    const char *keys[8];
    ck_assert_int_eq(tb_config_keys(cfg, "train", keys, 8), 5);
    ck_assert_str_eq(keys[0], "epochs");
    ck_assert_str_eq(keys[4], "optimizer");
    ck_assert_int_eq(tb_config_keys(cfg, "train", keys, 2), 5); /* the count, even past max */
    ck_assert_int_eq(tb_config_keys(cfg, "plugins", NULL, 0), 0);
    const char *secs[8];
    ck_assert_int_eq(tb_config_sections(cfg, secs, 8), 3);
    ck_assert_str_eq(secs[0], "train");
    ck_assert_str_eq(secs[2], "plugins");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_int)
{
    tb_config *cfg = tb_config_new();
    tb_err err;
    int64_t v = -1;
    ck_assert(tb_config_int(cfg, "train", "batch_size", 64, 1, 60000, &v, &err) == TB_OK && v == 64); /* default */
    const struct {
        const char *text;
        int ok;
        int64_t value;
        const char *msg;
    } cases[] = {
        {"128", 1, 128, NULL},
        {"+7", 1, 7, NULL},
        {"010", 1, 10, NULL}, /* base 10, not octal */
        {"60000", 1, 60000, NULL},
        {"1", 1, 1, NULL},
        {"0", 0, 0, "train.batch_size = 0 is outside [1, 60000]"},
        {"60001", 0, 0, "train.batch_size = 60001 is outside [1, 60000]"},
        {"-5", 0, 0, "train.batch_size = -5 is outside [1, 60000]"},
        {"99999999999999999999", 0, 0, "train.batch_size = 99999999999999999999 is outside [1, 60000]"},
        {"abc", 0, 0, "train.batch_size = \"abc\" is not an integer; allowed: [1, 60000]"},
        {"12abc", 0, 0, "train.batch_size = \"12abc\" is not an integer; allowed: [1, 60000]"},
        {"1.5", 0, 0, "train.batch_size = \"1.5\" is not an integer; allowed: [1, 60000]"},
        {"1e3", 0, 0, "train.batch_size = \"1e3\" is not an integer; allowed: [1, 60000]"},
        {"0x10", 0, 0, "train.batch_size = \"0x10\" is not an integer; allowed: [1, 60000]"},
        {"", 0, 0, "train.batch_size = \"\" is not an integer; allowed: [1, 60000]"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        ck_assert(tb_config_set(cfg, "train.batch_size", cases[i].text, &err) == TB_OK);
        v = -1;
        tb_status s = tb_config_int(cfg, "train", "batch_size", 64, 1, 60000, &v, &err);
        if (cases[i].ok) {
            ck_assert_msg(s == TB_OK, "%s: %s", cases[i].text, err.msg);
            ck_assert_int_eq(v, cases[i].value);
        } else {
            ck_assert_msg(s == TB_EINVAL, "%s accepted", cases[i].text);
            ck_assert_str_eq(err.msg, cases[i].msg);
        }
    }
    /* the full int64 range */
    ck_assert(tb_config_set(cfg, "train.seed", "-9223372036854775808", &err) == TB_OK);
    ck_assert(tb_config_int(cfg, "train", "seed", 0, INT64_MIN, INT64_MAX, &v, &err) == TB_OK && v == INT64_MIN);
    ck_assert(tb_config_set(cfg, "train.seed", "9223372036854775808", &err) == TB_OK);
    ck_assert(tb_config_int(cfg, "train", "seed", 0, INT64_MIN, INT64_MAX, &v, &err) == TB_EINVAL);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_double)
{
    tb_config *cfg = tb_config_new();
    tb_err err;
    double v = -1;
    ck_assert(tb_config_double(cfg, "train", "lr", 0.1, 0, 10, &v, &err) == TB_OK && v == 0.1);
    const struct {
        const char *text;
        int ok;
        double value;
        const char *msg;
    } cases[] = {
        {"0.05", 1, 0.05, NULL},
        {"1e-3", 1, 1e-3, NULL},
        {"10", 1, 10, NULL},
        {"0", 1, 0, NULL},
        {"-0", 1, 0, NULL},
        {"1e-300", 1, 1e-300, NULL},
        /* underflow would silently make it 0 (issue: lr=1e-400 trained with lr 0) */
        {"1e-400", 0, 0, "train.lr = 1e-400 is too small to represent (it would become 0); allowed: [0, 10]"},
        {"4e-320", 0, 0, "train.lr = 4e-320 is too small to represent (it would become 0); allowed: [0, 10]"},
        /* strtod reads hexadecimal: 0x10 would be 16 */
        {"0x10", 0, 0, "train.lr = \"0x10\" is not a number; allowed: [0, 10]"},
        {"-0X1p-3", 0, 0, "train.lr = \"-0X1p-3\" is not a number; allowed: [0, 10]"},
        {"abc", 0, 0, "train.lr = \"abc\" is not a number; allowed: [0, 10]"},
        {"0.1x", 0, 0, "train.lr = \"0.1x\" is not a number; allowed: [0, 10]"},
        {"", 0, 0, "train.lr = \"\" is not a number; allowed: [0, 10]"},
        {"nan", 0, 0, "train.lr = \"nan\" is not a number; allowed: [0, 10]"},
        {"NaN", 0, 0, "train.lr = \"NaN\" is not a number; allowed: [0, 10]"},
        {"-nan", 0, 0, "train.lr = \"-nan\" is not a number; allowed: [0, 10]"},
        {"inf", 0, 0, "train.lr = inf is outside [0, 10]"},
        {"1e999", 0, 0, "train.lr = 1e999 is outside [0, 10]"},
        {"10.5", 0, 0, "train.lr = 10.5 is outside [0, 10]"},
        {"-1e-9", 0, 0, "train.lr = -1e-9 is outside [0, 10]"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(cases); i++) {
        ck_assert(tb_config_set(cfg, "train.lr", cases[i].text, &err) == TB_OK);
        v = -1;
        tb_status s = tb_config_double(cfg, "train", "lr", 0.1, 0, 10, &v, &err);
        if (cases[i].ok) {
            ck_assert_msg(s == TB_OK, "%s: %s", cases[i].text, err.msg);
            ck_assert_double_eq(v, cases[i].value);
        } else {
            ck_assert_msg(s == TB_EINVAL, "%s accepted", cases[i].text);
            ck_assert_str_eq(err.msg, cases[i].msg);
        }
    }
    /* an infinite range admits infinities, never NaN */
    ck_assert(tb_config_set(cfg, "train.t0", "inf", &err) == TB_OK);
    ck_assert(tb_config_double(cfg, "train", "t0", 0, 0, INFINITY, &v, &err) == TB_OK && isinf(v));
    ck_assert(tb_config_set(cfg, "train.t0", "1e999", &err) == TB_OK);
    ck_assert(tb_config_double(cfg, "train", "t0", 0, 0, INFINITY, &v, &err) == TB_OK && isinf(v));
    ck_assert(tb_config_set(cfg, "train.t0", "nan", &err) == TB_OK);
    ck_assert(tb_config_double(cfg, "train", "t0", 0, -INFINITY, INFINITY, &v, &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "is not a number");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_bool_string_choice)
{
    tb_config *cfg = tb_config_new();
    tb_err err;
    int b = -1;
    ck_assert(tb_config_bool(cfg, "train", "nesterov", 1, &b, &err) == TB_OK && b == 1);
    const char *yes[] = {"true", "TRUE", "yes", "Yes", "on", "1"}, *no[] = {"false", "no", "Off", "0"};
    for (size_t i = 0; i < TB_ARRAY_LEN(yes); i++) {
        ck_assert(tb_config_set(cfg, "train.nesterov", yes[i], &err) == TB_OK);
        ck_assert(tb_config_bool(cfg, "train", "nesterov", 0, &b, &err) == TB_OK && b == 1);
    }
    for (size_t i = 0; i < TB_ARRAY_LEN(no); i++) {
        ck_assert(tb_config_set(cfg, "train.nesterov", no[i], &err) == TB_OK);
        ck_assert(tb_config_bool(cfg, "train", "nesterov", 1, &b, &err) == TB_OK && b == 0);
    }
    ck_assert(tb_config_set(cfg, "train.nesterov", "maybe", &err) == TB_OK);
    ck_assert(tb_config_bool(cfg, "train", "nesterov", 1, &b, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "train.nesterov = \"maybe\" is not a boolean; allowed: true/false, yes/no, on/off, 1/0");

    const char *s = NULL;
    ck_assert(tb_config_string(cfg, "output", "run", "runs/x.h5", &s, &err) == TB_OK);
    ck_assert_str_eq(s, "runs/x.h5");
    ck_assert(tb_config_string(cfg, "output", "run", NULL, &s, &err) == TB_OK);
    ck_assert_ptr_null(s);
    ck_assert(tb_config_set(cfg, "output.run", "  spaced out  ", &err) == TB_OK);
    ck_assert(tb_config_string(cfg, "output", "run", NULL, &s, &err) == TB_OK);
    ck_assert_str_eq(s, "spaced out");

    const char *losses = "cross_entropy|nll|l1|mse";
    int idx = -2;
    ck_assert(tb_config_choice(cfg, "train", "loss", "nll", losses, &idx, &err) == TB_OK && idx == 1);
    ck_assert(tb_config_choice(cfg, "train", "loss", NULL, losses, &idx, &err) == TB_OK && idx == -1);
    ck_assert(tb_config_set(cfg, "train.loss", "mse", &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "loss", "nll", losses, &idx, &err) == TB_OK && idx == 3);
    ck_assert(tb_config_set(cfg, "train.loss", "MSE", &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "loss", "nll", losses, &idx, &err) == TB_OK && idx == 3);
    ck_assert(tb_config_set(cfg, "train.loss", "cross_entropi", &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "loss", "nll", losses, &idx, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "train.loss = \"cross_entropi\" is not a valid choice (did you mean cross_entropy?); "
                              "allowed: cross_entropy|nll|l1|mse");
    ck_assert(tb_config_set(cfg, "train.loss", "hinge", &err) == TB_OK);
    ck_assert(tb_config_choice(cfg, "train", "loss", "nll", losses, &idx, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "train.loss = \"hinge\" is not a valid choice; allowed: cross_entropy|nll|l1|mse");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_int_list)
{
    tb_config *cfg = tb_config_new();
    tb_err err;
    int64_t v[4];
    int n = -1;
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "32,64", 1, 4096, v, 4, &n, &err) == TB_OK);
    ck_assert(n == 2 && v[0] == 32 && v[1] == 64);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", NULL, 1, 4096, v, 4, &n, &err) == TB_OK && n == 0);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "32,0", 1, 4096, v, 4, &n, &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "invalid default");

    ck_assert(tb_config_set(cfg, "cnn.filters", " 8 ,16,  32 ", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_OK);
    ck_assert(n == 3 && v[0] == 8 && v[1] == 16 && v[2] == 32);
    ck_assert(tb_config_set(cfg, "cnn.filters", "", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_OK && n == 0);

    ck_assert(tb_config_set(cfg, "cnn.filters", "32,abc", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "cnn.filters = \"32,abc\" is not a list of integers (item 2 is \"abc\"); allowed: "
                              "integers in [1, 4096], at most 4");
    ck_assert(tb_config_set(cfg, "cnn.filters", "32,,64", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "(item 2 is \"\")");
    ck_assert(tb_config_set(cfg, "cnn.filters", "32,0", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "cnn.filters = 32,0 is outside [1, 4096] (item 2 is 0)");
    ck_assert(tb_config_set(cfg, "cnn.filters", "1,2,3,4,5", &err) == TB_OK);
    ck_assert(tb_config_int_list(cfg, "cnn", "filters", "1", 1, 4096, v, 4, &n, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "cnn.filters = 1,2,3,4,5 has 5 values; allowed: at most 4");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_overrides_win_over_the_file)
{
    tb_config *cfg = load_text(sample);
    tb_err err;
    ck_assert(tb_config_set(cfg, "train.lr", "0.1", &err) == TB_OK);
    ck_assert(tb_config_set_assignment(cfg, "TRAIN.Epochs = 7", &err) == TB_OK);
    ck_assert(tb_config_set_assignment(cfg, "output.run=runs/a=b.h5", &err) == TB_OK); /* '=' in the value */
    ck_assert_str_eq(tb_config_get(cfg, "train", "lr"), "0.1");
    ck_assert_str_eq(tb_config_get(cfg, "train", "epochs"), "7");
    ck_assert_str_eq(tb_config_get(cfg, "output", "run"), "runs/a=b.h5");
    ck_assert(tb_config_has_section(cfg, "output"));
    int64_t e = 0;
    ck_assert(tb_config_int(cfg, "train", "epochs", 1, 1, 100, &e, &err) == TB_OK && e == 7);
    ck_assert_int_eq(tb_config_keys(cfg, "train", NULL, 0), 5); /* replaced, not added */

    ck_assert(tb_config_set_assignment(cfg, "train.lr", &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "--set \"train.lr\": expected section.key=value");
    ck_assert(tb_config_set_assignment(cfg, "lr=0.1", &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "\"lr\" is not of the form section.key");
    ck_assert(tb_config_set(cfg, ".lr", "1", &err) == TB_EINVAL);
    ck_assert(tb_config_set(cfg, "train.", "1", &err) == TB_EINVAL);
    ck_assert(tb_config_set(cfg, "train.l r", "1", &err) == TB_EINVAL);
    ck_assert(tb_config_set(cfg, "train.lr", "a\nb", &err) == TB_EINVAL);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_unknown_keys_and_sections)
{
    tb_config *cfg = tb_config_new();
    tb_err err;
    const char *train[] = {"epochs", "batch_size", "loss", "optimizer", "lr", "weight_decay", "momentum", "seed"};
    ck_assert(tb_config_set(cfg, "train.epochs", "2", &err) == TB_OK);
    ck_assert(tb_config_check_section(cfg, "train", train, (int)TB_ARRAY_LEN(train), &err) == TB_OK);
    ck_assert(tb_config_check_section(cfg, "absent", train, (int)TB_ARRAY_LEN(train), &err) == TB_OK);

    ck_assert(tb_config_set(cfg, "train.learning_rate", "0.1", &err) == TB_OK);
    ck_assert(tb_config_check_section(cfg, "train", train, (int)TB_ARRAY_LEN(train), &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "unknown key train.learning_rate (did you mean lr?); valid keys in [train]: epochs, "
                              "batch_size, loss, optimizer, lr, weight_decay, momentum, seed");
    tb_config_free(cfg);

    cfg = tb_config_new();
    ck_assert(tb_config_set(cfg, "train.batchsize", "1", &err) == TB_OK);
    ck_assert(tb_config_check_section(cfg, "train", train, (int)TB_ARRAY_LEN(train), &err) == TB_EINVAL);
    ASSERT_HAS(err.msg, "unknown key train.batchsize (did you mean batch_size?)");
    ck_assert(tb_config_set(cfg, "train.batchsize", "1", &err) == TB_OK);
    tb_config_free(cfg);

    cfg = tb_config_new();
    ck_assert(tb_config_set(cfg, "train.zzzzzz", "1", &err) == TB_OK);
    ck_assert(tb_config_check_section(cfg, "train", train, (int)TB_ARRAY_LEN(train), &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "unknown key train.zzzzzz; valid keys in [train]: epochs, batch_size, loss, "
                              "optimizer, lr, weight_decay, momentum, seed");
    ck_assert(tb_config_check_section(cfg, "train", NULL, 0, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "unknown key train.zzzzzz; section [train] takes no keys");

    const char *sections[] = {"model", "task", "train", "output", "plugins"};
    ck_assert(tb_config_check_sections(cfg, sections, 5, &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "trian.epochs", "1", &err) == TB_OK);
    ck_assert(tb_config_check_sections(cfg, sections, 5, &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "unknown section [trian] (did you mean [train]?); valid sections: model, task, train, "
                              "output, plugins");
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_nearest)
{
    const char *keys[] = {"epochs", "batch_size", "lr", "weight_decay", "momentum", "beta1", "beta2", "lr_decay"};
    int n = (int)TB_ARRAY_LEN(keys);
    ck_assert_str_eq(tb_nearest("epoch", keys, n), "epochs");
    ck_assert_str_eq(tb_nearest("Epochs", keys, n), "epochs");
    ck_assert_str_eq(tb_nearest("momentun", keys, n), "momentum");
    ck_assert_str_eq(tb_nearest("learning_rate", keys, n), "lr");    /* initials */
    ck_assert_str_eq(tb_nearest("wd", keys, n), "weight_decay");     /* initials */
    ck_assert_str_eq(tb_nearest("batch", keys, n), "batch_size");    /* prefix */
    ck_assert_str_eq(tb_nearest("beta3", keys, n), "beta1");         /* ties: the first */
    ck_assert_str_eq(tb_nearest("wieght_decya", keys, n), "weight_decay"); /* 4 edits, 12/3 = 4 allowed */
    ck_assert_ptr_null(tb_nearest("xyz", keys, n));
    ck_assert_ptr_null(tb_nearest("dropout", keys, n));
    ck_assert_ptr_null(tb_nearest("", keys, n));
    ck_assert_ptr_null(tb_nearest("lr", NULL, 0));
    /* max(2, len/3): two edits always pass, three need a 9-letter word */
    const char *c[] = {"abcdef"};
    ck_assert_str_eq(tb_nearest("abcxyf", c, 1), "abcdef");
    ck_assert_str_eq(tb_nearest("abcdxy", c, 1), "abcdef");
    ck_assert_ptr_null(tb_nearest("axcxyf", c, 1));
}
END_TEST

START_TEST(test_file_errors)
{
    tb_config *cfg = (tb_config *)1;
    tb_err err;
    ck_assert(tb_config_load(&cfg, "/nonexistent/tunebench.ini", &err) == TB_EIO);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err.msg, "cannot read config /nonexistent/tunebench.ini: No such file or directory");
    ck_assert(tb_config_load(&cfg, "/tmp", &err) == TB_EIO);
    ck_assert_str_eq(err.msg, "cannot read config /tmp: not a regular file");

    ck_assert_str_eq(load_fails("[train]\nlr = 1\nthis line is wrong\n"),
                     "F:3: syntax error in \"this line is wrong\" (expected [section], key = value or a ; comment)");
    ck_assert_str_eq(load_fails("[train]\nlr = 1\n[model\nx = 2\ny\n"),
                     "F:3: syntax error in \"[model\" (expected [section], key = value or a ; comment) (and 1 more)");
    ck_assert_str_eq(load_fails("; header\nlr = 1\n[train]\n"),
                     "F:2: key \"lr\" is outside any section (put it under a [section] header)");
    ck_assert_str_eq(load_fails("[train]\nepochs = 1\n\n[a.b]\nx = 1\n"),
                     "F:4: invalid section name [a.b] (use letters, digits, '_' and '-')");
    /* iniparser stores "[train:lr]" like the key train.lr (found by tests/fuzz/fuzz_config) */
    ck_assert_str_eq(load_fails("[model]\nname = cnn\n[train:lr]\n"),
                     "F:3: invalid section name [train:lr] (use letters, digits, '_' and '-')");
    ck_assert_str_eq(load_fails("[ urwon dcuda:0]"),
                     "F:1: invalid section name [urwon dcuda:0] (use letters, digits, '_' and '-')");
    ck_assert_str_eq(load_fails("[train]\nepochs = 1\nk:z = 1\n"),
                     "F:3: invalid key name \"k:z\" in [train] (use letters, digits, '_' and '-')");
    char longline[1200];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "[t]\nk = ", 8);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';
    ck_assert_str_eq(load_fails(longline), "F:2: line too long (at most 1024 characters)");

    /* an empty file is an empty configuration */
    cfg = load_text("");
    ck_assert_int_eq(tb_config_sections(cfg, NULL, 0), 0);
    tb_config_free(cfg);
}
END_TEST

/* What iniparser would let through silently is refused with the line (or
 * read, for a last line without its newline). */
START_TEST(test_silent_mistakes_refused)
{
    /* a key or a section given twice: iniparser keeps the last one */
    ck_assert_str_eq(load_fails("[train]\nlr = 0.1\nepochs = 2\nLR = 0.5\n"),
                     "F:4: train.lr is given twice (lines 2 and 4): keep one");
    ck_assert_str_eq(load_fails("[train]\nlr = 0.1\n[model]\nname = cnn\n[Train]\nepochs = 2\n"),
                     "F:5: section [train] appears again (first at line 1): merge the two");
    ck_assert_str_eq(load_fails("[a]\nx = 1\n[b]\ny = 1\ny = 2\nx = 3\n[a]\n"),
                     "F:5: b.y is given twice (lines 4 and 5): keep one"); /* the earliest repetition */

    /* a NUL byte: iniparser drops the line (l\0r = banana trained with the default lr) */
    static const char nul1[] = "[train]\nl\0r = banana\nepochs = 1\n";
    static const char nul2[] = "[train]\nlr = 0.01\0junk\n";
    const struct {
        const char *text;
        size_t len;
        const char *msg;
    } binary[] = {
        {nul1, sizeof nul1 - 1, "F:2: a NUL byte at column 2 (a configuration is text)"},
        {nul2, sizeof nul2 - 1, "F:2: a NUL byte at column 10 (a configuration is text)"},
        {"[train]\nlr = 0.1\x1b[31m\n", 21, "F:2: control character 0x1b at column 9 (a configuration is text)"},
        {"[train]\r\nlr = 0.1\rx\r\n", 22, "F:2: control character 0x0d at column 9 (a configuration is text)"},
    };
    for (size_t i = 0; i < TB_ARRAY_LEN(binary); i++) {
        static char path[64];
        snprintf(path, sizeof path, "/tmp/tbtest-config-XXXXXX");
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert(write(fd, binary[i].text, binary[i].len) == (ssize_t)binary[i].len);
        close(fd);
        tb_config *cfg = (tb_config *)1;
        tb_err err;
        ck_assert_msg(tb_config_load(&cfg, path, &err) == TB_EFORMAT, "case %zu accepted", i);
        ck_assert_ptr_null(cfg);
        const char *at = strstr(err.msg, path);
        ck_assert_msg(at == err.msg, "%s", err.msg);
        char msg[600];
        snprintf(msg, sizeof msg, "F%s", at + strlen(path));
        ck_assert_str_eq(msg, binary[i].msg);
        unlink(path);
    }
    /* tabs and CRLF line ends are text */
    tb_config *cfg = load_text("[train]\r\n\tlr =\t0.5\r\n");
    ck_assert_str_eq(tb_config_get(cfg, "train", "lr"), "0.5");
    tb_config_free(cfg);

    /* the last line without a newline is read, however short */
    cfg = load_text("[t]\nk = 1\nx=1");
    ck_assert_str_eq(tb_config_get(cfg, "t", "x"), "1");
    ck_assert_str_eq(tb_config_get(cfg, "t", "k"), "1");
    tb_config_free(cfg);
    cfg = load_text("[t]\nx=");
    ck_assert_ptr_nonnull(tb_config_get(cfg, "t", "x"));
    tb_config_free(cfg);
    /* ... and its errors still name the file, not a temporary copy */
    ck_assert_str_eq(load_fails("[t]\nx = 1\nbad"),
                     "F:3: syntax error in \"bad\" (expected [section], key = value or a ; comment)");
    /* the same rules for text (a job's archived configuration) */
    tb_err err;
    ck_assert(tb_config_load_text(&cfg, "[t]\nx = 1\nx = 2\n", "job.ini", &err) == TB_EFORMAT);
    ck_assert_str_eq(err.msg, "job.ini:3: t.x is given twice (lines 2 and 3): keep one");
    ck_assert(tb_config_load_text(&cfg, "[t]\nx=1\ny=2", "job.ini", &err) == TB_OK);
    ck_assert_str_eq(tb_config_get(cfg, "t", "y"), "2");
    tb_config_free(cfg);

    /* --set values are text too */
    cfg = tb_config_new();
    ck_assert(tb_config_set(cfg, "train.lr", "0.1\x07", &err) == TB_EINVAL);
    ck_assert_str_eq(err.msg, "train.lr: control character 0x07 in the value (a configuration is text)");
    ck_assert(tb_config_set(cfg, "train.lr", "0.1\t", &err) == TB_OK);
    tb_config_free(cfg);
}
END_TEST

START_TEST(test_ini_round_trip)
{
    tb_config *cfg = load_text(sample);
    tb_err err;
    ck_assert(tb_config_set(cfg, "output.run", "runs/x.h5", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.note", "has \"double\" quotes; and a comment char", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.tail", "ends with \\", &err) == TB_OK);
    ck_assert(tb_config_set(cfg, "output.q", "'single'", &err) == TB_OK);
    char *ini = tb_config_to_ini(cfg);
    ck_assert_ptr_nonnull(ini);
    /* sections sorted, keys sorted */
    const char *m = strstr(ini, "[model]"), *o = strstr(ini, "[output]"), *p = strstr(ini, "[plugins]"),
               *t = strstr(ini, "[train]");
    ck_assert(m && o && p && t && m < o && o < p && p < t);
    ck_assert(strstr(ini, "batch_size = 64") < strstr(ini, "epochs = 3"));
    ASSERT_HAS(ini, "title = \"a # and ; quoted\"\n");
    ASSERT_HAS(ini, "empty = \"\"\n");

    tb_config *back = load_text(ini);
    const char *secs[8], *keys[16];
    int ns = tb_config_sections(cfg, secs, 8);
    ck_assert_int_eq(tb_config_sections(back, NULL, 0), ns);
    for (int s = 0; s < ns; s++) {
        ck_assert(tb_config_has_section(back, secs[s]));
        int nk = tb_config_keys(cfg, secs[s], keys, 16);
        ck_assert_int_eq(tb_config_keys(back, secs[s], NULL, 0), nk);
        for (int k = 0; k < nk; k++) {
            const char *a = tb_config_get(cfg, secs[s], keys[k]), *b = tb_config_get(back, secs[s], keys[k]);
            ck_assert_msg(b && strcmp(a, b) == 0, "%s.%s: \"%s\" came back as \"%s\"", secs[s], keys[k], a,
                          b ? b : "(absent)");
        }
    }
    char *again = tb_config_to_ini(back);
    ck_assert_str_eq(again, ini); /* a fixed point */
    free(again);
    free(ini);
    tb_config_free(back);
    tb_config_free(cfg);

    /* an empty configuration writes an empty text */
    cfg = tb_config_new();
    ini = tb_config_to_ini(cfg);
    ck_assert_str_eq(ini, "");
    free(ini);
    tb_config_free(cfg);
}
END_TEST

/* tb_appendf (common.h): appends, cuts at the end of the buffer, stays terminated. */
START_TEST(test_appendf)
{
    char buf[12];
    size_t used = 0;
    buf[0] = '\0';
    ck_assert_int_eq(tb_appendf(buf, sizeof buf, &used, "%s=%d", "ab", 7), 0);
    ck_assert_str_eq(buf, "ab=7");
    ck_assert_uint_eq(used, 4);
    ck_assert_int_eq(tb_appendf(buf, sizeof buf, &used, ", %s", "cdefg"), 0); /* exactly fills the 11 characters */
    ck_assert_str_eq(buf, "ab=7, cdefg");
    ck_assert_uint_eq(used, 11);
    ck_assert_int_eq(tb_appendf(buf, sizeof buf, &used, "x"), -1);
    ck_assert_str_eq(buf, "ab=7, cdefg");
    used = 8;
    buf[8] = '\0';
    ck_assert_int_eq(tb_appendf(buf, sizeof buf, &used, "%s", "123456"), -1);
    ck_assert_str_eq(buf, "ab=7, cd123");
    ck_assert_uint_eq(used, 11);
    used = 0;
    ck_assert_int_eq(tb_appendf(buf, 0, &used, "x"), -1);
    ck_assert_uint_eq(used, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_load_and_read);
    tcase_add_test(tc, test_int);
    tcase_add_test(tc, test_double);
    tcase_add_test(tc, test_bool_string_choice);
    tcase_add_test(tc, test_int_list);
    tcase_add_test(tc, test_overrides_win_over_the_file);
    tcase_add_test(tc, test_unknown_keys_and_sections);
    tcase_add_test(tc, test_nearest);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_silent_mistakes_refused);
    tcase_add_test(tc, test_ini_round_trip);
    tcase_add_test(tc, test_appendf);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tbt_run(suite()); }
