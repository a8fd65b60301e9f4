"""`altmarl train` and `altmarl evaluate` end to end on a tiny model file, and their user errors.

The tests that need a trained policy share one `altmarl train` run (conftest.trained_tiny).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from _tiny_model import K, TRAIN_ARGS, save_tiny_model, tiny_arrays
from altmarl_ros import commands
from altmarl_ros.cli import main
from altmarl_ros.core.evaluate import BASELINES
from altmarl_ros.core.model import load_model, make_game, save_model
from altmarl_ros.core.policy import load_policy

# Under pytest-xdist one worker runs this file: conftest.trained_tiny (a session fixture) trains once.
pytestmark = pytest.mark.xdist_group("trained_tiny")


@pytest.fixture
def tiny_model(tmp_path):
    return save_tiny_model(tmp_path / "tiny.yaml")


def _train(model, out, *extra):
    return main(["train", "--model", str(model), "--out", str(out), *TRAIN_ARGS, *extra])


EVAL_ARGS = ["--n", "10", "--horizon", "8", "--seeds", "2", "--rollouts", "50", "--m", "5", "--quiet"]


def test_this_file_keeps_to_one_worker(request):
    """Under ./test.sh (--dist loadgroup) the xdist_group above must hold, or every worker trains
    trained_tiny again (pytest 9.2 with pytest-xdist 3.8 dropped every group without a word)."""
    if not request.config.getoption("loadgroup", False):
        pytest.skip("not a pytest-xdist --dist loadgroup worker")
    assert request.node.nodeid.endswith("@trained_tiny"), (
        "pytest-xdist ignored xdist_group: pin a pytest it supports in requirements.txt")


def test_train_writes_table_figure_and_policy(trained_tiny):
    model, out, table = trained_tiny
    assert "round" in table and "accepted" in table and f"wrote {out}" in table
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    policy = load_policy(out, game=load_model(model), k=K)
    metrics = policy.meta["metrics"]
    assert metrics["rounds"] and metrics["rounds"][0]["round"] == 0
    assert policy.meta["config"]["m"] == 5 and policy.meta["config"]["rounds"] == 3


def test_evaluate_json_and_text_of_a_trained_policy(trained_tiny, capsys):
    model, out, _ = trained_tiny
    policy = load_policy(out)
    metrics = policy.meta["metrics"]
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *EVAL_ARGS, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert set(report["baselines"]) == set(BASELINES)
    assert report["welfare_ci"] > 0 and report["nash_gap"] >= 0
    assert report["policy_id"] == policy.policy_id and report["k"] == K
    # the gap is measured in the policy's own training surrogate, so it repeats the trainer's
    assert (report["gap_m"], report["gap_seed"]) == (5, 0)
    assert report["global_gain"] == pytest.approx(metrics["global_gain"], abs=1e-5)
    assert report["local_gain"] == pytest.approx(metrics["local_gain"], abs=1e-9)

    assert main(["evaluate", "--model", str(model), "--policy", str(out), *EVAL_ARGS]) == 0
    text = capsys.readouterr().out
    assert f"welfare    {report['welfare']:.3f} +- {report['welfare_ci']:.3f}" in text  # same seed, same numbers
    assert all(name in text for name in BASELINES)


def test_evaluate_reply_loss_reaches_the_rollouts_and_is_reported(trained_tiny, capsys):
    """--reply-loss P: the welfare is rollout_welfare's with that loss (the baselines read no replies and
    keep theirs), the JSON and the text say P and the replies decisions used."""
    from altmarl_ros.core.evaluate import policy_welfare

    model, out, _ = trained_tiny
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *EVAL_ARGS, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *EVAL_ARGS, "--reply-loss", "0.5",
                 "--json"]) == 0
    lossy = json.loads(capsys.readouterr().out)
    direct = policy_welfare(load_model(model), load_policy(out), n=10, horizon=8, seeds=2, rollouts=50, seed=0,
                            reply_loss=0.5)
    assert lossy["welfare"] == pytest.approx(direct.mean, abs=1e-12) != plain["welfare"]
    assert (lossy["reply_loss"], lossy["replies_per_decision"]) == (0.5, direct.replies)
    assert (plain["reply_loss"], plain["replies_per_decision"]) == (0.0, K)
    assert lossy["baselines"] == plain["baselines"]
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *EVAL_ARGS, "--reply-loss", "0.5",
                 "--no-baselines"]) == 0
    assert f"reply loss 0.5: each sampled robot's reply is lost with that probability; decisions used " \
           f"{direct.replies:.2f} of k = {K} replies" in capsys.readouterr().out


def test_a_registered_baseline_appears_in_evaluate_json(trained_tiny, capsys, toy_baseline):
    """One register_baseline call is all it takes: evaluate rolls out the toy's pair."""
    from altmarl_ros.core.evaluate import rollout_welfare

    tiny_model, out, _ = trained_tiny
    assert main(["evaluate", "--model", str(tiny_model), "--policy", str(out), *EVAL_ARGS, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["baselines"]) == list(BASELINES) and toy_baseline.name in BASELINES
    game = load_model(tiny_model)
    (toy,) = toy_baseline.candidates(game, 2)
    direct = rollout_welfare(game, toy.pi_g, toy.pi_l, 2, n=10, horizon=8, seeds=2, rollouts=50, seed=0)
    assert report["baselines"][toy_baseline.name] == pytest.approx(direct.mean, abs=1e-12)
    assert report["baselines_detail"][toy_baseline.name] == "a_g = 0"


def test_train_json_is_one_object_without_nan_and_the_same_policy(trained_tiny, tmp_path, capsys):
    """Training is deterministic: --json only changes what is printed."""
    model, shared, _ = trained_tiny
    out = tmp_path / "p.npz"
    assert _train(model, out, "--json") == 0
    report = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    assert {"policy_id", "welfare_estimate", "nash_gap", "rounds"} <= set(report)
    assert report["policy_id"] == load_policy(shared).policy_id == load_policy(out).policy_id


def test_evaluate_json_of_a_single_rollout_is_strict_json(trained_tiny, capsys):
    """One rollout has no confidence interval: --json says null, not NaN (which JSON parsers reject)."""
    model, out, _ = trained_tiny
    one = ["--n", "10", "--horizon", "8", "--seeds", "1", "--rollouts", "1", "--m", "5", "--quiet", "--json"]
    assert main(["evaluate", "--model", str(model), "--policy", str(out), *one]) == 0
    report = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)
    assert report["welfare_ci"] is None and np.isfinite(report["welfare"])


