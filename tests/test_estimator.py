"""Tests of the estimator `cyan_rcbm.RCBM` (fit / transform / score_samples)."""

import numpy as np
import pytest
from sklearn import base as sk_base
from sklearn.utils import estimator_checks

import cyan_rcbm as cr
from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.errors import ConfigError, DataError, InputError
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib

_SMALL = dict(num_levels=2, num_filters=[3, 2], filter_length=3, pool=2,
              max_iters=6, inner_max_iters=10, infer_max_iters=30)


@pytest.fixture(scope='module')
def data():
  dyn, _, _ = make_planted(48, num_features=3, length=16, num_filters=3,
                           filter_length=3, noise=0.05, density=0.05, seed=0)
  return dyn


@pytest.fixture(scope='module')
def fitted(data):
  est = cr.RCBM(**_SMALL)
  return est, est.fit(data.x[:40])


def test_fit_returns_self_and_sets_learned_attributes(fitted, data):
  est, returned = fitted
  assert returned is est
  assert [w.shape for w in est.filters_] == [(3, 3, 3), (2, 3, 3)]
  assert est.n_features_in_ == 3 and est.scale_.shape == (3,)
  assert est.sigma_.shape == (2,) and np.all(est.sigma_ > 0)
  assert [len(v) for v in est.strength_] == [3, 2]
  assert np.all(np.diff(est.strength_[0]) <= 0)
  # Learned attributes are those of the model it holds.
  np.testing.assert_array_equal(est.filters_[1], est.model_.levels[1].w)
  np.testing.assert_allclose(est.scale_, data.x[:40].std(axis=(0, 2)),
                             rtol=1e-6)


def test_outputs_are_the_functional_apis(fitted, data):
  est, _ = fitted
  x = data.x[40:]
  log_p = est.score_samples(x)
  np.testing.assert_allclose(log_p, likelihood.log_prob(est.model_, x))
  np.testing.assert_allclose(est.anomaly_scores(x), -log_p)
  assert est.score(x) == pytest.approx(float(np.mean(log_p)))
  h2 = est.transform(x)
  np.testing.assert_allclose(h2, rcbm_lib.features(est.model_, x, 2))
  assert est.transform(x, level=1).shape[:2] == (8, 3)
  assert h2.shape[:2] == (8, 2) and np.all(h2 >= 0)


def test_a_dynamics_is_accepted_with_its_feature_names(data):
  est = cr.RCBM(**dict(_SMALL, num_levels=1, num_filters=2, max_iters=2))
  est.fit(data)
  assert list(est.feature_names_in_) == list(data.feature_names)
  assert est.score_samples(data).shape == (data.num_samples,)


def test_scikit_learn_parameter_contract(fitted):
  est, _ = fitted
  copy = sk_base.clone(est)
  assert copy.get_params() == est.get_params()
  assert not hasattr(copy, 'model_') and not hasattr(copy, 'filters_')
  estimator_checks.check_get_params_invariance('RCBM', cr.RCBM(**_SMALL))
  estimator_checks.check_set_params('RCBM', cr.RCBM(**_SMALL))
  estimator_checks.check_no_attributes_set_in_init('RCBM', cr.RCBM())
  estimator_checks.check_parameters_default_constructible('RCBM', cr.RCBM())
  assert cr.RCBM().set_params(lam=0.1).lam == 0.1
  with pytest.raises(ConfigError, match="no parameter 'lambda'"):
    cr.RCBM().set_params(**{'lambda': 0.1})
  assert repr(cr.RCBM(lam=0.5)).startswith('RCBM(num_levels=2')


def test_save_and_load_round_trip(fitted, data, tmp_path):
  est, _ = fitted
  path = est.save(str(tmp_path / 'est.npz'))
  again = cr.RCBM.load(path)
  assert again.get_params() == est.get_params()
  np.testing.assert_allclose(again.score_samples(data.x[40:]),
                             est.score_samples(data.x[40:]), rtol=1e-6)
  # A model written by save_rcbm loads too, its sizes read from the file.
  cr.save_rcbm(est.model_, str(tmp_path / 'plain.npz'))
  plain_model = rcbm_lib.RCBM(levels=est.model_.levels,
                              feature_names=est.model_.feature_names,
                              scale=est.model_.scale)
  cr.save_rcbm(plain_model, str(tmp_path / 'plain.npz'))
  plain = cr.RCBM.load(str(tmp_path / 'plain.npz'))
  assert plain.num_filters == [3, 2] and plain.num_levels == 2


def test_errors_name_the_problem(data):
  with pytest.raises(InputError, match='not fitted'):
    cr.RCBM().transform(data.x)
  with pytest.raises(DataError, match='rank|3'):
    cr.RCBM(**_SMALL).fit(data.x[:, 0])
  bad = data.x.copy()
  bad[0, 0, 0] = np.nan
  with pytest.raises(DataError, match='nan'):
    cr.RCBM(**_SMALL).fit(bad)
  for kwargs, field in [({'num_filters': [3]}, 'num_filters'),
                        ({'num_levels': 0}, 'num_levels'),
                        ({'step': 'newton'}, 'step'),
                        ({'scaling': 'minmax'}, 'scaling'),
                        ({'init': 'zeros'}, 'init'),
                        ({'filter_length': 40}, 'filter_length')]:
    with pytest.raises(ConfigError, match=field):
      cr.RCBM(**dict(_SMALL, **kwargs)).fit(data.x)
