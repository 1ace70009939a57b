#!/usr/bin/python3
"""Reference statistics for core/analysis/stats.c, computed by SciPy (1.10).

Run with the system interpreter that has Debian's python3-scipy:

    /usr/bin/python3 tests/reference/stats_reference.py

Writes tests/fixtures/stats_reference.txt, read by tests/test_stats.c. The
format is plain text, one case per block, values as Python's repr (the
shortest text that reads back to the same double, at most 17 digits):

    case <name>
    test <spearman | levene_mean | levene_median | kruskal>
    x <v> <v> ...          spearman: the two samples
    y <v> <v> ...
    group <v> <v> ...      levene, kruskal: one line per group, in order
    statistic <value>      SciPy's statistic ("nan" when undefined)
    pvalue <value>         SciPy's p-value
    end

Lines starting with '#' are comments. The data are fixed in this file (the
paper-like case is made up to give about the paper's correlation), so
regenerating with another NumPy changes nothing but SciPy's digits.
"""
import math
import os
import warnings

from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "stats_reference.txt")

# The paper's experiment (Anand et al., BMVC 2020, section 3): 31 participants,
# months of deep-learning experience (0 for novices, ties among the others) and
# final test accuracy in percent; the paper reports Spearman 0.60, p < 0.001.
PAPER_EXPERIENCE_MONTHS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                           1, 2, 2, 3, 4, 6, 6, 8,
                           9, 12, 12, 12, 18, 24, 24, 30, 36, 36, 48, 60]
PAPER_ACCURACY = [10.0, 38.21, 52.4, 81.87, 45.13, 74.02, 10.0, 66.9, 58.35, 30.77, 84.48,
                  55.62, 71.3, 63.05, 48.9, 77.41, 80.12, 29.8, 74.66,
                  61.95, 79.3, 84.27, 76.05, 83.4, 75.12, 82.77, 84.03, 80.9, 87.45, 71.6, 88.14]
# The same accuracies grouped as the default: novice (0 months),
# medium (< 9 months), expert (>= 9 months).
PAPER_GROUPS = [PAPER_ACCURACY[:11], PAPER_ACCURACY[11:19], PAPER_ACCURACY[19:]]


def spearman_cases():
    yield "spearman_no_ties", [3.1, 1.2, 4.8, 2.2, 9.0, 5.5, 7.1, 6.3, 8.4, 0.7], \
        [2.0, 1.5, 3.9, 3.1, 8.8, 4.2, 5.0, 7.7, 6.1, 0.2]
    yield "spearman_ties", [1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 7, 7], \
        [10, 12, 12, 11, 15, 15, 14, 14, 20, 18, 18, 25]
    yield "spearman_n3", [1.0, 2.0, 3.0], [0.3, 0.1, 0.9]
    yield "spearman_negative", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],\
        [88, 85, 86, 80, 79, 81, 70, 66, 68, 60, 55, 58, 40, 41, 30]
    yield "spearman_perfect", [0.5, 1.5, 2.5, 3.5, 4.5], [10, 20, 30, 40, 50]
    yield "spearman_constant_y", [1, 2, 3, 4, 5], [7, 7, 7, 7, 7]
    yield "spearman_weak", [5, 3, 8, 1, 9, 2, 7, 4, 6, 10], [2, 9, 4, 6, 1, 8, 7, 3, 10, 5]
    yield "spearman_paper_experience", PAPER_EXPERIENCE_MONTHS, PAPER_ACCURACY


def group_cases():
    # Same spread in every group, shifted: the statistic is 0 and p is 1.
    shifted = [[1, 2, 3, 4, 5], [11, 12, 13, 14, 15], [21, 22, 23, 24, 25]]
    # Nearly equal spreads: p near 1 but not exactly.
    near_equal = [[4.1, 5.0, 5.9, 6.2, 3.8, 5.1], [14.0, 15.2, 16.1, 13.9, 15.0, 16.0],
                  [24.2, 25.1, 25.8, 23.9, 24.9, 26.1]]
    # Unequal sizes, an even-sized group (its median averages two values).
    unequal = [[2.3, 4.1, 3.3, 5.0], [1.0, 7.5, 3.2, 9.9, 0.4, 6.6, 2.8], [5.5, 5.1, 6.0]]
    # Ties within and across groups.
    ties = [[1, 1, 2, 2, 2, 3], [2, 3, 3, 3, 4], [4, 4, 5, 5, 6, 6, 6]]
    # A tight group against a wide one, 30 each: a tiny p.
    tight = [50 + 0.01 * ((7 * i) % 11 - 5) for i in range(30)]
    wide = [50 + 10.0 * ((7 * i) % 11 - 5) for i in range(30)]
    far_apart = [[1.0 + 0.1 * i for i in range(20)], [100.0 + 0.1 * i for i in range(20)],
                 [200.0 + 0.1 * i for i in range(20)]]
    for test in ("levene_mean", "levene_median"):
        yield test + "_shifted_equal", test, shifted
        yield test + "_near_equal", test, near_equal
        yield test + "_unequal_sizes", test, unequal
        yield test + "_ties", test, ties
        yield test + "_tiny_p", test, [tight, wide]
        yield test + "_two_small", test, [[1.0, 2.0], [3.0, 7.0]]
        yield test + "_paper_groups", test, PAPER_GROUPS
    yield "kruskal_shifted_equal", "kruskal", [[1, 5, 9], [2, 6, 10], [3, 4, 8]]
    yield "kruskal_unequal_sizes", "kruskal", unequal
    yield "kruskal_ties", "kruskal", ties
    yield "kruskal_tiny_p", "kruskal", far_apart
    yield "kruskal_group_of_one", "kruskal", [[1.0, 2.0, 3.0], [5.0]]
    yield "kruskal_paper_groups", "kruskal", PAPER_GROUPS


def run_test(test, groups):
    if test == "levene_mean":
        return stats.levene(*groups, center="mean")
    if test == "levene_median":
        return stats.levene(*groups, center="median")
    return stats.kruskal(*groups)


def number(v):
    v = float(v)
    return "nan" if math.isnan(v) else "inf" if v == math.inf else repr(v)


def row(label, values):
    return label + " " + " ".join(number(v) for v in values)


def block(name, test, rows, result):
    return "\n".join(["case " + name, "test " + test] + rows +
                     ["statistic " + number(result[0]), "pvalue " + number(result[1]), "end", ""])


def main():
    blocks = ["# Generated by tests/reference/stats_reference.py with SciPy %s; do not edit.\n" %
              __import__("scipy").__version__]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constant case warns; NaN is its answer
        for name, x, y in spearman_cases():
            blocks.append(block(name, "spearman", [row("x", x), row("y", y)], stats.spearmanr(x, y)))
        for name, test, groups in group_cases():
            blocks.append(block(name, test, [row("group", g) for g in groups], run_test(test, groups)))
    with open(OUT, "w") as f:
        f.write("\n".join(blocks))
    print("wrote %s (%d cases)" % (os.path.normpath(OUT), len(blocks) - 1))


if __name__ == "__main__":
    main()