def test_evaluate_refuses_a_policy_of_another_model(trained_tiny, tmp_path, capsys):
    _, out, _ = trained_tiny
    arrays = tiny_arrays(np.random.default_rng(0))
    arrays["r_g"] = arrays["r_g"] + 1.0
    other = save_model(make_game(**arrays), tmp_path / "other.npz")
    assert main(["evaluate", "--model", str(other), "--policy", str(out), *EVAL_ARGS]) == 2
    err = capsys.readouterr().err
    assert "altmarl evaluate: error:" in err and "does not match: model hash" in err
    assert "Traceback" not in err


def _bad(arrays, change):
    key, mutate = change
    arrays[key] = mutate(np.array(arrays[key], dtype=float))
    return arrays


def _nan_at(index):
    def mutate(a):
        a[index] = np.nan
        return a
    return mutate


def _scale_row(index):
    def mutate(a):
        a[index] *= 0.5
        return a
    return mutate


@pytest.mark.parametrize("change, needle", [
    (("P_g", lambda a: a[:, :, :1]), "P_g has shape (2, 2, 1)"),
    (("P_l", _scale_row((1, 0, 1))), "P_l[1, 0, 1, :] sums to 0.5"),
    (("r_l", _nan_at((0, 1, 1))), "r_l[0, 1, 1] is nan"),
    (("gamma", lambda a: 1.0), "gamma is 1.0"),
])
def test_bad_model_file_is_a_named_error_not_a_traceback(tmp_path, capsys, change, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **_bad(tiny_arrays(np.random.default_rng(1)), change))
    assert _train(path, tmp_path / "p.npz") == 2
    err = capsys.readouterr().err
    assert err.startswith("altmarl train: error:") and needle in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "p.npz").exists()


def test_policy_path_must_be_npz_before_any_training(tiny_model, tmp_path, capsys):
    assert _train(tiny_model, tmp_path / "policy.pkl") == 2
    assert "policy files end in .npz" in capsys.readouterr().err


def test_setup_step_keeps_stdout_for_the_command_after_it():
    """run.sh/test.sh run scripts/bootstrap.sh first; `./run.sh --json` must print only JSON on stdout.
    (The venv this suite runs in is already set up, so this is the quick, all-stamps-fresh run.)"""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "" and "environment ready" in done.stderr


COMMANDS = sorted(p.stem for p in (Path(commands.__file__).parent).glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("argv", [[]] + [[name] for name in COMMANDS], ids=lambda a: " ".join(a) or "altmarl")
def test_help_prints_usage_and_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv + ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: altmarl {' '.join(argv)}".rstrip())


def test_plain_altmarl_lists_every_command(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: altmarl")
    assert all(f"    {name}  " in err for name in COMMANDS)
