import numpy as np
import pytest

from v1recon.errors import V1ReconError
from v1recon.metrics import (
    correlation_to_average,
    encoder_metrics,
    feve,
    oracle_correlation,
    pearson_per_row,
    single_trial_correlation,
)


def repeated_data(n_neurons=6, n_stimuli=4, repeats=5, frames=80, noise=1.0, seed=0):
    """Responses = stimulus-locked signal + trial noise; returns signals per stimulus, trials, stimulus ids."""
    rng = np.random.default_rng(seed)
    signals = [rng.normal(0, 1, (n_neurons, frames)) for _ in range(n_stimuli)]
    trials, ids = [], []
    for s, sig in enumerate(signals):
        for _ in range(repeats):
            trials.append(sig + noise * rng.normal(0, 1, sig.shape))
            ids.append(s)
    return signals, trials, ids


def test_linear_transform_gives_one_and_negation_minus_one():
    rng = np.random.default_rng(1)
    resp = [rng.normal(size=(5, 70)), rng.normal(size=(5, 90))]
    assert np.allclose(single_trial_correlation([2 * r + 3 for r in resp], resp).per_neuron, 1.0)
    assert single_trial_correlation([-r for r in resp], resp).mean == pytest.approx(-1.0)


def test_single_trial_matches_corrcoef_on_concatenated_trials_with_skip():
    rng = np.random.default_rng(2)
    resp = [rng.normal(size=(4, n)) for n in (60, 75, 100)]
    pred = [r + rng.normal(size=r.shape) for r in resp]
    got = single_trial_correlation(pred, resp, skip=50)
    p = np.concatenate([x[:, 50:] for x in pred], axis=1)
    r = np.concatenate([x[:, 50:] for x in resp], axis=1)
    expected = [np.corrcoef(p[i], r[i])[0, 1] for i in range(4)]
    assert np.allclose(got.per_neuron, expected)
    assert float(got) == pytest.approx(np.mean(expected))


def test_skip_actually_drops_the_first_frames():
    rng = np.random.default_rng(3)
    resp = rng.normal(size=(1, 3, 100))
    pred = resp.copy()
    pred[:, :, :50] = rng.normal(size=(1, 3, 50))  # wrong only in the skipped part
    assert single_trial_correlation(pred, resp, skip=50).mean == pytest.approx(1.0)
    assert single_trial_correlation(pred, resp, skip=0).mean < 0.9


def test_constant_prediction_scores_zero_not_nan():
    rng = np.random.default_rng(4)
    resp = [rng.normal(size=(3, 80))]
    pred = [np.ones((3, 80))]
    scores = single_trial_correlation(pred, resp)
    assert np.all(scores.per_neuron == 0.0)
    assert not np.isnan(scores.mean)
    assert np.all(pearson_per_row(np.zeros((2, 5)), np.zeros((2, 5))) == 0.0)


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    resp = torch.randn(2, 3, 60, requires_grad=True)
    assert single_trial_correlation(resp * 2, resp, skip=10).mean == pytest.approx(1.0)


def test_correlation_to_average_matches_manual_average():
    signals, trials, ids = repeated_data(frames=70)
    rng = np.random.default_rng(5)
    preds = [t + rng.normal(size=t.shape) for t in trials]
    got = correlation_to_average(preds, trials, ids, skip=50)
    ids = np.array(ids)
    mp = np.concatenate([np.mean([preds[i] for i in np.flatnonzero(ids == s)], 0)[:, 50:] for s in range(4)], 1)
    mr = np.concatenate([np.mean([trials[i] for i in np.flatnonzero(ids == s)], 0)[:, 50:] for s in range(4)], 1)
    expected = [np.corrcoef(mp[i], mr[i])[0, 1] for i in range(mp.shape[0])]
    assert np.allclose(got.per_neuron, expected)


def feve_loop(preds, resps, ids):
    """Independent per-neuron FEVE, written out sample by sample."""
    ids = np.array(ids)
    n = resps[0].shape[0]
    fev, fe = np.zeros(n), np.zeros(n)
    for k in range(n):
        allr = np.concatenate([r[k] for r in resps])
        total = np.var(allr, ddof=1)
        noise_terms = []
        for s in np.unique(ids):
            rep = np.array([resps[i][k] for i in np.flatnonzero(ids == s)])
            noise_terms.extend(np.var(rep, axis=0, ddof=1))
        noise = np.mean(noise_terms)
        mse = np.mean(np.concatenate([(r[k] - p[k]) ** 2 for r, p in zip(resps, preds, strict=True)]))
        fev[k] = (total - noise) / total
        fe[k] = 1 - (mse - noise) / (total - noise)
    return fev, fe


