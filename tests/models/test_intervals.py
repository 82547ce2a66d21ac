"""Bootstrap intervals over sessions for the headline figures (pipeline.modeling.evaluate)."""

from __future__ import annotations

import numpy as np

from pipeline.codebook import load_codebook
from pipeline.modeling.evaluate import metrics_markdown, score, session_intervals

BOOK = load_codebook()


def collected(n_sessions: int, seed: int = 0, flip: float = 0.2) -> dict:
    """Arrays as ``collect`` returns them: per session 20 client and 20 therapist turns, gold
    ruptures at 20 %, predictions that agree with the gold except a share ``flip``."""
    rng = np.random.default_rng(seed)
    c = {k: [] for k in ("c_gold", "c_pred", "c_prob", "c_key", "c_session", "c_mgold", "c_mpred",
                         "t_gold", "t_pred", "t_prob", "t_key", "t_session", "t_sgold", "t_spred")}
    for s in range(n_sessions):
        for _ in range(20):
            gold = rng.choice(["none", "withdrawal", "confrontation"], p=[0.8, 0.1, 0.1])
            pred = gold if rng.random() > flip else rng.choice(["none", "withdrawal", "confrontation"])
            p_none = 0.2 + 0.6 * (gold == "none") + rng.uniform(-0.45, 0.2)
            c["c_gold"].append(str(gold)); c["c_pred"].append(str(pred))
            c["c_prob"].append([p_none, (1 - p_none) / 2, (1 - p_none) / 2])
            c["c_key"].append(f"k{s}"); c["c_session"].append(f"s{s}")
            c["c_mgold"].append([False] * len(BOOK.markers)); c["c_mpred"].append([False] * len(BOOK.markers))
            repair = rng.random() < 0.1
            c["t_gold"].append("repair" if repair else "none")
            c["t_pred"].append("repair" if (repair if rng.random() > flip else not repair) else "none")
            c["t_prob"].append(float(np.clip(0.4 * repair + rng.uniform(0, 0.6), 0, 1)))
            c["t_key"].append(f"k{s}"); c["t_session"].append(f"s{s}")
            c["t_sgold"].append([False] * len(BOOK.strategies)); c["t_spred"].append([False] * len(BOOK.strategies))
    return c


def test_intervals_hold_the_figure_and_narrow_with_more_sessions():
    small, large = collected(10), collected(160)
    iv_small, iv_large = session_intervals(small), session_intervals(large)
    assert iv_small["draws"] == 200 and iv_small["sessions"] == 10
    point = score(large, intervals=0)["client"]["rupture_vs_none"]["f1"]
    lo, hi = iv_large["rupture_f1"]
    assert lo < point < hi
    for k in ("rupture_f1", "rupture_pr_auc", "kappa3", "repair_f1", "repair_pr_auc"):
        width_small = iv_small[k][1] - iv_small[k][0]
        width_large = iv_large[k][1] - iv_large[k][0]
        assert 0 < width_large < width_small, k
    assert session_intervals(small) == session_intervals(small)  # seeded: the same every run


def test_intervals_need_five_sessions_and_can_be_switched_off():
    assert session_intervals(collected(4)) is None
    assert "intervals" not in score(collected(4))
    assert "intervals" not in score(collected(20), intervals=0)
    assert score(collected(20))["intervals"]["sessions"] == 20


def test_intervals_resample_sessions_not_turns():
    # every session identical: drawing sessions cannot move any figure
    one = collected(1, seed=3)
    same = {k: v * 12 for k, v in one.items()}
    same["c_key"] = [f"k{i // 20}" for i in range(240)]
    same["t_key"] = list(same["c_key"])
    iv = session_intervals(same)
    assert iv["rupture_f1"][0] == iv["rupture_f1"][1]
    assert iv["repair_pr_auc"][0] == iv["repair_pr_auc"][1]
    assert iv["spearman_ruptures"] is None  # equal counts in every session: no correlation to draw


def test_the_markdown_states_the_intervals():
    text = metrics_markdown("t", score(collected(30)))
    assert "95% intervals over sessions (200 bootstrap draws of the 30 sessions" in text
    assert "rupture vs none F1 0." in text and "repair PR-AUC 0." in text


def test_order_spread_gives_min_median_max_and_none_where_a_fit_lacks_the_figure():
    from pipeline.modeling.evaluate import HEADLINE, order_spread

    fits = [dict.fromkeys(HEADLINE, v) for v in (0.3, 0.1, 0.2)]
    fits[1]["repair_f1"] = None
    spread = order_spread(fits)
    assert spread["fits"] == 3 and spread["rupture_f1"] == [0.1, 0.2, 0.3]
    assert spread["repair_f1"] is None
