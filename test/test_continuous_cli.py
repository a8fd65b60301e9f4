"""`altmarl train|evaluate --model setup_b` (commands/_continuous.py): the protocol's outputs, and one-line
errors for flags that do not apply and for policies of the other kind."""
import json

import numpy as np
import pytest

from _tiny_model import save_tiny_model
from altmarl_ros.cli import main
from altmarl_ros.core.continuous import BimodalLine
from altmarl_ros.core.fa_policy import build_fa_policy, load_fa_policy, save_fa_policy

GAME = BimodalLine()


def _constant_policy(path, a_g, a_l, k=4):
    """Networks with zero weights and one large output bias: a_g and a_l everywhere."""
    def network(n_in, n_out, action):
        layers = [(np.zeros((n_in, 4), np.float32), np.zeros(4, np.float32)),
                  (np.zeros((4, n_out), np.float32), np.zeros(n_out, np.float32))]
        layers[-1][1][action] = 5.0
        return layers
    policy = build_fa_policy(GAME, k, network(6, 5, a_g), network(2, 3, a_l), global_inputs="state+summary",
                             hidden=(4,))
    return save_fa_policy(policy, path)


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "setup_b", "--k", "1", "--m", "20"], "--m applies to tabular models; setup_b is a "
                                                               "continuous"),
    (["train", "--model", "setup_b", "--k", "1", "--select-n", "9"], "--select-n applies to tabular models"),
    (["train", "--model", "setup_b", "--k", "1", "--observer-window", "3"],
     "observer: fresh has no window or gain (use filter or pool)"),
    (["train", "--model", "TINY", "--k", "2", "--observer", "pool"],
     "--observer: is 'pool', which runs on continuous models only; a tabular model's observers are fresh, filter"),
    (["train", "--model", "TINY", "--k", "2", "--observer-gain", "0.5"], "--observer-gain apply to continuous"),
    (["train", "--model", "setup_b", "--k", "501"], "k: is 501, more than the n = 500 locals"),
    (["evaluate", "--model", "setup_b", "--policy", "POLICY", "--dirichlet-alpha", "0.3"],
     "--dirichlet-alpha applies to tabular models"),
    (["evaluate", "--model", "setup_b", "--policy", "POLICY", "--n", "3"], "--n 3 is below the policy's k = 4"),
    (["evaluate", "--model", "TINY", "--policy", "POLICY"], "is a function-approximation policy"),
    (["train", "--model", "TINY", "--k", "2", "--train-seeds", "2"], "--train-seeds, --global-step, --global-init, "
                                                                      "--g-iters, --l-iters, --tracked"),
    (["train", "--model", "TINY", "--k", "2", "--global-init", "best_feedback"], "--global-init, --g-iters"),
    (["train", "--model", "setup_b", "--k", "1", "--global-init", "best_feedback"],
     "global_init: best_feedback chooses its rule on a tabular model of the game and setup_b has none; use "
     "--global-init best_feedback with a continuous scenario"),
    (["train", "--model", "setup_b", "--k", "1", "--global-init", "best_feedback", "--global-step", "supervised"],
     "global_init: best_feedback fits a global network that reads its state; use it with the TRPO G-step"),
    (["train", "--model", "TINY", "--k", "2", "--tracked", "1"], "--observer-gain apply to continuous models"),
    (["train", "--model", "setup_b", "--k", "1", "--tracked", "501"], "tracked: is 501, more than the n = 500"),
])
def test_errors_are_one_line_naming_the_flag(tmp_path, capsys, argv, message):
    policy = _constant_policy(tmp_path / "p.npz", 0, 0)
    tiny = save_tiny_model(tmp_path / "tiny.yaml")
    argv = [str(policy) if a == "POLICY" else str(tiny) if a == "TINY" else a for a in argv]
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_evaluate_scores_the_policy_its_baselines_and_mode_accuracy(tmp_path, capsys):
    """A dispatcher that always names bin 2 picks the mode (uniform over the 5 bins by symmetry) 1/5 of the
    time; both-sides-uniform play is the authors' 37.8 (their std 10.9 over rollouts)."""
    policy = _constant_policy(tmp_path / "p.npz", 2, 1)  # locals always step +0.05: not what uniform locals do
    assert main(["evaluate", "--model", "setup_b", "--policy", str(policy), "--seeds", "4", "--rollouts", "50",
                 "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode_accuracy"] == pytest.approx(0.2, abs=4 * np.sqrt(0.16 / 1000))
    random_play = report["baselines"]["uniform_random"]
    assert abs(random_play["welfare"] - 37.8) < 3 * np.hypot(10.9, random_play["rollouts_std"]) / np.sqrt(200)
    assert (report["n"], report["horizon"], report["k"]) == (500, 50, 4)
    # a parked depot (r_g ~ 5 once there) with locals marching right beats uniform play, not the ceiling
    assert random_play["welfare"] < report["welfare"] < 15 / (1 - 0.95)


@pytest.mark.slow
def test_train_keeps_the_best_of_its_seeds_and_writes_a_policy(tmp_path, capsys):
    out = tmp_path / "k3.npz"
    assert main(["train", "--model", "setup_b", "--k", "3", "--rounds", "1", "--train-seeds", "2", "--seed", "7",
                 "--g-iters", "1", "--l-iters", "1", "--tracked", "1",
                 "--out", str(out), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    runs = report["runs"]
    assert [run["seed"] for run in runs] == [7, 8]
    kept = max(runs, key=lambda run: run["welfare"])
    assert report["kept_seed"] == kept["seed"] and report["selection_welfare"] == kept["welfare"]
    policy = load_fa_policy(out, game=GAME, k=3)
    assert policy.policy_id == report["policy_id"] and policy.meta["config"]["seeds"] == [7, 8]


def test_mode_accuracy_of_a_dispatcher_that_names_its_samples_mode():
    """Reading the whole fleet (k = n) it always names the start's mode bin; reading one local it names
    that local's bin, right as often as the modal bin's share of the fleet (numpy.histogram of other starts)."""
    from altmarl_ros.core.fa_alternating import mode_accuracy

    def histogram_mode(k):  # logits increasing in the histogram: tanh(10 h), then the identity
        eye = np.eye(5, dtype=np.float32)
        return build_fa_policy(GAME, k, [(10 * eye, np.zeros(5, np.float32)), (eye, np.zeros(5, np.float32))],
                               [(np.zeros((2, 5), np.float32), np.zeros(5, np.float32)),
                                (np.zeros((5, 3), np.float32), np.zeros(3, np.float32))],
                               global_inputs="summary", hidden=(5,))
    assert mode_accuracy(GAME, 500, histogram_mode(500)) == 1.0
    _, s_l = GAME.initial(np.random.default_rng(5), 500, 4000)
    share = np.mean([np.histogram(row, np.linspace(-2, 2, 6))[0].max() / 500 for row in s_l])
    assert mode_accuracy(GAME, 1, histogram_mode(1)) == pytest.approx(share, abs=4 * np.sqrt(0.25 / 1000))


def test_without_jax_a_continuous_model_says_how_to_install_it(tmp_path):
    """./run.sh's set-up leaves JAX out (requirements-fa.txt): train and evaluate say so in one line."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['jax'] = None; sys.modules['optax'] = None; "
            "from altmarl_ros.cli import main; sys.exit(main(sys.argv[1:]))")
    for argv in (["train", "--model", "setup_b", "--k", "1", "--out", "p.npz"],
                 ["evaluate", "--model", "setup_b", "--policy", "p.npz"]):
        done = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and "requirements-fa.txt" in done.stderr and "Traceback" not in done.stderr, \
            done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.npz").exists()