def test_feve_matches_independent_formula():
    signals, trials, ids = repeated_data(noise=0.8)
    rng = np.random.default_rng(6)
    preds = [t * 0.5 + rng.normal(size=t.shape) for t in trials]
    got = feve(preds, trials, ids, skip=0)
    fev_ref, feve_ref = feve_loop(preds, trials, ids)
    assert np.allclose(got.fev, fev_ref)
    assert np.allclose(got.feve, feve_ref)
    assert got.mean == pytest.approx(feve_ref[fev_ref >= 0.15].mean())


def test_feve_of_true_signal_is_near_one_and_of_constant_is_low():
    signals, trials, ids = repeated_data(repeats=10, frames=200, noise=0.7)
    perfect = [signals[s] for s in ids]
    assert feve(perfect, trials, ids).mean == pytest.approx(1.0, abs=0.05)
    constant = [np.zeros_like(t) for t in trials]
    assert feve(constant, trials, ids).mean < 0.0


def test_feve_needs_repeats():
    rng = np.random.default_rng(7)
    trials = [rng.normal(size=(2, 60)) for _ in range(3)]
    with pytest.raises(V1ReconError, match="repeated"):
        feve(trials, trials, [0, 1, 2])


def test_oracle_matches_leave_one_out_and_rises_with_signal():
    signals, trials, ids = repeated_data(noise=1.0, frames=60)
    got = oracle_correlation(trials, ids, skip=50)
    ids_a = np.array(ids)
    t_all, o_all = [], []
    for i, t in enumerate(trials):
        others = [trials[j] for j in np.flatnonzero(ids_a == ids[i]) if j != i]
        t_all.append(t[:, 50:])
        o_all.append(np.mean(others, axis=0)[:, 50:])
    t_all, o_all = np.concatenate(t_all, 1), np.concatenate(o_all, 1)
    expected = [np.corrcoef(t_all[k], o_all[k])[0, 1] for k in range(t_all.shape[0])]
    assert np.allclose(got.per_neuron, expected)
    quiet = oracle_correlation(repeated_data(noise=0.1, frames=60)[1], ids, skip=50)
    assert quiet.mean > got.mean > 0


def test_encoder_metrics_summary_keys():
    signals, trials, ids = repeated_data(frames=70)
    preds = [signals[s] for s in ids]
    out = encoder_metrics(preds, trials, ids)
    assert set(out) >= {"single_trial_correlation", "correlation_to_average", "feve", "oracle_correlation"}
    assert all(isinstance(v, float) for v in out.values())
    assert set(encoder_metrics(preds, trials)) == {"single_trial_correlation"}


@pytest.mark.parametrize(
    "pred, resp, match",
    [
        ([np.zeros((3, 60))], [np.zeros((4, 60))], "shape"),
        ([np.zeros((3, 60))], [np.zeros((3, 60))] * 2, "trials"),
        (np.zeros((3, 60)), np.zeros((3, 60)), r"\(N, T\)"),
        ([np.zeros((3, 40))], [np.zeros((3, 40))], "fewer than 2 frames"),
        ([np.full((3, 60), np.nan)], [np.zeros((3, 60))], "NaN"),
        ([], [], "no trials"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, resp, match):
    with pytest.raises(V1ReconError, match=match):
        single_trial_correlation(pred, resp)


def test_repeats_of_different_length_are_refused():
    trials = [np.zeros((2, 60)), np.zeros((2, 70))]
    with pytest.raises(V1ReconError, match="differ in length"):
        correlation_to_average(trials, trials, [0, 0])


def test_pooled_correlation_is_accurate_for_traces_far_from_zero():
    rng = np.random.default_rng(8)
    resp = [1e4 + rng.normal(size=(3, 80)) for _ in range(4)]  # large offset, unit variance
    pred = [r + rng.normal(size=r.shape) - 5e3 for r in resp]
    got = single_trial_correlation(pred, resp, skip=10).per_neuron
    p = np.concatenate([x[:, 10:] for x in pred], 1)
    r = np.concatenate([x[:, 10:] for x in resp], 1)
    assert np.allclose(got, [np.corrcoef(p[i], r[i])[0, 1] for i in range(3)], atol=1e-9)


def test_array_and_list_inputs_agree():
    rng = np.random.default_rng(9)
    resp = rng.normal(size=(4, 3, 70)).astype(np.float32)
    pred = resp + rng.normal(size=resp.shape).astype(np.float32)
    assert single_trial_correlation(pred, resp).mean == pytest.approx(
        single_trial_correlation(list(pred), list(resp)).mean
    )
